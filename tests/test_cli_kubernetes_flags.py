"""`xdsctl serve` chooses its provider: --config-dir or --kubernetes [--kubeconfig PATH]."""

from __future__ import annotations

from pathlib import Path

from support.cli import xdsctl


def test_serve_needs_exactly_one_source() -> None:
    """Neither or both of --config-dir and --kubernetes is a usage error."""
    assert xdsctl("serve").returncode == 2
    both = xdsctl("serve", "--config-dir", ".", "--kubernetes")
    assert both.returncode == 2
    assert "not allowed with" in both.stderr


def test_kubeconfig_without_kubernetes_is_refused(tmp_path: Path) -> None:
    """--kubeconfig alone would be silently ignored by the file provider: refuse it."""
    result = xdsctl("serve", "--config-dir", str(tmp_path), "--kubeconfig", "k.yaml")
    assert result.returncode == 2
    assert "--kubeconfig needs --kubernetes" in result.stderr


def test_unusable_kubeconfig_is_reported_before_serving(tmp_path: Path) -> None:
    """A missing kubeconfig is a clear error and exit 2, not a traceback."""
    missing = tmp_path / "nope.yaml"
    result = xdsctl("serve", "--kubernetes", "--kubeconfig", str(missing))
    assert result.returncode == 2
    assert f"cannot configure a Kubernetes client from {missing}" in result.stderr
