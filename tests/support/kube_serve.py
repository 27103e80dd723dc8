"""``xdsctl serve --kubernetes`` as a subprocess, as a replica runs in a cluster.

Who uses it: tests/kube. Ports are chosen free on 127.0.0.1; stdout and stderr go to
``log_path``; ``stop`` terminates (SIGTERM: a clean stop, the Lease released) and returns the
exit code.

    with ServeProcess(kubeconfig, tmp_path / "a.log", "--lease-identity", "a") as plane:
        plane.wait_ready()
        plane.metrics()["gateway_xds_leader"]
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from .http import free_port, get
from .wait import wait_until

__all__ = ["ServeProcess", "parse_metrics"]


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text format: sample name with its labels -> value."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


class ServeProcess:
    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        *extra_args: str,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.xds_port, self.admin_port = free_port(), free_port()
        self.admin = f"http://127.0.0.1:{self.admin_port}"
        self.log_path = log_path
        self.command = [
            sys.executable, "-m", "xds_server.cli", "serve", "--kubernetes",
            "--kubeconfig", str(kubeconfig),
            "--xds-address", f"127.0.0.1:{self.xds_port}",
            "--admin-address", f"127.0.0.1:{self.admin_port}",
            "--listener-address", "127.0.0.1",
            *extra_args,
        ]  # fmt: skip
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> ServeProcess:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, env=self.env
            )
        return self

    def stop(self) -> int | None:
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        return process.returncode

    def log_text(self, tail: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:]

    def alive(self) -> bool:
        """True while running; an AssertionError with the log when it exited."""
        assert self.process is not None, "not started"
        assert self.process.poll() is None, self.log_text()
        return True

    def readyz(self) -> int:
        self.alive()
        return get(f"{self.admin}/readyz", timeout=2).status

    def wait_ready(self, timeout: float = 30.0) -> None:
        wait_until(
            lambda: self.readyz() == 200, timeout=timeout, ignore=(OSError,),
            message=self.log_text,
        )  # fmt: skip

    def api(self, path: str) -> Any:
        """JSON of the admin API at ``path`` (e.g. ``/api/clients``)."""
        answer = get(f"{self.admin}{path}", timeout=5)
        assert answer.status == 200, (path, answer.status, answer.body[:500])
        return json.loads(answer.body)

    def metrics(self) -> dict[str, float]:
        return parse_metrics(get(f"{self.admin}/metrics", timeout=5).body.decode())
