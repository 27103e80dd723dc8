"""What the fleet benchmarks share: a config folder, `xdsctl serve` as a process, statistics.

Who calls it: ``benchmarks/fanout.py`` and ``benchmarks/propagation.py`` (run as scripts, so
this folder is on ``sys.path``). It writes Gateway API YAML the way a user would (one file
per route, replaced atomically), starts the real control plane in its own process with its
log in a file, and reads that process's memory and CPU from /proc.

What it must not do: import the control plane's modules into the benchmark process (the
server under test runs alone in its process), or sleep instead of waiting for a condition.
"""

from __future__ import annotations

import http.client
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
GROUP = "gateway.networking.k8s.io/v1"
GATEWAY = "default/gw"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` in one step (a half-written file is never seen by the watcher)."""
    tmp = path.with_name("." + path.name + ".tmp")  # dot files are not watched
    tmp.write_text(text)
    tmp.replace(path)


def gateway_head(
    port: int, class_name: str = "gateway-xds", generation: int | None = None
) -> list[dict[str, Any]]:
    """A GatewayClass of ours and Gateway default/gw with one HTTP listener on ``port``."""
    metadata: dict[str, Any] = {"name": "gw", "namespace": "default"}
    if generation is not None:
        metadata["generation"] = generation
    return [
        {
            "apiVersion": GROUP,
            "kind": "GatewayClass",
            "metadata": {"name": class_name},
            "spec": {"controllerName": "gateway-xds.io/gatewayclass-controller"},
        },
        {
            "apiVersion": GROUP,
            "kind": "Gateway",
            "metadata": metadata,
            "spec": {
                "gatewayClassName": class_name,
                "listeners": [{"name": "http", "protocol": "HTTP", "port": port}],
            },
        },
    ]


def gateway_yaml(port: int) -> str:
    """``gateway_head(port)`` as a YAML stream."""
    return yaml.safe_dump_all(gateway_head(port))


def services_yaml(backends: Sequence[tuple[str, int]]) -> str:
    """A Service (port 80) and an EndpointSlice (127.0.0.1:port) per (name, port)."""
    docs: list[dict[str, Any]] = []
    for name, port in backends:
        docs += [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": port}]},
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
                "ports": [{"name": "http", "port": port}],
                "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
            },
        ]
    return yaml.safe_dump_all(docs)


def route_yaml(name: str, hostname: str, path: str, backend: str) -> str:
    """HTTPRoute ``name`` on default/gw: ``hostname`` + PathPrefix ``path`` -> ``backend``:80."""
    route = {
        "apiVersion": GROUP,
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "hostnames": [hostname],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": path}}],
                    "backendRefs": [{"name": backend, "port": 80}],
                }
            ],
        },
    }
    return yaml.safe_dump(route)


class ServerProcess:
    """``xdsctl serve`` on ``config_dir`` in its own process; its log goes to a file."""

    def __init__(
        self,
        config_dir: Path,
        workdir: Path,
        extra_args: Sequence[str] = (),
        python: str = sys.executable,
    ) -> None:
        self.python = python
        self.config_dir = config_dir
        self.log_path = workdir / "control-plane.log"
        self.xds_port = free_port()
        self.admin_port = free_port()
        self.extra_args = tuple(extra_args)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    @property
    def xds_address(self) -> str:
        return f"127.0.0.1:{self.xds_port}"

    def start(self, timeout: float = 60.0) -> None:
        command = [
            self.python,
            "-m",
            "xds_server.cli",
            "serve",
            "--config-dir",
            str(self.config_dir),
            "--xds-address",
            self.xds_address,
            "--admin-address",
            f"127.0.0.1:{self.admin_port}",
            "--listener-address",
            "127.0.0.1",
            *self.extra_args,
        ]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        wait_for(self.ready, timeout, "the control plane to be ready")

    def ready(self) -> bool:
        if self._process is None or self._process.poll() is not None:
            raise RuntimeError(f"control plane exited:\n{self.log_tail()}")
        try:
            return self.admin("/readyz")[0] == 200
        except OSError:
            return False

    def admin(self, path: str) -> tuple[int, str]:
        """GET ``path`` on the admin address: (status, body)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=5)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read().decode()
        finally:
            connection.close()

    def metric(self, name: str) -> float | None:
        """One unlabelled sample of ``/metrics``."""
        for line in self.admin("/metrics")[1].splitlines():
            key, _, value = line.partition(" ")
            if key == name:
                return float(value)
        return None

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(15)


def rss_kib(pid: int) -> int:
    """VmRSS of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``condition`` with a growing pause until truthy; TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(pause)
        pause = min(pause * 1.5, 0.2)


def settle_rss(pid: int, quiet: float = 0.5, timeout: float = 10.0) -> int:
    """The RSS once it stopped changing by more than 1% for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    last = rss_kib(pid)
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = rss_kib(pid)
        if abs(now - last) > last / 100:
            last, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since >= quiet:
            return now
    return rss_kib(pid)


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(values: Sequence[float], digits: int = 4) -> dict[str, float | int]:
    """count, min, p50, p90, p99, max and mean of ``values`` (seconds, rounded)."""
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "min": round(min(values), digits),
        "p50": round(percentile(values, 0.5), digits),
        "p90": round(percentile(values, 0.9), digits),
        "p99": round(percentile(values, 0.99), digits),
        "max": round(max(values), digits),
        "mean": round(statistics.fmean(values), digits),
    }


def raise_fd_limit(wanted: int) -> None:
    """Raise the soft open-files limit (inherited by child processes) towards ``wanted``."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(hard, max(soft, wanted))
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
