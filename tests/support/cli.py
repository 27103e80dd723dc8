"""Runs the ``xdsctl`` command line in a subprocess, as a user would (tests only)."""

from __future__ import annotations

import subprocess
import sys


def xdsctl(*args: str) -> subprocess.CompletedProcess[str]:
    """``xdsctl ARGS`` with this interpreter; output captured, never raises on failure."""
    return subprocess.run(
        [sys.executable, "-m", "xds_server.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
