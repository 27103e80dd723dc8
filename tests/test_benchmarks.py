"""The fleet benchmarks run end to end at a tiny size and print the JSON they promise.

Benchmarks are scripts, not tests; these only check that each one still runs against the
real control plane (and, for propagation, a real Envoy) and reports what it measured.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SUMMARY_KEYS = {"count", "min", "p50", "p90", "p99", "max", "mean"}


def run_benchmark(script: str, *args: str) -> dict[str, Any]:
    """Run ``benchmarks/script`` with ``args``; its stdout parsed as JSON."""
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize("mode", ["sotw", "delta"])
def test_fanout_reports_latency_and_memory_per_stream(mode: str) -> None:
    """Five simulated proxies see every change; latency and memory figures are filled in."""
    result = run_benchmark("fanout.py", "--proxies", "5", "--changes", "2", "--mode", mode)
    assert result["benchmark"] == "fanout"
    assert result["mode"] == mode
    assert result["changes_fully_acked"] == 2
    assert result["server_streams"] == 5
    assert result["proxy_errors"] == 0
    per_change = result["latency_from_write_s"]["all_acked_per_change"]
    assert set(per_change) == SUMMARY_KEYS
    assert result["latency_from_write_s"]["per_proxy"]["count"] == 10
    assert 0 < per_change["p50"] < 30
    assert result["server_rss_kib"]["idle"] > 0
    assert isinstance(result["server_kib_per_stream"], float)


@pytest.mark.e2e
def test_propagation_reports_edit_to_traffic_latency() -> None:
    """Two edits among 20 routes reach traffic through a real Envoy and are timed."""
    result = run_benchmark("propagation.py", "--routes", "20", "--edits", "2", "--pause", "0")
    assert result["benchmark"] == "propagation"
    assert result["routes"] == 20
    assert set(result["latency_s"]) == SUMMARY_KEYS
    assert result["latency_s"]["count"] == 2
    assert 0 < result["latency_s"]["p50"] < 30
    assert result["write_to_translated_s"]["count"] == 2
    assert 0 <= result["server_idle_cpu_fraction"] <= 2
