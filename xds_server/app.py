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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import structlog

from translator import CONTROLLER_NAME, TranslateOptions, TranslationResult
from translator.incremental import IncrementalTranslator
from watcher import LoadError, ObjectSnapshot
from watcher.files import FileProvider
from watcher.kubernetes import KubernetesProvider, api_client_from
from xds_server import admin, app_metrics, httpd, runtime, status
from xds_server.ads import add_ads_to_server
from xds_server.bootstrap import split_host_port
from xds_server.cache import SnapshotCache
from xds_server.clients import ClientView
from xds_server.csds import add_csds_to_server
from xds_server.leader import DEFAULT_LEASE_NAME, LeaseSettings
from xds_server.proxy_conditions import GatewayStatuses, RejectionTracker
from xds_server.write_back import (
    WriteBack,
    default_identity,
    default_namespace,
    provider_resolver,
)

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ServeSettings:
    config_dir: Path | None = None  # the file provider's directory, unless kubernetes
    kubernetes: bool = False  # list and watch an API server instead
    kubeconfig: Path | None = None  # with kubernetes; None: in-cluster config
    write_status: bool = True  # with kubernetes: the Lease holder writes status back
    lease_namespace: str | None = None  # None: POD_NAMESPACE / the service account's
    lease_name: str = DEFAULT_LEASE_NAME
    lease_identity: str | None = None  # None: POD_NAME or host name, with a random suffix
    xds_address: str = "127.0.0.1:18000"
    admin_address: str = "127.0.0.1:19000"
    listener_address: str = "0.0.0.0"
    privileged_port_offset: int = 10000  # Gateway ports below 1024 bind to port + offset
    debounce: float = 0.02
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
        # The status list (translator entries + the ProxiesAccepted condition on Gateways).
        self.gateway_statuses = GatewayStatuses()
        self.rejections = RejectionTracker(
            self.client_views, self.gateway_statuses, on_redone=self._statuses_changed
        )
        self.load_errors: tuple[LoadError, ...] = ()
        self.snapshot_version = 0
        # Only what changed since the last snapshot is translated and stamped again.
        self.translator = IncrementalTranslator(self.options)
        self._stamper = status.Stamper()
        self._pending: ObjectSnapshot | None = None
        self._wakeup = asyncio.Event()
        self.ads: Any = None
        self.write_back: WriteBack | None = None  # serving --kubernetes: status write-back

    @property
    def ready(self) -> bool:
        return self.result is not None and self.cache.ready

    @property
    def statuses(self) -> list[dict[str, Any]]:
        """Every object's status as /api/status shows it (see ``proxy_conditions``)."""
        return self.gateway_statuses.entries

    @statuses.setter
    def statuses(self, entries: list[dict[str, Any]]) -> None:
        self.gateway_statuses.set_translated(entries)

    def _statuses_changed(self) -> None:
        if self.write_back is not None:
            self.write_back.notify()

    def client_views(self) -> list[ClientView]:
        """Every connected proxy (SotW and delta): what it was sent and ACKed."""
        return self.ads.views() if self.ads is not None else []

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
            result = self.translator.translate(snapshot.objects)
        translated = time.perf_counter()
        self.cache.set_snapshot(result.gateways)
        stamped = self._stamper.stamp(result.statuses, datetime.now(UTC))
        self.statuses = stamped
        self.load_errors = snapshot.errors
        self.snapshot_version = snapshot.version
        self.result = result
        self._statuses_changed()
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
        self.ads = add_ads_to_server(server, self.cache, self.rejections.changed)
        add_csds_to_server(server, self.client_views, self.cache.get)
        host, port = split_host_port(settings.xds_address)
        bound = server.add_insecure_port(f"{host}:{port}")
        if bound == 0:
            raise OSError(f"cannot listen for xDS on {settings.xds_address}")
        await server.start()
        admin_host, admin_port = split_host_port(settings.admin_address)
        admin_server = await admin.start(self, admin_host, admin_port)
        log.info("serve.started", xds=settings.xds_address, admin=settings.admin_address)
        provider = _provider(settings)
        if isinstance(provider, KubernetesProvider) and settings.write_status:
            self.write_back = _write_back(settings, provider, self.gateway_statuses)
            self.write_back.start()
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
            provider.close()
            await httpd.close_server(admin_server)
            await self.ads.close(grace=1.0)
            await server.stop(grace=1.0)
            self.rejections.close()
            if self.write_back is not None:
                await asyncio.to_thread(self.write_back.stop)


def _provider(settings: ServeSettings) -> FileProvider | KubernetesProvider:
    """The file provider on ``config_dir``, or the Kubernetes provider."""
    if settings.kubernetes:
        return KubernetesProvider(
            api_client_from(settings.kubeconfig),
            controller_name=CONTROLLER_NAME,
            debounce=settings.debounce,
            max_delay=settings.max_delay,
        )
    if settings.config_dir is None:
        raise ValueError("ServeSettings needs config_dir or kubernetes=True")
    return FileProvider(
        settings.config_dir, debounce=settings.debounce, max_delay=settings.max_delay
    )


def _write_back(
    settings: ServeSettings, provider: KubernetesProvider, statuses: GatewayStatuses
) -> WriteBack:
    """Leader election on the configured Lease, a status writer reading ``statuses``, and
    this replica's report of its proxies' rejections."""
    lease = LeaseSettings(
        namespace=settings.lease_namespace or default_namespace(),
        identity=settings.lease_identity or default_identity(),
        name=settings.lease_name,
    )
    return WriteBack(
        provider.api_client,
        lease,
        source=lambda: statuses.entries,
        controller_name=CONTROLLER_NAME,
        resolve=provider_resolver(provider),
        statuses=statuses,
    )


async def serve_until_signalled(plane: ControlPlane) -> None:
    """Run ``plane`` until SIGINT or SIGTERM, then stop it cleanly (streams closed, ports freed)."""
    task = asyncio.create_task(plane.run(), name="control-plane")
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task
    log.info("serve.stopped")


# Accept Envoy's HTTP/2 keepalive pings and large messages; reap vanished proxies. Other
# C-core arguments (lookahead, BDP probing, read chunk sizes, write buffer, HPACK tables,
# max_concurrent_streams) were measured with benchmarks/fanout.py and saved no memory.
GRPC_SERVER_OPTIONS = (
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_ping_strikes", 0),  # any ping rate is accepted: never GOAWAY a proxy
    # Our own pings find proxies that vanished without closing their connection (a node
    # lost, a network partition), so their streams and memory are freed within ~80 s
    # instead of after TCP's hours. Envoy answers pings; idle streams carry no data, so
    # pings without data must not be capped.
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.http2.max_pings_without_data", 0),
    # Nothing reads channelz; without it each connection costs ~0.7 KiB less.
    ("grpc.enable_channelz", 0),
    ("grpc.max_send_message_length", 256 * 1024 * 1024),
    # A delta reconnect lists every resource it has (name and version): ~70 bytes each,
    # ~2 MB for 30,000 resources. 64 MiB leaves room for far larger Gateways.
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
)
