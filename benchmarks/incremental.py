"""Time to translate again after one HTTPRoute (or one EndpointSlice) changed among N routes.

Prints JSON: best and median over repeats, in milliseconds, of

- ``one_route``: one HTTPRoute's path changed (a different route each repeat):
  ``IncrementalTranslator.translate``, then ``SnapshotCache.set_snapshot`` and
  ``status.Stamper.stamp`` on its result, and their sum;
- ``one_slice``: one EndpointSlice's address changed (the EDS fast path), the same parts;
- ``apply_one_route`` and ``apply_one_slice``: ``ControlPlane.apply`` of such a snapshot,
  everything the server does from a published snapshot to the cache being set (and status);

with a full ``translate()`` of the same objects as the baseline, and the incremental
translator's first (full) run. The world is benchmarks/translate.py's: one Gateway, N
HTTPRoutes, each with its own hostname, Service and EndpointSlice.

    .venv/bin/python benchmarks/incremental.py [--routes 10000] [--repeats 20]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from translate import objects as bench_objects  # benchmarks/translate.py, beside this file

from translator import TranslateOptions, translate
from translator.incremental import IncrementalTranslator
from watcher.objects import ObjectKey, ObjectSnapshot
from xds_server.app import ControlPlane, ServeSettings
from xds_server.cache import SnapshotCache
from xds_server.runtime import gc_paused, tune_gc
from xds_server.status import Stamper

Objects = dict[ObjectKey, dict[str, Any]]
OPTIONS = TranslateOptions("0.0.0.0")


def keyed(bodies: list[dict[str, Any]]) -> Objects:
    return {
        ObjectKey(b["kind"], b["metadata"].get("namespace", ""), b["metadata"]["name"]): b
        for b in bodies
    }


def route_changed(objects: Objects, index: int, n: int) -> Objects:
    """``objects`` with HTTPRoute route-``index``'s path changed (a new body, as providers do)."""
    key = ObjectKey("HTTPRoute", "default", f"route-{index % n}")
    body = copy.deepcopy(objects[key])
    body["spec"]["rules"][0]["matches"][0]["path"]["value"] = f"/changed-{index}"
    return {**objects, key: body}


def slice_changed(objects: Objects, index: int, n: int) -> Objects:
    """``objects`` with the EndpointSlice of svc-``index``'s address changed."""
    key = ObjectKey("EndpointSlice", "default", f"svc-{index % n}-1")
    body = copy.deepcopy(objects[key])
    body["endpoints"] = [{"addresses": [f"10.200.{index // 250 % 250}.{index % 250 + 1}"]}]
    return {**objects, key: body}


def stats(values: list[float]) -> dict[str, float]:
    return {"best": round(min(values), 3), "median": round(statistics.median(values), 3)}


def ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def parts(
    objects: Objects, edit: Callable[[Objects, int, int], Objects], n: int, repeats: int
) -> tuple[dict[str, Any], Objects]:
    """translate, set_snapshot and stamp after each of ``repeats`` edits (timed apart)."""
    incremental = IncrementalTranslator(OPTIONS)
    cache, stamper = SnapshotCache(), Stamper()
    with gc_paused():
        first = incremental.translate(objects)
    cache.set_snapshot(first.gateways)
    stamper.stamp(first.statuses, datetime.now(UTC))
    times: dict[str, list[float]] = {"translate": [], "set_snapshot": [], "stamp": [], "total": []}
    paths, routes = set(), set()
    for repeat in range(repeats):
        objects = edit(objects, n // 2 + repeat * 7919, n)
        started = time.perf_counter()
        with gc_paused():
            result = incremental.translate(objects)
        translated = time.perf_counter()
        cache.set_snapshot(result.gateways)
        cached = time.perf_counter()
        stamper.stamp(result.statuses, datetime.now(UTC))
        done = time.perf_counter()
        times["translate"].append((translated - started) * 1000)
        times["set_snapshot"].append((cached - translated) * 1000)
        times["stamp"].append((done - cached) * 1000)
        times["total"].append((done - started) * 1000)
        paths.add(incremental.stats.path)
        routes.add(incremental.stats.routes_translated)
    report: dict[str, Any] = {f"{k}_ms": stats(v) for k, v in times.items()}
    report["paths"] = sorted(paths)
    report["routes_translated"] = sorted(routes)
    return report, objects


def applied(
    objects: Objects, edit: Callable[[Objects, int, int], Objects], n: int, repeats: int
) -> dict[str, float]:
    """``ControlPlane.apply`` of a snapshot after each edit: all the server does with it."""
    plane = ControlPlane(ServeSettings(config_dir=Path("."), listener_address="0.0.0.0"))
    plane.apply(ObjectSnapshot(1, objects))
    times = []
    for repeat in range(repeats):
        objects = edit(objects, repeat * 104729 + 1, n)
        snapshot = ObjectSnapshot(repeat + 2, objects)
        started = time.perf_counter()
        plane.apply(snapshot)
        times.append(ms(started))
    return stats(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--routes", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--full-repeats", type=int, default=3)
    args = parser.parse_args()
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())  # JSON on stdout only
    tune_gc()  # as `xdsctl serve` does
    n = args.routes
    objects = keyed(bench_objects(n))
    full = []
    for _ in range(args.full_repeats):
        started = time.perf_counter()
        with gc_paused():
            translate(list(objects.values()), OPTIONS)
        full.append(ms(started))
    first = []
    for _ in range(args.full_repeats):
        started = time.perf_counter()
        with gc_paused():
            IncrementalTranslator(OPTIONS).translate(objects)
        first.append(ms(started))
    one_route, _ = parts(objects, route_changed, n, args.repeats)
    one_slice, _ = parts(objects, slice_changed, n, args.repeats)
    report = {
        "benchmark": "incremental",
        "routes": n,
        "objects": len(objects),
        "full_translate_ms": stats(full),
        "incremental_first_run_ms": stats(first),
        "one_route": one_route,
        "one_slice": one_slice,
        "apply_one_route_ms": applied(objects, route_changed, n, args.repeats),
        "apply_one_slice_ms": applied(objects, slice_changed, n, args.repeats),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
