"""CSDS: ``envoy.service.status.v3.ClientStatusDiscoveryService`` on the xDS gRPC server.

Who calls it: the control plane registers it beside ADS (``add_csds_to_server`` in
``xds_server.app``); operators and tests call ``FetchClientStatus`` (unary) or
``StreamClientStatus`` (one response per request). Each ``ClientStatusResponse`` holds one
``ClientConfig`` per connected proxy matching the request's ``node_matchers`` (OR of the
matchers; no matcher: every proxy), built from its ``ClientView`` and the current snapshot
(``xds_server.sync``)::

    ClientConfig{node{id, cluster, metadata.gateway},
                 generic_xds_configs[ {type_url, name,
                                       version_info   resource digest (as in /api/clients)
                                       xds_config     the resource (omitted with
                                                      exclude_resource_contents)
                                       config_status  SYNCED | STALE | NOT_SENT | ERROR
                                       client_status  ACKED | NACKED | REQUESTED | UNKNOWN
                                       error_state    {details: Envoy's message, version_info,
                                                       failed_configuration, last_update_attempt}
                                     } ... ]}

The resource reported is the one we serve the proxy now, or, for a resource it holds that
we no longer serve, the one it holds. Node matchers: ``node_id`` (exact, prefix, suffix,
contains, safe_regex; ignore_case) and ``node_metadatas`` on the single key ``gateway``
(string_match or present_match); anything else is INVALID_ARGUMENT.

What it must not do: change any state (CSDS is read-only) or block the event loop: the
views are taken on the loop (stream state lives there) and, being immutable like the
snapshots, turned into the response in a worker thread (about 10 µs per resource: use
``node_matchers`` or ``exclude_resource_contents`` on large fleets).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import grpc
from envoy.admin.v3 import config_dump_shared_pb2 as dump_pb2
from envoy.config.core.v3 import base_pb2
from envoy.service.status.v3 import csds_pb2
from google.protobuf import any_pb2, timestamp_pb2

from translator.result import TYPE_ORDER
from xds_server.cache import GatewaySnapshot, Resource
from xds_server.clients import ClientView, TypeView
from xds_server.sync import ResourceSync, is_wildcard, type_resources

SERVICE = "envoy.service.status.v3.ClientStatusDiscoveryService"

SnapshotOf = Callable[[str | None], GatewaySnapshot | None]


class InvalidMatcherError(ValueError):
    """A node matcher this server cannot evaluate (answered with INVALID_ARGUMENT)."""


def resource_any(resource: Resource) -> Any:
    """The ``google.protobuf.Any`` of a cached resource (its chunk is field 2 holding it)."""
    data = resource.chunk
    length, shift, pos = 0, 0, 1  # skip the one-byte tag of field 2
    while True:
        byte = data[pos]
        length |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            break
        shift += 7
    return any_pb2.Any.FromString(data[pos : pos + length])


def _string_matches(matcher: Any, value: str) -> bool:
    kind = matcher.WhichOneof("match_pattern")
    if kind == "safe_regex":
        try:
            return re.fullmatch(matcher.safe_regex.regex, value) is not None
        except re.error as error:
            message = f"invalid regex {matcher.safe_regex.regex!r}: {error}"
            raise InvalidMatcherError(message) from None
    if kind not in {"exact", "prefix", "suffix", "contains"}:
        raise InvalidMatcherError(f"unsupported string matcher {kind!r}")
    pattern: str = getattr(matcher, kind)
    if matcher.ignore_case:
        pattern, value = pattern.lower(), value.lower()
    if kind == "exact":
        return value == pattern
    if kind == "prefix":
        return value.startswith(pattern)
    if kind == "suffix":
        return value.endswith(pattern)
    return pattern in value


def _metadata_matches(matcher: Any, view: ClientView) -> bool:
    keys = [segment.key for segment in matcher.path]
    if keys != ["gateway"]:
        message = f"node_metadatas: only the path [gateway] is supported, got {keys}"
        raise InvalidMatcherError(message)
    value = matcher.value
    kind = value.WhichOneof("match_pattern")
    if kind == "present_match":
        return (view.gateway is not None) == bool(value.present_match)
    if kind == "string_match":
        return view.gateway is not None and _string_matches(value.string_match, view.gateway)
    raise InvalidMatcherError(f"node_metadatas: unsupported value matcher {kind!r}")


def matches(matchers: Iterable[Any], view: ClientView) -> bool:
    """Whether any NodeMatcher matches the proxy (no matchers: every proxy matches)."""
    found = False
    for matcher in matchers:
        found = True
        if matcher.HasField("node_id") and not _string_matches(matcher.node_id, view.node_id):
            continue
        if all(_metadata_matches(m, view) for m in matcher.node_metadatas):
            return True
    return not found


_CONFIG_STATUS = {
    "SYNCED": csds_pb2.SYNCED,
    "STALE": csds_pb2.STALE,
    "NOT_SENT": csds_pb2.NOT_SENT,
    "ERROR": csds_pb2.ERROR,
}


def _client_status(sync: ResourceSync, view: TypeView) -> int:
    if sync.state == "ERROR":
        return int(dump_pb2.NACKED)
    if sync.acked is not None:
        return int(dump_pb2.ACKED)
    if view.subscribed and (is_wildcard(view) or sync.name in view.names):
        return int(dump_pb2.REQUESTED)
    return int(dump_pb2.UNKNOWN)


def _generic(sync: ResourceSync, view: TypeView, contents: bool) -> Any:
    shown = sync.current or sync.acked or sync.sent
    config = csds_pb2.ClientConfig.GenericXdsConfig(
        type_url=sync.type_url,
        name=sync.name,
        version_info=shown.digest if shown is not None else "",
        config_status=_CONFIG_STATUS[sync.state],
        client_status=_client_status(sync, view),
    )
    if contents and shown is not None:
        config.xds_config.CopyFrom(resource_any(shown))
    nack = sync.nack
    if nack is not None:
        error = config.error_state
        error.details = nack.message
        error.version_info = nack.version
        error.last_update_attempt.CopyFrom(_timestamp(nack.at))
        if contents and sync.sent is not None:
            error.failed_configuration.CopyFrom(resource_any(sync.sent))
    return config


def _timestamp(epoch: float) -> Any:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(epoch * 1e9))
    return stamp


def client_config(view: ClientView, snapshot: GatewaySnapshot | None, contents: bool = True) -> Any:
    """The ClientConfig of one proxy: its node and every resource's status."""
    node = base_pb2.Node(id=view.node_id, cluster=view.node_cluster)
    if view.gateway is not None:
        node.metadata.fields["gateway"].string_value = view.gateway
    config = csds_pb2.ClientConfig(node=node)
    for type_url in TYPE_ORDER:
        type_view = view.types.get(type_url)
        if type_view is not None:
            found = type_resources(type_view, snapshot)
            config.generic_xds_configs.extend(_generic(r, type_view, contents) for r in found)
    return config


