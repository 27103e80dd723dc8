"""A cold build of the kube suite's binaries that would run out of disk fails at once, saying
why and where (a quick test: it builds nothing)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from support.kube_binaries import (
    KUSTOMIZE,
    KubeBuildError,
    check_disk,
    ensure_binary,
    go_available,
)

pytestmark = pytest.mark.skipif(not go_available(), reason="needs the `go` command")


def test_too_little_disk_fails_before_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_XDS_KUBE_CACHE", str(tmp_path / "cache"))
    greedy = dataclasses.replace(KUSTOMIZE, disk_mb=2**40)  # more than any disk has
    with pytest.raises(KubeBuildError, match=r"needs about \d+ MB free .* has \d+ MB"):
        ensure_binary(greedy)
    assert not list((tmp_path / "cache").rglob("kustomize")), "nothing was built"


def test_enough_disk_passes_the_check(tmp_path: Path) -> None:
    check_disk(dataclasses.replace(KUSTOMIZE, disk_mb=1), tmp_path / "cache" / "kustomize")
