"""ADS, state of the world: the per-stream state machine and the gRPC service around it.

The server process wires it: ``ads = add_ads_to_server(server, cache)`` before
``server.start()``; ``await ads.close()`` then ``await server.stop(grace)`` to stop. The admin
API reads ``ads.clients()``. Each proxy gets only the resources of the Gateway its node names
(``node_gateway``), and nothing at all before the cache is ready or that Gateway exists. ::

    proxy ──DiscoveryRequest──► apply_request(state, req) ──► Outcome (ACK/NACK/stale/...)
                                        │ wake                     logged and counted
    cache ──watch(gateway)──────────────┤
                                        ▼
              next_response(state, target) ──► Response | None ──► record_sent ──► bytes

``next_response`` orders a change so that no proxy drops traffic (make-before-break):
CDS (the union of the clusters last ACKed and the target's) → EDS/SDS (as soon as the EDS
subscription covers the clusters sent, without waiting for the CDS ACK: Envoy withholds
that ACK until new clusters have warmed, i.e. got their endpoints; re-sent when clusters
were added or changed) → LDS (after the CDS ACK) → RDS → CDS again with exactly the
target's clusters. Each type has at most one response awaiting its ACK/NACK; what waits is
recomputed from the newest snapshot, never queued.

The registry and the serving loop (read, watch the cache, write what is due) are
``xds_server.stream_server``'s, shared with delta ADS; ``AdsServer`` plugs in the functions
above. This module must not encode resources (the cache did, once), translate, or block the
event loop; the state functions do no I/O and read no clock (callers pass the time), so they are
tested without sockets through the two-method ``Stream`` interface.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import grpc
from envoy.service.discovery.v3 import discovery_pb2

from translator.result import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    SECRET_TYPE,
    TYPE_KEYS,
    TYPE_ORDER,
)
from xds_server import wire
from xds_server.cache import GatewaySnapshot, Resource, SnapshotCache, TypeSet
from xds_server.clients import ClientView, Nack, TypeView
from xds_server.stream_server import (
    StateMachine,
    StreamServer,
    client_view,
    describe_nack,
    describe_stream,
)
from xds_server.streams import shared_names

SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"
_WILDCARD_TYPES = frozenset({CLUSTER_TYPE, LISTENER_TYPE})


def node_gateway(node: Any) -> str | None:
    """The "namespace/name" a proxy serves: node metadata "gateway", else ``node.cluster``."""
    value = node.metadata.fields.get("gateway")
    named = value.string_value if value is not None else ""
    for candidate in (named, node.cluster):
        namespace, _, name = candidate.partition("/")
        if namespace and name and "/" not in name:
            return str(candidate)
    return None


@dataclass(slots=True)
class TypeState:
    """What one stream asked for and was sent, for one type URL."""

    type_url: str
    subscribed: bool = False
    names: frozenset[str] = frozenset()  # requested names; empty means wildcard for LDS/CDS
    # A request named resources: from then on an empty list unsubscribes from everything
    # instead of meaning the legacy wildcard (xDS protocol, "How the client specifies").
    explicit: bool = False
    answer: bool = False  # an initial request (empty nonce) waits for its answer
    client_version: str = ""  # version_info of that initial request
    version: str = ""  # version last sent (or found up to date on reconnect)
    nonce: str = ""
    sent: TypeSet | None = None
    sent_at: float = 0.0  # monotonic
    pending: bool = False  # the last response awaits its ACK/NACK
    acked_version: str = ""
    acked: Mapping[str, Resource] = field(default_factory=dict)  # of the last ACKed response
    rejected: str | None = None  # version of the last NACKed response: never re-sent
    nack: Nack | None = None
    memo: tuple[TypeSet, frozenset[str], TypeSet] | None = None  # (target, names) -> selection


@dataclass(slots=True)
class StreamState:
    """Everything the decision function knows about one stream."""

    node_id: str
    node_cluster: str
    gateway: str | None
    peer: str = ""
    connected_at: float = 0.0  # wall clock
    types: dict[str, TypeState] = field(default_factory=dict)
    nonces: int = 0
    refresh_eds: bool = False  # a CDS push added/changed EDS clusters: re-send EDS
    eds_needed: frozenset[str] = frozenset()  # EDS names of the clusters Envoy has or warms
    eds_covered: bool = True  # the EDS subscription covers eds_needed
    union_memo: tuple[Mapping[str, Resource], TypeSet, TypeSet] | None = None


def new_stream_state(node: Any, peer: str = "", now: float = 0.0) -> StreamState:
    """The state of a stream whose first request came from ``node``."""
    return StreamState(
        node_id=str(node.id),
        node_cluster=str(node.cluster),
        gateway=node_gateway(node),
        peer=peer,
        connected_at=now,
        types={t: TypeState(t) for t in TYPE_ORDER},
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a request was: the server logs and counts it."""

    kind: Literal["initial", "ack", "nack", "update", "stale", "unknown_type"]
    type_url: str
    version: str = ""
    message: str = ""
    latency: float = 0.0  # seconds from push to ACK/NACK