def client_status(request: Any, views: Iterable[ClientView], snapshot_of: SnapshotOf) -> Any:
    """The ClientStatusResponse to ``request``; raises InvalidMatcherError."""
    matchers = list(request.node_matchers)
    contents = not request.exclude_resource_contents
    chosen = sorted(
        (v for v in views if matches(matchers, v)),
        key=lambda v: (v.gateway or "", v.node_id, v.stream_id),
    )
    return csds_pb2.ClientStatusResponse(
        config=[client_config(v, snapshot_of(v.gateway), contents) for v in chosen]
    )


def add_csds_to_server(
    server: Any, views: Callable[[], Iterable[ClientView]], snapshot_of: SnapshotOf
) -> None:
    """Register CSDS on a ``grpc.aio.Server``; it reads ``views()`` at every request."""

    async def answer(request: Any, context: Any) -> Any:
        listed = list(views())  # on the loop: stream state changes only there
        try:  # views and snapshots are immutable: the (large) response is built off the loop
            return await asyncio.to_thread(client_status, request, listed, snapshot_of)
        except InvalidMatcherError as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
            raise  # abort raises; this line is never reached

    async def fetch(request: Any, context: Any) -> Any:
        return await answer(request, context)

    async def stream(requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        async for request in requests:
            yield await answer(request, context)

    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "FetchClientStatus": grpc.unary_unary_rpc_method_handler(
                fetch,
                request_deserializer=csds_pb2.ClientStatusRequest.FromString,
                response_serializer=csds_pb2.ClientStatusResponse.SerializeToString,
            ),
            "StreamClientStatus": grpc.stream_stream_rpc_method_handler(
                stream,
                request_deserializer=csds_pb2.ClientStatusRequest.FromString,
                response_serializer=csds_pb2.ClientStatusResponse.SerializeToString,
            ),
        },
    )
    server.add_generic_rpc_handlers((handler,))
