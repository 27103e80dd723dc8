"""What the SotW and delta ADS servers share: the stream registry and the serving loop.

``ads.AdsServer`` (state of the world) and ``delta.DeltaServer`` (incremental) are each a
``StreamServer`` running their protocol's pure per-stream functions (a ``StateMachine``:
new state, apply a request, next response, record it sent, encode, describe, view). This
module keeps the registry of connected streams, runs a stream (read requests, watch the
stream's Gateway in the cache, write what the state machine says is due), closes and
drains, logs and counts requests, and calls ``on_sync_change``. It also holds the pieces
both ``describe`` and ``view`` functions build on. ::

    serve(stream) ── first request ──► new_state ──► registry, cache.watch(gateway)
        reader: recv ──► apply ──► Outcome (logged, counted; sync change on NACK / recovery)
        writer: wake ──► next_response(state, cache.get(gateway)) ──► record_sent, encode, send

It must not decide what to send (the state machines do), encode resources, or know gRPC
(``ads.add_ads_to_server`` adapts grpc.aio calls to ``streams.Stream``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

import structlog

from xds_server import xds_metrics
from xds_server.cache import GatewaySnapshot, SnapshotCache
from xds_server.clients import ClientView, Nack, TypeView
from xds_server.clients import Protocol as WireProtocol
from xds_server.streams import Stream, waker

log = structlog.get_logger(__name__)


class StreamIdentity(Protocol):
    """Who is at the other end of a stream: what every per-stream state records first."""

    node_id: str
    node_cluster: str
    gateway: str | None
    peer: str
    connected_at: float  # wall clock


class RequestOutcome(Protocol):
    """What a request was (``ads.Outcome``): the server logs and counts it."""

    @property
    def kind(self) -> str: ...

    @property
    def type_url(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def message(self) -> str: ...

    @property
    def latency(self) -> float: ...


class Typed(Protocol):
    """A response: what the server needs to know of it is its type URL."""

    @property
    def type_url(self) -> str: ...


S = TypeVar("S", bound=StreamIdentity)
R = TypeVar("R", bound=Typed)


@dataclass(frozen=True, slots=True)
class StateMachine(Generic[S, R]):
    """One protocol's pure per-stream functions, which a ``StreamServer`` runs."""

    new_state: Callable[[Any, str, float], S]  # (first request's node, peer, wall clock)
    apply: Callable[[S, Any, float, float], RequestOutcome]  # (state, request, now, wall)
    rejecting: Callable[[S], bool]  # a NACK stands
    next_response: Callable[[S, GatewaySnapshot | None], R | None]
    record_sent: Callable[[S, R, float], str]  # the nonce
    encode: Callable[[R, str], bytes]
    describe: Callable[[S], dict[str, Any]]
    view: Callable[[S, int], ClientView]
    log_extra: Mapping[str, Any] = field(default_factory=dict)  # on connect and NACK lines


# -- describe and view helpers ----------------------------------------------------------


def iso(epoch: float) -> str:
    """``epoch`` (seconds) as an ISO 8601 UTC timestamp."""
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def describe_nack(nack: Nack | None) -> dict[str, Any] | None:
    """A NACK as JSON-able data (the ``nack`` entry of a described type)."""
    if nack is None:
        return None
    return {"version": nack.version, "message": nack.message, "at": iso(nack.at)}


