"""Invariants of the Envoy resources of every Gateway: the oracle of property 5.

``resource_problems(result)`` lists duplicate names and dangling references: every route
configuration, cluster and secret a resource names (RDS, route actions, weighted clusters,
mirrors, tcp_proxy, udp_proxy, gRPC and HTTP services, SDS) exists in the same Gateway's
resources (clusters may also be ``INVALID_BACKEND``, which answers 500), every EDS cluster
has exactly one ClusterLoadAssignment, and no two listeners bind one address.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

from google.protobuf import any_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

from translator import GatewayResources, TranslationResult
from translator.names import INVALID_BACKEND

# Fields that name another resource: message full name -> (field, what it names).
REFERENCES: Mapping[str, tuple[tuple[str, str], ...]] = {
    "envoy.config.route.v3.RouteAction": (("cluster", "cluster"),),
    "envoy.config.route.v3.WeightedCluster.ClusterWeight": (("name", "cluster"),),
    "envoy.config.route.v3.RouteAction.RequestMirrorPolicy": (("cluster", "cluster"),),
    "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy": (("cluster", "cluster"),),
    "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster.ClusterWeight": (
        ("name", "cluster"),
    ),
    "envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig": (("cluster", "cluster"),),
    "envoy.extensions.filters.udp.udp_proxy.v3.Route": (("cluster", "cluster"),),
    "envoy.config.core.v3.GrpcService.EnvoyGrpc": (("cluster_name", "cluster"),),
    "envoy.config.core.v3.HttpUri": (("cluster", "cluster"),),
    "envoy.extensions.filters.network.http_connection_manager.v3.Rds": (
        ("route_config_name", "route"),
    ),
    "envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig": (("name", "secret"),),
}


def unpack(packed: Any) -> Message | None:
    """The message inside an Any, if its type is known to this process."""
    name = packed.type_url.rpartition("/")[2]
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(name)
    except KeyError:
        return None
    message: Message = message_factory.GetMessageClass(descriptor)()
    packed.Unpack(message)
    return message


def walk(message: Message) -> Iterator[Message]:
    """``message`` and every message inside it, Any fields unpacked."""
    if isinstance(message, any_pb2.Any):
        inner = unpack(message)
        if inner is not None:
            yield from walk(inner)
        return
    yield message
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            values = [v for v in value.values() if isinstance(v, Message)]
        elif field.is_repeated:
            values = list(value)
        else:
            values = [value]
        for child in values:
            yield from walk(child)


def references(messages: tuple[Any, ...]) -> Iterator[tuple[str, str]]:
    """(what, name) of every reference from ``messages`` to other resources."""
    for top in messages:
        for message in walk(top):
            for field, what in REFERENCES.get(message.DESCRIPTOR.full_name, ()):
                name = getattr(message, field)
                if name:
                    yield what, name


def resource_problems(result: TranslationResult) -> list[str]:
    """Dangling references and duplicate names in the resources of every Gateway."""
    return [
        f"{gateway}: {problem}"
        for gateway, resources in result.gateways.items()
        for problem in gateway_problems(resources)
    ]


def gateway_problems(resources: GatewayResources) -> Iterator[str]:
    names = {
        "listener": [m.name for m in resources.listeners],
        "route": [m.name for m in resources.routes],
        "cluster": [m.name for m in resources.clusters],
        "secret": [m.name for m in resources.secrets],
    }
    for what, listed in names.items():
        yield from (f"{what} {n} defined {c} times" for n, c in Counter(listed).items() if c > 1)
    bound = Counter(_bound(m) for m in resources.listeners)
    yield from (f"{a} bound by {c} listeners" for a, c in bound.items() if c > 1)
    defined = {what: set(listed) for what, listed in names.items()}
    defined["cluster"].add(INVALID_BACKEND)
    everything = resources.listeners + resources.routes + resources.clusters
    for what, name in sorted(set(references(everything))):
        if name not in defined[what]:
            yield f"{what} {name!r} is referenced but not defined"
    endpoints = Counter(m.cluster_name for m in resources.endpoints)
    for cluster in resources.clusters:
        if cluster.type == cluster.EDS and endpoints[cluster.name] != 1:
            yield f"EDS cluster {cluster.name} has {endpoints[cluster.name]} endpoint sets"
    yield from (
        f"endpoints of unknown cluster {n}" for n in endpoints if n not in defined["cluster"]
    )


def _bound(listener: Any) -> tuple[str, int, int]:
    address = listener.address.socket_address
    return address.address, address.port_value, address.protocol