def _set_clusters(state: StreamState, clusters: Iterable[Resource]) -> None:
    """Envoy has (or is warming) ``clusters``: EDS must cover their CLAs before it is sent."""
    state.eds_needed = shared_names(r.eds_name for r in clusters if r.eds_name)
    _update_coverage(state)


def _update_coverage(state: StreamState) -> None:
    state.eds_covered = state.eds_needed <= state.types[ENDPOINT_TYPE].names


def _set_acked(state: StreamState, ts: TypeState, sent: TypeSet) -> None:
    ts.acked_version, ts.acked, ts.rejected = sent.version, sent.by_name, None
    if ts.type_url == CLUSTER_TYPE:
        _set_clusters(state, sent.resources)


def apply_request(state: StreamState, req: Any, now: float, wall: float) -> Outcome:
    """Fold one DiscoveryRequest into the stream state (``now`` monotonic, ``wall`` epoch)."""
    ts = state.types.get(req.type_url)
    if ts is None:
        return Outcome("unknown_type", req.type_url)
    if not req.response_nonce:  # initial request, or a re-subscription: always answered
        ts.subscribed, ts.names, ts.answer = True, shared_names(req.resource_names), True
        ts.explicit = ts.explicit or bool(ts.names)
        ts.client_version, ts.pending = req.version_info, False
        _update_coverage(state)
        return Outcome("initial", ts.type_url, req.version_info)
    if req.response_nonce != ts.nonce:
        return Outcome("stale", ts.type_url, req.version_info)
    ts.names = shared_names(req.resource_names)
    ts.explicit = ts.explicit or bool(ts.names)
    _update_coverage(state)
    if not ts.pending:
        return Outcome("update", ts.type_url, ts.version)
    ts.pending = False
    latency = now - ts.sent_at
    if req.HasField("error_detail"):
        ts.rejected = ts.version
        ts.nack = Nack(ts.version, str(req.error_detail.message), wall)
        if ts.type_url == CLUSTER_TYPE:  # Envoy kept the clusters it had
            _set_clusters(state, ts.acked.values())
        return Outcome("nack", ts.type_url, ts.version, ts.nack.message, latency)
    assert ts.sent is not None  # a nonce was recorded, so something was sent
    _set_acked(state, ts, ts.sent)
    return Outcome("ack", ts.type_url, ts.version, latency=latency)


@dataclass(frozen=True, slots=True)
class Response:
    """A response to send: the type and exactly the resources (with their version)."""

    type_url: str
    resources: TypeSet


def _selection(ts: TypeState, target: TypeSet) -> TypeSet:
    """What the subscription selects from the target (wildcard LDS/CDS: everything)."""
    if ts.type_url in _WILDCARD_TYPES and ("*" in ts.names or not (ts.names or ts.explicit)):
        return target
    if ts.memo is not None and ts.memo[0] is target and ts.memo[1] is ts.names:
        return ts.memo[2]
    selected = target.select(ts.names)
    ts.memo = (target, ts.names, selected)
    return selected


def _cluster_selection(state: StreamState, wanted: TypeSet, cleanup: bool) -> TypeSet:
    """The target clusters, plus (until cleanup) the ACKed ones the target no longer has."""
    acked = state.types[CLUSTER_TYPE].acked
    if cleanup or acked.keys() <= wanted.by_name.keys():
        return wanted
    memo = state.union_memo
    if memo is not None and memo[0] is acked and memo[1] is wanted:
        return memo[2]
    union = TypeSet.of(CLUSTER_TYPE, {**acked, **wanted.by_name}.values())
    state.union_memo = (acked, wanted, union)
    return union


def _adopt(state: StreamState, ts: TypeState, selected: TypeSet) -> None:
    """A reconnecting proxy whose initial request names the version we would send has it."""
    if ts.answer and not ts.nonce and ts.client_version == selected.version:
        ts.answer, ts.version, ts.sent = False, selected.version, selected
        _set_acked(state, ts, selected)


def _due(ts: TypeState, selected: TypeSet, force: bool = False) -> bool:
    """Whether ``selected`` should be sent now (subscribed, nothing pending, not rejected)."""
    if not ts.subscribed or ts.pending or selected.version == ts.rejected:
        return False
    return ts.answer or force or selected.version != ts.version


def _settled(ts: TypeState, selected: TypeSet, force: bool = False) -> bool:
    return not ts.pending and not _due(ts, selected, force)


