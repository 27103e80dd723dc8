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
``xds_server.delta_state``; the serving loop, logging, metrics and registry are
``xds_server.stream_server``'s, shared with SotW; this module plugs the one into the other
and turns stream state into views. It must not encode resources (the cache did;
``delta_wire`` only frames them), translate, or block the event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from translator.result import TYPE_KEYS, TYPE_ORDER
from xds_server.cache import Resource, SnapshotCache, content_version
from xds_server.clients import ClientView, TypeView
from xds_server.delta_diff import DeltaResponse, DeltaTypeState
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
from xds_server.stream_server import (
    StateMachine,
    StreamServer,
    client_view,
    describe_nack,
    describe_stream,
)

# -- views ------------------------------------------------------------------------------


def _requested(ts: DeltaTypeState) -> frozenset[str]:
    return ts.names | {WILDCARD} if ts.wildcard else ts.names


def _version(resources: Mapping[str, Resource], known: bool) -> str:
    """The content version of what a proxy holds; "" when it was never sent or confirmed."""
    return content_version(resources.values()) if known or resources else ""


def _describe_type(ts: DeltaTypeState) -> dict[str, Any]:
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
        "nack": describe_nack(ts.nack),
    }


def describe(state: DeltaStreamState) -> dict[str, Any]:
    """One stream as JSON-able data: the shape of ``ads.describe``, plus delta's own keys.

    ``protocol`` is "delta"; per type ``wildcard`` and the number of resources the proxy
    holds (``resources_sent``) and ACKed; ``sent_version`` is the content version of what
    it holds once every response sent is applied.
    """
    types = {TYPE_KEYS[t]: _describe_type(state.types[t]) for t in TYPE_ORDER}
    return describe_stream(state, types, protocol="delta")


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
    types = {t: _type_view(state.types[t]) for t in TYPE_ORDER}
    return client_view(state, stream_id, "delta", types)


# -- the service ------------------------------------------------------------------------


DELTA = StateMachine(
    new_stream_state,
    apply_request,
    rejecting,
    next_response,
    record_sent,
    encode_response,
    describe,
    view,
    log_extra={"delta": True},
)


class DeltaServer(StreamServer[DeltaStreamState, DeltaResponse]):
    """Serves delta ADS streams from a SnapshotCache; keeps the registry of its streams.

    The serving loop and registry are ``StreamServer``'s running ``DELTA``; ``ids`` is
    shared with the SotW server (one stream id space).
    """

    def __init__(
        self,
        cache: SnapshotCache,
        on_sync_change: Callable[[str | None], None] | None = None,
        ids: Iterator[int] | None = None,
    ) -> None:
        super().__init__(DELTA, cache, on_sync_change, ids)