def describe_stream(state: StreamIdentity, types: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """One stream as JSON-able data: node, gateway, peer, since, ``extra``, then ``types``."""
    return {
        "node": {"id": state.node_id, "cluster": state.node_cluster},
        "gateway": state.gateway,
        "peer": state.peer,
        "connected_since": iso(state.connected_at),
        **extra,
        "types": types,
    }


def client_view(
    state: StreamIdentity, stream_id: int, protocol: WireProtocol, types: Mapping[str, TypeView]
) -> ClientView:
    """The ``ClientView`` of a stream whose types were already viewed."""
    return ClientView(
        stream_id=stream_id,
        protocol=protocol,
        node_id=state.node_id,
        node_cluster=state.node_cluster,
        gateway=state.gateway,
        peer=state.peer,
        connected_at=state.connected_at,
        types=types,
    )


# -- the server -------------------------------------------------------------------------


@functools.cache
def _labelled_child(metric: Any, label: str) -> Any:
    return metric.labels(label)


def labelled(metric: Any, type_url: str) -> Any:
    """``metric.labels(type)``, looked up once per metric and type (it runs per message)."""
    return _labelled_child(metric, xds_metrics.type_label(type_url))


@dataclass(slots=True)
class _Conn(Generic[S]):
    state: S
    wake: asyncio.Event


class StreamServer(Generic[S, R]):
    """Serves ADS streams of one protocol from a SnapshotCache; keeps the registry of them."""

    def __init__(
        self,
        machine: StateMachine[S, R],
        cache: SnapshotCache,
        on_sync_change: Callable[[str | None], None] | None = None,
        ids: Iterator[int] | None = None,
    ) -> None:
        self._machine = machine
        self._cache = cache
        # Called with the Gateway when one of its proxies starts or stops rejecting config,
        # connects or disconnects (the Gateway status shows which proxies reject what).
        self._on_sync_change = on_sync_change
        self._conns: dict[int, _Conn[S]] = {}
        self._ids = ids if ids is not None else itertools.count(1)  # may be shared
        self._closing = False
        self._drained = asyncio.Event()
        self._drained.set()

    # -- the registry ---------------------------------------------------------------------

    def clients(self) -> list[dict[str, Any]]:
        """Every stream of this server as JSON-able data (part of ``/api/clients``)."""
        return [self._machine.describe(conn.state) for conn in list(self._conns.values())]

    def views(self) -> list[ClientView]:
        """Every stream of this server as a ``ClientView``."""
        view = self._machine.view
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

    # -- serving --------------------------------------------------------------------------

    async def serve(self, stream: Stream, peer: str = "") -> None:
        """Run one ADS stream until the proxy or the server ends it."""
        first = await stream.recv()
        if first is None or self._closing:
            return
        state = self._machine.new_state(first.node, peer, time.time())
        conn_id, wake = next(self._ids), asyncio.Event()
        self._conns[conn_id] = _Conn(state, wake)
        self._drained.clear()
        self._handle(state, first)
        del first  # parsed requests are large (one name per resource): keep none while idle
        reader = asyncio.create_task(self._read(stream, state, wake))
        reader.add_done_callback(lambda _task: wake.set())
        watch = self._cache.watch(state.gateway, waker(wake)) if state.gateway else None
        xds_metrics.CONNECTED_PROXIES.inc()
        extra = self._machine.log_extra
        log.info("xds.connect", node=state.node_id, gateway=state.gateway, peer=peer, **extra)
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
        self, stream: Stream, state: S, wake: asyncio.Event, reader: asyncio.Task[None]
    ) -> None:
        machine = self._machine
        while not (self._closing or reader.done()):
            wake.clear()
            while (
                response := machine.next_response(state, self._cache.get(state.gateway))
            ) is not None:
                nonce = machine.record_sent(state, response, time.monotonic())
                labelled(xds_metrics.RESPONSES_SENT, response.type_url).inc()
                await stream.send(machine.encode(response, nonce))
            await wake.wait()

    async def _read(self, stream: Stream, state: S, wake: asyncio.Event) -> None:
        while (req := await stream.recv()) is not None:
            self._handle(state, req)
            req = None  # not kept alive while waiting for the next one
            wake.set()

    def _handle(self, state: S, req: Any) -> None:
        was_rejecting = self._machine.rejecting(state)
        outcome = self._machine.apply(state, req, time.monotonic(), time.time())
        if outcome.kind == "nack" or (outcome.kind == "ack" and was_rejecting):
            self._sync_changed(state.gateway)
        if outcome.kind == "ack":
            labelled(xds_metrics.ACKS, outcome.type_url).inc()
            labelled(xds_metrics.PUSH_TO_ACK_SECONDS, outcome.type_url).observe(outcome.latency)
        elif outcome.kind == "nack":
            labelled(xds_metrics.NACKS, outcome.type_url).inc()
            log.warning(
                "xds.nack",
                node=state.node_id,
                gateway=state.gateway,
                type=outcome.type_url,
                version=outcome.version,
                message=outcome.message,
                **self._machine.log_extra,
            )
        elif outcome.kind in ("stale", "unknown_type"):
            log.debug("xds.ignored", kind=outcome.kind, node=state.node_id, type=outcome.type_url)