def next_response(state: StreamState, target: GatewaySnapshot | None) -> Response | None:
    """The next response this stream should get towards ``target``, or None for now."""
    if target is None:
        return None
    cds, eds, sds, lds, rds = (state.types[t] for t in TYPE_ORDER)
    sel = {t: _selection(state.types[t], target.types[t]) for t in TYPE_ORDER}
    for type_url in TYPE_ORDER:
        _adopt(state, state.types[type_url], sel[type_url])
    covered = state.eds_covered
    clusters_done = not cds.pending and covered
    endpoints_done = (
        clusters_done
        and _settled(eds, sel[ENDPOINT_TYPE], state.refresh_eds)
        and _settled(sds, sel[SECRET_TYPE])
    )
    listeners_done = endpoints_done and _settled(lds, sel[LISTENER_TYPE])
    # Old clusters go only once the proxy took the new listeners and routes: after a NACK it
    # still routes with its old ones, which may use the old clusters.
    cleanup = (
        listeners_done
        and _settled(rds, sel[ROUTE_TYPE])
        and sel[LISTENER_TYPE].version != lds.rejected
        and sel[ROUTE_TYPE].version != rds.rejected
    )
    sel[CLUSTER_TYPE] = _cluster_selection(state, sel[CLUSTER_TYPE], cleanup)
    allowed = {  # what must be settled before a type may be sent
        CLUSTER_TYPE: True,
        ENDPOINT_TYPE: covered,  # not the CDS ACK: Envoy ACKs CDS once new clusters warmed
        SECRET_TYPE: covered,
        LISTENER_TYPE: endpoints_done,
        ROUTE_TYPE: listeners_done,
    }
    for type_url in TYPE_ORDER:
        force = type_url == ENDPOINT_TYPE and state.refresh_eds
        if allowed[type_url] and _due(state.types[type_url], sel[type_url], force):
            return Response(type_url, sel[type_url])
    return None


def _changes_eds_clusters(acked: Mapping[str, Resource], sent: TypeSet) -> bool:
    """Whether ``sent`` adds or changes an EDS cluster (which then warms until its CLA)."""
    for resource in sent.resources:
        if resource.eds_name:
            old = acked.get(resource.name)
            if old is None or old.digest != resource.digest:
                return True
    return False


def record_sent(state: StreamState, response: Response, now: float) -> str:
    """Record ``response`` as sent (before writing it: the ACK may come back at once)."""
    state.nonces += 1
    nonce = str(state.nonces)
    ts = state.types[response.type_url]
    sent = response.resources
    if response.type_url == CLUSTER_TYPE:
        state.refresh_eds = state.refresh_eds or _changes_eds_clusters(ts.acked, sent)
        _set_clusters(state, sent.resources)
    elif response.type_url == ENDPOINT_TYPE:
        state.refresh_eds = False
    ts.version, ts.nonce, ts.sent, ts.sent_at = sent.version, nonce, sent, now
    ts.pending, ts.answer = True, False
    return nonce


# Bodies of recent responses (every field but the nonce and control plane), by TypeSet: a
# fan-out sends one TypeSet to every stream of a Gateway and joins its chunks once.
_BODIES: dict[int, tuple[TypeSet, str, bytes]] = {}
_BODIES_KEPT = 16


def _body(sent: TypeSet, type_url: str) -> bytes:
    entry = _BODIES.get(id(sent))
    if entry is not None and entry[0] is sent and entry[1] == type_url:
        return entry[2]
    body = wire.discovery_response(
        sent.version, (r.chunk for r in sent.resources), type_url, "", control_plane=b""
    )
    if len(_BODIES) >= _BODIES_KEPT:
        del _BODIES[next(iter(_BODIES))]  # the oldest
    _BODIES[id(sent)] = (sent, type_url, body)
    return body


def encode_response(response: Response, nonce: str) -> bytes:
    """The serialized DiscoveryResponse (shared resource bytes, concatenated).

    Fields stay in field-number order (nonce 5 and control plane 6 come last), so the bytes
    equal ``DiscoveryResponse.SerializeToString()``.
    """
    body = _body(response.resources, response.type_url)
    return b"".join((body, wire.string_field(5, nonce), wire.CONTROL_PLANE_FIELD))


def _describe_type(ts: TypeState) -> dict[str, Any]:
    return {
        "subscribed": ts.subscribed,
        "resource_names": sorted(ts.names),
        "sent_version": ts.version,
        "sent_nonce": ts.nonce,
        "pending": ts.pending,
        "acked_version": ts.acked_version,
        "nack": describe_nack(ts.nack),
    }


def describe(state: StreamState) -> dict[str, Any]:
    """One stream as JSON-able data (an entry of ``/api/clients``); types keyed as TYPE_KEYS."""
    return describe_stream(
        state, {TYPE_KEYS[t]: _describe_type(state.types[t]) for t in TYPE_ORDER}
    )


