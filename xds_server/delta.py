"""Delta ADS (``DeltaAggregatedResources``): the gRPC service and the views of its streams.

``xds_server.ads.add_ads_to_server`` registers it beside state-of-the-world ADS and lists
its streams with the SotW ones (``AdsServer.clients()`` / ``views()``), so the admin API,
CSDS and the Gateway status see both. A proxy selects it with ``api_type: DELTA_GRPC``
(``xdsctl bootstrap --delta``). Each proxy gets only the resources of the Gateway its node
names, and nothing before the cache is ready or that Gateway exists. ::

    proxy ──DeltaDiscoveryRequest──► delta_state.apply_request ──► Outcome (logged, counted)
                                                │ wake
    cache ──watch(gateway)──────────────────────┤
                                                ▼
             delta_state.next_response ──► DeltaResponse | None ──► record_sent ──► bytes

The decisions (what to send, in which order, what the proxy holds) live in the pure
``xds_server.delta_state``; this module does the I/O, the logging, the metrics and the
registry. It must not encode resources (the cache did; ``delta_wire`` only frames them),
translate, or block the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from translator.result import TYPE_KEYS, TYPE_ORDER
from xds_server import xds_metrics
from xds_server.cache import Resource, SnapshotCache, content_version
from xds_server.clients import ClientView, TypeView
from xds_server.delta_diff import DeltaTypeState
from xds_server.delta_state import (
    WILDCARD,
    DeltaStreamState,
    apply_request,
    encode_response,
    new_stream_state,
    next_response,
    record_sent,
    rejecting,
)
from xds_server.streams import Stream, waker

log = structlog.get_logger(__name__)


# -- views ------------------------------------------------------------------------------


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def _requested(ts: DeltaTypeState) -> frozenset[str]:
    return ts.names | {WILDCARD} if ts.wildcard else ts.names


def _version(resources: Mapping[str, Resource], known: bool) -> str:
    """The content version of what a proxy holds; "" when it was never sent or confirmed."""
    return content_version(resources.values()) if known or resources else ""


def _describe_type(ts: DeltaTypeState) -> dict[str, Any]:
    nack = ts.nack
    return {
        "subscribed": ts.subscribed,
        "wildcard": ts.wildcard,
        "resource_names": sorted(_requested(ts)),
        "sent_version": _version(ts.held, bool(ts.nonce)),
        "sent_nonce": ts.nonce,
        "pending": ts.pending is not None,
        "acked_version": _version(ts.acked, ts.acks > 0),
        "resources_sent": len(ts.held),
        "resources_acked": len(ts.acked),
        "nack": None
        if nack is None
        else {"version": nack.version, "message": nack.message, "at": _iso(nack.at)},
    }


def describe(state: DeltaStreamState) -> dict[str, Any]:
    """One stream as JSON-able data: the shape of ``ads.describe``, plus delta's own keys.

    ``protocol`` is "delta"; per type ``wildcard`` and the number of resources the proxy
    holds (``resources_sent``) and ACKed; ``sent_version`` is the content version of what
    it holds once every response sent is applied.
    """
    return {
        "node": {"id": state.node_id, "cluster": state.node_cluster},
        "gateway": state.gateway,
        "peer": state.peer,
        "connected_since": _iso(state.connected_at),
        "protocol": "delta",
        "types": {TYPE_KEYS[t]: _describe_type(state.types[t]) for t in TYPE_ORDER},
    }


def _type_view(ts: DeltaTypeState) -> TypeView:
    held, acked = dict(ts.held), dict(ts.acked)
    return TypeView(
        type_url=ts.type_url,
        subscribed=ts.subscribed,
        names=_requested(ts),
        sent_version=_version(held, bool(ts.nonce)),
        sent=held,
        pending=ts.pending is not None,
        acked_version=_version(acked, ts.acks > 0),
        acked=acked,
        nack=ts.nack if ts.nack_standing else None,
        last_nack=ts.nack,
    )


def view(state: DeltaStreamState, stream_id: int = 0) -> ClientView:
    """The stream as every reader outside this module sees it (``xds_server.clients``)."""
    return ClientView(
        stream_id=stream_id,
        protocol="delta",
        node_id=state.node_id,
        node_cluster=state.node_cluster,
        gateway=state.gateway,
        peer=state.peer,
        connected_at=state.connected_at,
        types={t: _type_view(state.types[t]) for t in TYPE_ORDER},
    )


# -- the service ------------------------------------------------------------------------


@dataclass(slots=True)
class _Conn:
    state: DeltaStreamState
    wake: asyncio.Event


class DeltaServer:
    """Serves delta ADS streams from a SnapshotCache; keeps the registry of its streams."""

    def __init__(
        self,
        cache: SnapshotCache,
        on_sync_change: Callable[[str | None], None] | None = None,
        ids: Iterator[int] | None = None,
    ) -> None:
        self._cache = cache
        # Called with the Gateway when one of its proxies starts or stops rejecting config,
        # connects or disconnects (as AdsServer does).
        self._on_sync_change = on_sync_change
        self._conns: dict[int, _Conn] = {}
        self._ids = ids if ids is not None else itertools.count(1)  # shared with SotW
        self._closing = False
        self._drained = asyncio.Event()
        self._drained.set()

    def clients(self) -> list[dict[str, Any]]:
        """Every connected delta stream as JSON-able data (part of ``/api/clients``)."""
        return [describe(conn.state) for conn in list(self._conns.values())]

    def views(self) -> list[ClientView]:
        """Every connected delta stream as a ``ClientView``."""
        return [view(conn.state, conn_id) for conn_id, conn in list(self._conns.items())]

    def _sync_changed(self, gateway: str | None) -> None:
        if self._on_sync_change is not None:
            try:
                self._on_sync_change(gateway)
            except Exception:  # a reader's bug must not end the stream
                log.exception("xds.sync_change_callback_failed", gateway=gateway)

    async def close(self, grace: float = 5.0) -> None:
        """Stop serving: end every stream (status OK, proxies reconnect elsewhere) and wait."""
        self._closing = True
        for conn in list(self._conns.values()):
            conn.wake.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), grace)

    async def serve(self, stream: Stream, peer: str = "") -> None:
        """Run one delta ADS stream until the proxy or the server ends it."""
        first = await stream.recv()
        if first is None or self._closing:
            return
        state = new_stream_state(first.node, peer, time.time())
        conn_id, wake = next(self._ids), asyncio.Event()
        self._conns[conn_id] = _Conn(state, wake)
        self._drained.clear()
        self._handle(state, first)
        reader = asyncio.create_task(self._read(stream, state, wake))
        reader.add_done_callback(lambda _task: wake.set())
        watch = self._cache.watch(state.gateway, waker(wake)) if state.gateway else None
        xds_metrics.CONNECTED_PROXIES.inc()
        log.info("xds.connect", node=state.node_id, gateway=state.gateway, peer=peer, delta=True)
        self._sync_changed(state.gateway)
        try:
            await self._write_loop(stream, state, wake, reader)
        finally:
            xds_metrics.CONNECTED_PROXIES.dec()
            if watch is not None:
                self._cache.cancel(watch)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            del self._conns[conn_id]
            if not self._conns:
                self._drained.set()
            log.info("xds.disconnect", node=state.node_id, gateway=state.gateway, peer=peer)
            self._sync_changed(state.gateway)

    async def _write_loop(
        self,
        stream: Stream,
        state: DeltaStreamState,
        wake: asyncio.Event,
        reader: asyncio.Task[None],
    ) -> None:
        while not (self._closing or reader.done()):
            wake.clear()
            while (response := next_response(state, self._cache.get(state.gateway))) is not None:
                nonce = record_sent(state, response, time.monotonic())
                xds_metrics.RESPONSES_SENT.labels(xds_metrics.type_label(response.type_url)).inc()
                await stream.send(encode_response(response, nonce))
            await wake.wait()

    async def _read(self, stream: Stream, state: DeltaStreamState, wake: asyncio.Event) -> None:
        while (req := await stream.recv()) is not None:
            self._handle(state, req)
            wake.set()

    def _handle(self, state: DeltaStreamState, req: Any) -> None:
        was_rejecting = rejecting(state)
        outcome = apply_request(state, req, time.monotonic(), time.time())
        if outcome.kind == "nack" or (outcome.kind == "ack" and was_rejecting):
            self._sync_changed(state.gateway)
        label = xds_metrics.type_label(outcome.type_url)
        if outcome.kind == "ack":
            xds_metrics.ACKS.labels(label).inc()
            xds_metrics.PUSH_TO_ACK_SECONDS.labels(label).observe(outcome.latency)
        elif outcome.kind == "nack":
            xds_metrics.NACKS.labels(label).inc()
            log.warning(
                "xds.nack",
                node=state.node_id,
                gateway=state.gateway,
                type=outcome.type_url,
                version=outcome.version,
                message=outcome.message,
                delta=True,
            )
        elif outcome.kind in ("stale", "unknown_type"):
            log.debug("xds.ignored", kind=outcome.kind, node=state.node_id, type=outcome.type_url)
