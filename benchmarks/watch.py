"""Time for the file provider to take one edited file among N, and what it costs when idle.

Prints JSON, per N (``--files``, default 1,000, 5,000 and 10,000 route files, one HTTPRoute
each, in one folder as benchmarks/propagation.py writes them, or spread over 100 folders
with ``--layout nested``) and per way of watching (``--modes``: ``inotify``, the default on
Linux, and ``polling``, the fallback that walks the whole tree at each poll):

- ``first_load_ms``: the provider's first ``reload()`` (every file read and parsed);
- ``one_edit_ms``: best and median over ``--repeats`` of ``FileProvider.reload()`` right after
  one route file was replaced (atomically, a different file each repeat): finding the change,
  reading that file, merging, filling metadata and building the new ``ObjectSnapshot``;
- ``changed_bodies``: the most bodies whose identity changed in one such snapshot (1: every
  unchanged object kept its very body);
- ``idle_reload_ms``: best and median of ``reload()`` when nothing changed;
- ``idle_run``: ``FileProvider.run`` left alone for ``--idle-seconds`` with the server's poll
  interval (50 ms): the CPU the process used, in percent of one core and per poll interval.

Files are dated 10 s in the past before the first load, so that none is "too recent to
trust" (the provider re-reads such files at each poll for two seconds).

    .venv/bin/python benchmarks/watch.py [--files 1000,5000,10000] [--repeats 20]
        [--modes inotify,polling] [--layout flat|nested] [--idle-seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import route_yaml, write_atomic  # benchmarks/common.py, beside this file

from watcher.files import FileProvider
from watcher.objects import ObjectSnapshot
from xds_server.runtime import tune_gc

POLL_INTERVAL = 0.05  # as `xdsctl serve`


def stats(values: list[float]) -> dict[str, float]:
    return {"best": round(min(values), 3), "median": round(statistics.median(values), 3)}


def route_path(root: Path, index: int, layout: str) -> Path:
    if layout == "nested":
        return root / f"team-{index % 100:02d}" / f"route-{index:05d}.yaml"
    return root / f"route-{index:05d}.yaml"


def write_route(root: Path, index: int, layout: str, prefix: str) -> None:
    text = route_yaml(f"route-{index}", f"host-{index}.example.com", prefix, f"svc-{index % 10}")
    write_atomic(route_path(root, index, layout), text)


def write_tree(root: Path, files: int, layout: str) -> None:
    for index in range(files):
        route_path(root, index, layout).parent.mkdir(exist_ok=True)
        write_route(root, index, layout, f"/r{index}")
    past = time.time() - 10
    for folder, _, names in os.walk(root):
        for name in names:
            os.utime(os.path.join(folder, name), (past, past))


def changed_bodies(before: ObjectSnapshot, after: ObjectSnapshot) -> int:
    keys = before.objects.keys() | after.objects.keys()
    return sum(1 for key in keys if before.objects.get(key) is not after.objects.get(key))


def measure_edits(
    provider: FileProvider, first: ObjectSnapshot, root: Path, files: int, args: argparse.Namespace
) -> dict[str, Any]:
    tag = "inotify" if provider.uses_events else "polling"  # each mode writes new content
    assert provider.reload() is None, "nothing changed since the first load"
    timings: list[float] = []
    changed = 0
    last = first
    for repeat in range(args.repeats):
        index = (repeat * 7919) % files  # a different file each time, spread over the tree
        write_route(root, index, args.layout, f"/edited-{tag}-{repeat}")
        started = time.perf_counter()
        snapshot = provider.reload()
        timings.append((time.perf_counter() - started) * 1000)
        assert snapshot is not None, "the edit was seen"
        changed = max(changed, changed_bodies(last, snapshot))
        last = snapshot
    idle: list[float] = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        nothing = provider.reload()
        idle.append((time.perf_counter() - started) * 1000)
        assert nothing is None, "nothing changed"
    return {"one_edit_ms": stats(timings), "changed_bodies": changed, "idle_reload_ms": stats(idle)}


def measure_idle(root: Path, seconds: float, events: bool) -> dict[str, float]:
    """CPU used by ``FileProvider.run`` while nothing changes."""

    async def main() -> float:
        provider = FileProvider(root, poll_interval=POLL_INTERVAL, events=events)
        first = asyncio.Event()
        task = asyncio.create_task(provider.run(lambda _: first.set()))
        await first.wait()
        await asyncio.sleep(0.5)  # let the first load's leftovers settle
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        used, elapsed = time.process_time() - cpu, time.perf_counter() - wall
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        provider.close()
        return used / elapsed

    share = asyncio.run(main())
    return {
        "cpu_percent": round(share * 100, 2),
        "per_poll_ms": round(share * POLL_INTERVAL * 1000, 3),
    }


def measure_mode(root: Path, files: int, events: bool, args: argparse.Namespace) -> dict[str, Any]:
    provider = FileProvider(root, poll_interval=POLL_INTERVAL, events=events)
    started = time.perf_counter()
    first = provider.reload()
    first_ms = (time.perf_counter() - started) * 1000
    assert first is not None
    assert len(first.objects) == files
    assert provider.uses_events == events, "inotify is not available here"
    result: dict[str, Any] = {"first_load_ms": round(first_ms, 1)}
    result |= measure_edits(provider, first, root, files, args)
    provider.close()
    result["idle_run"] = measure_idle(root, args.idle_seconds, events)
    return result


def measure(files: int, args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"files": files}
    with tempfile.TemporaryDirectory(prefix="watch-bench-") as tmp:
        root = Path(tmp)
        write_tree(root, files, args.layout)
        for mode in args.modes.split(","):
            result[mode] = measure_mode(root, files, mode == "inotify", args)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", default="1000,5000,10000", help="comma-separated counts")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--modes", default="inotify,polling", help="inotify, polling or both")
    parser.add_argument("--layout", choices=("flat", "nested"), default="flat")
    parser.add_argument("--idle-seconds", type=float, default=3.0)
    parser.add_argument("--default-gc", action="store_true", help="skip the server's GC tuning")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    if not args.default_gc:
        tune_gc()  # as `xdsctl serve` does
    counts = [int(count) for count in args.files.split(",")]
    results = [measure(count, args) for count in counts]
    summary = {"benchmark": "watch", "layout": args.layout, "repeats": args.repeats}
    print(json.dumps({**summary, "results": results}, indent=2))


if __name__ == "__main__":
    main()