def _type_view(ts: TypeState) -> TypeView:
    sent = ts.sent
    return TypeView(
        type_url=ts.type_url,
        subscribed=ts.subscribed,
        names=ts.names,
        sent_version=ts.version,
        sent=sent.by_name if sent is not None else {},
        pending=ts.pending,
        acked_version=ts.acked_version,
        acked=ts.acked,
        nack=ts.nack if ts.rejected is not None else None,
        last_nack=ts.nack,
    )


def view(state: StreamState, stream_id: int = 0) -> ClientView:
    """The stream as every reader outside this module sees it (``xds_server.clients``)."""
    types = {t: _type_view(state.types[t]) for t in TYPE_ORDER}
    return client_view(state, stream_id, "sotw", types)


def _rejecting(state: StreamState) -> bool:
    return any(ts.rejected is not None for ts in state.types.values())


class StreamRegistry(Protocol):
    """Another server's streams listed with ours (the delta server, ``xds_server.delta``)."""

    def clients(self) -> list[dict[str, Any]]: ...

    def views(self) -> list[ClientView]: ...

    async def close(self, grace: float = 5.0) -> None: ...


SOTW = StateMachine(
    new_stream_state,
    apply_request,
    _rejecting,
    next_response,
    record_sent,
    encode_response,
    describe,
    view,
)


class AdsServer(StreamServer[StreamState, Response]):
    """Serves SotW ADS streams from a SnapshotCache; keeps the registry of connected proxies.

    The serving loop and registry are ``StreamServer``'s; this class plugs in the SotW state
    machine above and lists (and closes) the streams of ``include``d servers with its own.
    """

    def __init__(
        self, cache: SnapshotCache, on_sync_change: Callable[[str | None], None] | None = None
    ) -> None:
        super().__init__(SOTW, cache, on_sync_change)
        self._others: list[StreamRegistry] = []

    def include(self, other: StreamRegistry) -> None:
        """List ``other``'s streams with ours and close them with ours (delta ADS)."""
        self._others.append(other)

    def clients(self) -> list[dict[str, Any]]:
        """Every connected stream, SotW and delta, as JSON-able data (backs ``/api/clients``)."""
        return super().clients() + [entry for other in self._others for entry in other.clients()]

    def views(self) -> list[ClientView]:
        """Every connected stream, SotW and delta, as a ``ClientView``."""
        return super().views() + [v for other in self._others for v in other.views()]

    async def close(self, grace: float = 5.0) -> None:
        """Stop serving: end every stream (status OK, proxies reconnect elsewhere) and wait."""
        others = [other.close(grace) for other in self._others]
        await asyncio.gather(super().close(grace), *others)


class _GrpcStream:
    """``Stream`` over a grpc.aio stream-stream call (requests in, pre-built bytes out)."""

    def __init__(self, requests: AsyncIterator[Any], context: Any) -> None:
        self._requests = requests
        self._context = context

    async def recv(self) -> Any:
        # context.read(), not the request iterator: grpc's iterator holds on to the last
        # request while it waits for the next (tens of KB per idle stream for large configs).
        request = await self._context.read()
        return None if request is grpc.aio.EOF else request

    async def send(self, data: bytes) -> None:
        await self._context.write(data)


def _identity(data: bytes) -> bytes:
    return data


def add_ads_to_server(
    server: Any, cache: SnapshotCache, on_sync_change: Callable[[str | None], None] | None = None
) -> AdsServer:
    """Register ADS (SotW and delta) on a ``grpc.aio.Server``; returns the AdsServer behind it.

    The AdsServer lists and closes the delta streams with its own.
    """
    from xds_server.delta import DeltaServer  # delta imports this module: import it late

    ads = AdsServer(cache, on_sync_change)
    delta = DeltaServer(cache, on_sync_change, ids=ads._ids)  # one stream id space
    ads.include(delta)

    async def stream_aggregated_resources(requests: AsyncIterator[Any], context: Any) -> None:
        await ads.serve(_GrpcStream(requests, context), str(context.peer()))

    async def delta_aggregated_resources(requests: AsyncIterator[Any], context: Any) -> None:
        await delta.serve(_GrpcStream(requests, context), str(context.peer()))

    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "StreamAggregatedResources": grpc.stream_stream_rpc_method_handler(
                stream_aggregated_resources,
                request_deserializer=discovery_pb2.DiscoveryRequest.FromString,
                response_serializer=_identity,
            ),
            "DeltaAggregatedResources": grpc.stream_stream_rpc_method_handler(
                delta_aggregated_resources,
                request_deserializer=discovery_pb2.DeltaDiscoveryRequest.FromString,
                response_serializer=_identity,
            ),
        },
    )
    server.add_generic_rpc_handlers((handler,))
    return ads
