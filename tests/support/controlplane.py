"""`xdsctl serve` as a real subprocess, for end-to-end tests.

Who calls it: the e2e stack (tests/e2e/conftest.py) and tests that kill and restart the
control plane. It waits on /readyz with a deadline, exposes the admin API, and stops the
process (SIGTERM, then SIGKILL); `kill()` simulates a crash.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from support.http import get
from support.wait import wait_until


class ControlPlaneProcess:
    def __init__(self, config_dir: Path, workdir: Path, *, xds_port: int, admin_port: int) -> None:
        self.config_dir = config_dir
        self.log_path = workdir / "control-plane.log"
        self.xds_port = xds_port
        self.admin_port = admin_port
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def start(self, timeout: float = 30.0) -> ControlPlaneProcess:
        command = [
            sys.executable,
            "-m",
            "xds_server.cli",
            "serve",
            "--config-dir",
            str(self.config_dir),
            "--xds-address",
            f"127.0.0.1:{self.xds_port}",
            "--admin-address",
            f"127.0.0.1:{self.admin_port}",
            "--listener-address",
            "127.0.0.1",
            "--debounce",
            "0.02",
            "--max-delay",
            "0.2",
        ]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        wait_until(
            self.ready,
            timeout,
            message=lambda: f"control plane not ready; log tail:\n{self.log_tail()}",
        )
        return self

    def ready(self) -> bool:
        if self._process is None or self._process.poll() is not None:
            raise AssertionError(f"control plane exited; log tail:\n{self.log_tail()}")
        try:
            return get(self.admin_url + "/readyz", timeout=2).status == 200
        except OSError:
            return False

    def api(self, path: str) -> Any:
        result = get(self.admin_url + path, timeout=5)
        assert result.status == 200, result.text
        return json.loads(result.body)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """Crash it: SIGKILL, no goodbye to the proxies."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(10)
            self._process = None

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(10)
        self._process = None
