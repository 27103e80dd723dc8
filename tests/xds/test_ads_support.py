"""Builders and a gRPC test proxy shared by the ADS and cache tests (this file has no tests).

Builders make small Envoy resources by hand: a Listener whose HTTP connection manager takes
its routes from RDS over ADS, RouteConfigurations routing path prefixes to clusters, EDS
Clusters over ADS and ClusterLoadAssignments. ``Proxy`` is a real grpc.aio client of
``StreamAggregatedResources`` with a request queue, acting as Envoy (``support.xds_clients``
has what it shares with the delta client); the tests drive its ACKs and NACKs by hand.
``SOTW`` is the protocol as the tests of rules common to SotW and delta drive it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2, config_source_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2
from support.xds_clients import AdsClient, XdsProtocol, connected, serving

from translator.result import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    SECRET_TYPE,
    GatewayResources,
)
from xds_server.cache import resource_name

MESSAGE_CLASSES = {
    LISTENER_TYPE: listener_pb2.Listener,
    ROUTE_TYPE: route_pb2.RouteConfiguration,
    CLUSTER_TYPE: cluster_pb2.Cluster,
    ENDPOINT_TYPE: endpoint_pb2.ClusterLoadAssignment,
    SECRET_TYPE: secret_pb2.Secret,
}


def _ads_source() -> Any:
    source = config_source_pb2.ConfigSource(resource_api_version=config_source_pb2.V3)
    source.ads.SetInParent()
    return source


def listener(name: str, route_config: str, port: int = 10080) -> Any:
    """A Listener whose HTTP connection manager loads ``route_config`` via RDS over ADS."""
    manager = hcm_pb2.HttpConnectionManager(
        stat_prefix=name,
        rds=hcm_pb2.Rds(config_source=_ads_source(), route_config_name=route_config),
    )
    router = hcm_pb2.HttpFilter(name="envoy.filters.http.router")
    router.typed_config.Pack(router_pb2.Router())
    manager.http_filters.append(router)
    network_filter = listener_components_pb2.Filter(name="envoy.filters.network.hcm")
    network_filter.typed_config.Pack(manager)
    address = address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address="127.0.0.1", port_value=port)
    )
    return listener_pb2.Listener(
        name=name,
        address=address,
        filter_chains=[listener_components_pb2.FilterChain(filters=[network_filter])],
    )


def route_config(name: str, routes: Iterable[tuple[str, str]]) -> Any:
    """A RouteConfiguration with one virtual host routing each (prefix, cluster)."""
    host = route_components_pb2.VirtualHost(name=name, domains=["*"])
    for prefix, cluster_name in routes:
        host.routes.append(
            route_components_pb2.Route(
                match=route_components_pb2.RouteMatch(prefix=prefix),
                route=route_components_pb2.RouteAction(cluster=cluster_name),
            )
        )
    return route_pb2.RouteConfiguration(name=name, virtual_hosts=[host])


def cluster(name: str, connect_timeout: int = 1) -> Any:
    """A Cluster that takes its endpoints from EDS over ADS."""
    result = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.EDS)
    result.eds_cluster_config.eds_config.CopyFrom(_ads_source())
    result.connect_timeout.seconds = connect_timeout
    return result


def endpoints(cluster_name: str, port: int = 8080) -> Any:
    """A ClusterLoadAssignment with one endpoint on loopback."""
    address = address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address="127.0.0.1", port_value=port)
    )
    endpoint = endpoint_components_pb2.LbEndpoint(
        endpoint=endpoint_components_pb2.Endpoint(address=address)
    )
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=cluster_name,
        endpoints=[endpoint_components_pb2.LocalityLbEndpoints(lb_endpoints=[endpoint])],
    )


def gateway(
    routes: Sequence[tuple[str, str]] = (("/", "c1"),),
    clusters: Sequence[str] = ("c1",),
    *,
    listener_port: int = 10080,
    endpoint_port: int = 8080,
    route_name: str = "r1",
    extra_routes: Sequence[str] = (),
) -> GatewayResources:
    """One listener "l1" -> RDS ``route_name`` -> ``routes``; an EDS cluster + CLA per name."""
    return GatewayResources(
        listeners=(listener("l1", route_name, listener_port),),
        routes=tuple(
            sorted(
                [route_config(route_name, routes)]
                + [route_config(n, [("/", clusters[0])]) for n in extra_routes],
                key=lambda r: r.name,
            )
        ),
        clusters=tuple(cluster(n) for n in sorted(clusters)),
        endpoints=tuple(endpoints(n, endpoint_port) for n in sorted(clusters)),
    )


def node(gateway_key: str | None, node_id: str = "proxy-1", *, cluster_field: str = "") -> Any:
    """An Envoy node naming ``gateway_key`` in its metadata (or nothing when None)."""
    result = base_pb2.Node(id=node_id, cluster=cluster_field)
    if gateway_key is not None:
        result.metadata.fields["gateway"].string_value = gateway_key
    return result


def request(
    type_url: str,
    names: Iterable[str] = (),
    *,
    nonce: str = "",
    version: str = "",
    error: str | None = None,
    node_msg: Any = None,
) -> Any:
    """A DiscoveryRequest; with ``error`` it is a NACK."""
    req = discovery_pb2.DiscoveryRequest(
        type_url=type_url, resource_names=list(names), response_nonce=nonce, version_info=version
    )
    if node_msg is not None:
        req.node.CopyFrom(node_msg)
    if error is not None:
        req.error_detail.code = 3
        req.error_detail.message = error
    return req


def ack(response: Any, names: Iterable[str] = ()) -> Any:
    """The ACK of ``response`` (optionally changing the subscription to ``names``)."""
    return request(response.type_url, names, nonce=response.nonce, version=response.version_info)


def nack(response: Any, message: str, version: str = "", names: Iterable[str] = ()) -> Any:
    """The NACK of ``response``; ``version`` is the last version the proxy accepted."""
    return request(response.type_url, names, nonce=response.nonce, version=version, error=message)


def decode(response: Any) -> list[Any]:
    """The resources of a DiscoveryResponse as messages."""
    out = []
    for packed in response.resources:
        message = MESSAGE_CLASSES[packed.type_url]()
        assert isinstance(packed, any_pb2.Any)
        packed.Unpack(message)
        out.append(message)
    return out


def names(response: Any) -> list[str]:
    """The names of the resources in a DiscoveryResponse, in the order sent."""
    return [resource_name(m) for m in decode(response)]


def route_clusters(response: Any) -> set[str]:
    """Every cluster the routes of an RDS response send traffic to."""
    return {
        route.route.cluster
        for config in decode(response)
        for host in config.virtual_hosts
        for route in host.routes
    }


class Proxy(AdsClient):
    """A grpc.aio SotW ADS client acting as one Envoy: queue requests, await responses."""

    method = "StreamAggregatedResources"

    def summary(self, response: Any) -> str:
        return f"{response.type_url} {names(response)}"


ads_server = serving  # a real grpc.aio server with ADS on 127.0.0.1 (port chosen by the OS)


def proxies(target: str, *nodes: Any) -> contextlib.AbstractAsyncContextManager[list[Proxy]]:
    """Connected Proxies, closed on exit."""
    return connected(Proxy, target, *nodes)


def _version(response: Any) -> str:
    return str(response.version_info)


SOTW = XdsProtocol("sotw", Proxy, request, ack, names, _version, decode)
handshake = SOTW.handshake  # CDS, EDS, LDS, RDS, each ACKed; the last response by type
