"""Offline loading of files and directories (watcher.files.load_paths, used by translate -f)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from structlog.testing import capture_logs

from watcher.files import load_paths
from watcher.objects import LoadError, ObjectKey


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _service(name: str, namespace: str | None = None) -> str:
    ns = f", namespace: {namespace}" if namespace else ""
    return f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}{ns}}}\n"


def test_directories_are_searched_recursively(tmp_path: Path) -> None:
    """Directories yield *.yaml, *.yml and *.json at any depth; other and hidden names are not."""
    _write(tmp_path / "a.yaml", _service("a"))
    _write(tmp_path / "x/y/z/b.yml", _service("b"))
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "c"}}
    _write(tmp_path / "x/c.JSON", json.dumps(body))
    _write(tmp_path / "notes.txt", _service("txt"))
    _write(tmp_path / ".hidden.yaml", _service("hidden"))
    _write(tmp_path / ".git/d.yaml", _service("git"))
    snapshot = load_paths([tmp_path])
    assert snapshot.version == 1
    assert snapshot.errors == ()
    assert sorted(name for _, _, name in snapshot.objects) == ["a", "b", "c"]


def test_explicit_file_is_read_whatever_its_name(tmp_path: Path) -> None:
    """A file named on the command line is read even without a YAML suffix."""
    path = _write(tmp_path / "notes.txt", _service("txt"))
    assert list(load_paths([path]).objects) == [ObjectKey("Service", "default", "txt")]


def test_duplicates_keep_first_in_sorted_path_order(tmp_path: Path) -> None:
    """An object in two files comes from the first in path order; the other file is named."""
    _write(tmp_path / "b.yaml", _service("s") + "spec: {from: b}\n")
    _write(tmp_path / "a/z.yaml", _service("s", "default") + "spec: {from: a}\n")
    snapshot = load_paths([tmp_path])
    assert snapshot.objects[ObjectKey("Service", "default", "s")]["spec"] == {"from": "a"}
    message = (
        f"document 1: Service default/s is already defined in {tmp_path / 'a/z.yaml'} "
        "(document 1); ignored here"
    )
    assert snapshot.errors == (LoadError(str(tmp_path / "b.yaml"), message),)


def test_missing_path_and_bad_file_do_not_hide_others(tmp_path: Path) -> None:
    """A missing path and an unparsable file are errors; everything else still loads."""
    good = _write(tmp_path / "good.yaml", _service("good"))
    bad = _write(tmp_path / "bad.yaml", "kind: [\n")
    missing = tmp_path / "missing.yaml"
    snapshot = load_paths([missing, bad, good])
    assert list(snapshot.objects) == [ObjectKey("Service", "default", "good")]
    assert [error.source for error in snapshot.errors] == [str(missing), str(bad)]
    assert snapshot.errors[0].message == "no such file or directory"
    assert snapshot.errors[1].message.startswith("invalid YAML at line 2")


def test_one_clock_reading_for_all(tmp_path: Path) -> None:
    """Offline loading reads the clock once; every object gets that time and its own uid."""
    readings: list[datetime] = []

    def clock() -> datetime:
        readings.append(datetime(2026, 11, 22, 3, 13, 40, tzinfo=UTC))
        return readings[-1]

    for name in "abc":
        _write(tmp_path / f"{name}.yaml", _service(name))
    snapshot = load_paths([tmp_path], now=clock)
    assert len(readings) == 1
    metas = [body["metadata"] for body in snapshot.bodies()]
    assert {meta["creationTimestamp"] for meta in metas} == {"2026-11-22T03:13:40Z"}
    assert {meta["generation"] for meta in metas} == {1}
    assert len({meta["uid"] for meta in metas}) == 3


def test_symlink_loop_is_walked_once(tmp_path: Path) -> None:
    """A directory link pointing back up the tree neither hangs nor duplicates objects."""
    _write(tmp_path / "sub/s.yaml", _service("s"))
    os.symlink(tmp_path, tmp_path / "sub/loop")
    snapshot = load_paths([tmp_path])
    assert list(snapshot.objects) == [ObjectKey("Service", "default", "s")]
    assert snapshot.errors == ()


def test_errors_are_logged(tmp_path: Path) -> None:
    """Each load error is logged as config.load_error with its source and message."""
    bad = _write(tmp_path / "bad.yaml", "apiVersion: apps/v1\nkind: Deployment\n")
    with capture_logs() as logs:
        load_paths([tmp_path])
    assert logs == [
        {
            "event": "config.load_error",
            "log_level": "warning",
            "source": str(bad),
            "message": "document 1: ignored: kind Deployment (apps/v1) is not one gateway-xds "
            "reads",
        }
    ]
