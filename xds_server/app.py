"""The running control plane: provider -> translator -> snapshot cache -> ADS, plus admin.

``xdsctl serve`` builds a ``ControlPlane`` and runs it. This is the one module that wires
the watcher and the translator together. Snapshots from the provider are translated by a
single worker that always takes the newest one (a burst of changes costs one translation,
never a queue of them); translation and encoding run in a thread so the event loop keeps
serving proxies meanwhile. Nothing is sent to any proxy until the first snapshot has been
translated and set in the cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import structlog

from translator import TranslateOptions, TranslationResult, translate
from watcher import LoadError, ObjectSnapshot
from watcher.files import FileProvider
from xds_server import admin, app_metrics, httpd, runtime, status
from xds_server.ads import add_ads_to_server
from xds_server.bootstrap import split_host_port
from xds_server.cache import SnapshotCache

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ServeSettings:
    config_dir: Path
    xds_address: str = "127.0.0.1:18000"
    admin_address: str = "127.0.0.1:19000"
    listener_address: str = "0.0.0.0"
    privileged_port_offset: int = 10000  # Gateway ports below 1024 bind to port + offset
    debounce: float = 0.05
    max_delay: float = 0.5


class ControlPlane:
    """Holds the newest snapshot, translation and status; serves them to proxies and admin."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.cache = SnapshotCache()
        self.options = TranslateOptions(
            listener_address=settings.listener_address,
            privileged_port_offset=settings.privileged_port_offset,
        )
        self.result: TranslationResult | None = None
        self.statuses: list[dict[str, Any]] = []
        self.load_errors: tuple[LoadError, ...] = ()
        self.snapshot_version = 0
        self._status_index: Mapping[status.StatusKey, Mapping[str, Any]] = {}
        self._pending: ObjectSnapshot | None = None
        self._wakeup = asyncio.Event()
        self.ads: Any = None

    @property
    def ready(self) -> bool:
        return self.result is not None and self.cache.ready

    def publish(self, snapshot: ObjectSnapshot) -> None:
        """Called by the provider: keep only the newest snapshot and wake the worker."""
        self._pending = snapshot
        self._wakeup.set()

    async def translate_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            snapshot, self._pending = self._pending, None
            if snapshot is None:
                continue
            try:
                await loop.run_in_executor(None, self.apply, snapshot)
            except Exception:  # a translator bug must not stop the control plane
                app_metrics.TRANSLATION_FAILURES.inc()
                log.exception("translate.failed", snapshot=snapshot.version)

    def apply(self, snapshot: ObjectSnapshot) -> None:
        started = time.perf_counter()
        with runtime.gc_paused():
            result = translate(snapshot.bodies(), self.options)
        translated = time.perf_counter()
        self.cache.set_snapshot(result.gateways)
        stamped = status.stamp(result.statuses, self._status_index, datetime.now(UTC))
        self.statuses = stamped
        self._status_index = {status.entry_key(e): e for e in stamped}
        self.load_errors = snapshot.errors
        self.snapshot_version = snapshot.version
        self.result = result
        app_metrics.TRANSLATION_SECONDS.observe(translated - started)
        app_metrics.LOAD_ERRORS.set(len(snapshot.errors))
        app_metrics.SNAPSHOT_VERSION.set(snapshot.version)
        log.info(
            "translate.done",
            snapshot=snapshot.version,
            gateways=len(result.gateways),
            seconds=round(translated - started, 4),
            load_errors=len(snapshot.errors),
        )

    async def run(self) -> None:
        """Serve until cancelled."""
        settings = self.settings
        server = grpc.aio.server(options=GRPC_SERVER_OPTIONS)
        self.ads = add_ads_to_server(server, self.cache)
        host, port = split_host_port(settings.xds_address)
        bound = server.add_insecure_port(f"{host}:{port}")
        if bound == 0:
            raise OSError(f"cannot listen for xDS on {settings.xds_address}")
        await server.start()
        admin_host, admin_port = split_host_port(settings.admin_address)
        admin_server = await admin.start(self, admin_host, admin_port)
        log.info("serve.started", xds=settings.xds_address, admin=settings.admin_address)
        provider = FileProvider(
            settings.config_dir, debounce=settings.debounce, max_delay=settings.max_delay
        )
        tasks = [
            asyncio.create_task(provider.run(self.publish), name="provider"),
            asyncio.create_task(self.translate_forever(), name="translator"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await httpd.close_server(admin_server)
            await self.ads.close(grace=1.0)
            await server.stop(grace=1.0)


async def serve_until_signalled(plane: ControlPlane) -> None:
    """Run ``plane`` until SIGINT or SIGTERM, then stop it cleanly (streams closed, ports freed)."""
    task = asyncio.create_task(plane.run(), name="control-plane")
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task
    log.info("serve.stopped")


# Accept Envoy's HTTP/2 keepalive pings and large responses.
GRPC_SERVER_OPTIONS = (
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_ping_strikes", 0),
    ("grpc.max_send_message_length", 256 * 1024 * 1024),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
)
