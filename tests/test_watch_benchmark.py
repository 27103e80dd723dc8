"""benchmarks/watch.py runs at a tiny size and reports what it promises, for both modes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "watch.py"


def test_watch_benchmark_reports_edit_and_idle_costs() -> None:
    """One edit among 30 files is timed with inotify and polling; one body changes per edit."""
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--files", "30", "--repeats", "2", "--idle-seconds", "0.2"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (result,) = json.loads(done.stdout)["results"]
    assert result["files"] == 30
    for mode in ("inotify", "polling"):
        measured = result[mode]
        assert measured["changed_bodies"] == 1
        assert 0 < measured["one_edit_ms"]["best"] <= measured["one_edit_ms"]["median"]
        assert measured["idle_run"]["cpu_percent"] >= 0
