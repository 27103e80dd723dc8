"""Time to translate and serialize N HTTPRoutes (one rule, one match, one backend each).

Prints JSON: for each N, the best and median wall time of translate() and of serializing
every resource (as the snapshot cache does, once per version), over a few repeats.

    .venv/bin/python benchmarks/translate.py [--sizes 100 1000 10000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import gateway_head  # benchmarks/common.py, beside this file

from translator import TranslateOptions, translate
from xds_server.runtime import gc_paused, tune_gc

GROUP = "gateway.networking.k8s.io/v1"


def objects(n: int) -> list[dict[str, Any]]:
    """A GatewayClass, a Gateway, and N routes each to its own Service with one endpoint."""
    result = gateway_head(8080, class_name="bench", generation=1)
    for i in range(n):
        name = f"svc-{i}"
        result += [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"ports": [{"name": "http", "port": 80}]},
            },
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{name}-1",
                    "namespace": "default",
                    "labels": {"kubernetes.io/service-name": name},
                },
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 9000}],
                "endpoints": [{"addresses": [f"10.0.{i // 250}.{i % 250 + 1}"]}],
            },
            {
                "apiVersion": GROUP,
                "kind": "HTTPRoute",
                "metadata": {
                    "name": f"route-{i}",
                    "namespace": "default",
                    "generation": 1,
                    "creationTimestamp": "2026-01-01T00:00:00Z",
                },
                "spec": {
                    "parentRefs": [{"name": "gw"}],
                    "hostnames": [f"host-{i}.example.com"],
                    "rules": [
                        {
                            "matches": [{"path": {"type": "PathPrefix", "value": f"/p{i}"}}],
                            "backendRefs": [{"name": name, "port": 80}],
                        }
                    ],
                },
            },
        ]
    return result


def measure(
    n: int, repeats: int, pause: Callable[[], AbstractContextManager[None]]
) -> dict[str, Any]:
    objs = objects(n)
    translate_times, serialize_times = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        with pause():
            result = translate(objs, TranslateOptions("0.0.0.0"))
        translated = time.perf_counter()
        size = 0
        for resources in result.gateways.values():
            for messages in resources.by_type().values():
                for message in messages:
                    size += len(message.SerializeToString(deterministic=True))
        done = time.perf_counter()
        translate_times.append(translated - started)
        serialize_times.append(done - translated)
    total = [a + b for a, b in zip(translate_times, serialize_times, strict=True)]
    return {
        "routes": n,
        "translate_s": {"best": min(translate_times), "median": statistics.median(translate_times)},
        "serialize_s": {"best": min(serialize_times), "median": statistics.median(serialize_times)},
        "total_s": {"best": min(total), "median": statistics.median(total)},
        "serialized_bytes": size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--default-gc", action="store_true", help="CPython's GC defaults, no pause")
    args = parser.parse_args()
    if not args.default_gc:
        tune_gc()  # as `xdsctl serve` does, which also pauses the GC while translating
    pause = contextlib.nullcontext if args.default_gc else gc_paused
    results = [measure(n, args.repeats, pause) for n in args.sizes]
    report = {"benchmark": "translate", "gc_tuned": not args.default_gc, "results": results}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
