"""IR -> Envoy resources (xds-protos messages): stage two of the translator.

Listeners use an HTTP connection manager that fetches its routes over ADS; clusters are
EDS clusters fed over ADS. Cluster messages depend only on the backend (no versions, rule
positions or timestamps), so unchanged backends stay byte-identical and warm in Envoy.
"""

from __future__ import annotations

from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, config_source_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from google.protobuf import any_pb2, duration_pb2

from translator import names, xds_filters
from translator.httproutes import prefix_value
from translator.ir import Cluster, GatewayIR, HTTPListener, Route, VirtualHost
from translator.model import HTTPMatch, ValueMatch
from translator.result import GatewayResources

CONNECT_TIMEOUT_SECONDS = 5
HCM_FILTER = "envoy.filters.network.http_connection_manager"
ROUTER_FILTER = "envoy.filters.http.router"
HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_NOT_FOUND_CODES = {
    500: route_components_pb2.RouteAction.ClusterNotFoundResponseCode.INTERNAL_SERVER_ERROR,
    503: route_components_pb2.RouteAction.ClusterNotFoundResponseCode.SERVICE_UNAVAILABLE,
}


def gateway_resources(
    gateway: GatewayIR, listener_address: str, port_offset: int = 0
) -> GatewayResources:
    return GatewayResources(
        listeners=tuple(listener(ls, listener_address, port_offset) for ls in gateway.listeners),
        routes=tuple(route_configuration(ls) for ls in gateway.listeners),
        clusters=tuple(cluster(c) for c in gateway.clusters),
        endpoints=tuple(load_assignment(c) for c in gateway.clusters),
    )


def _ads() -> Any:
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(),
        resource_api_version=config_source_pb2.ApiVersion.V3,
    )


def _pack(message: Any) -> Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def bind_port(port: int, privileged_port_offset: int) -> int:
    """The port a proxy binds for a Gateway listener port: below 1024, moved up by the offset."""
    return port + privileged_port_offset if port < 1024 else port


def listener(ls: HTTPListener, address: str, port_offset: int = 0) -> Any:
    manager = http_connection_manager(ls.name, names.route_config(ls.port))
    return listener_pb2.Listener(
        name=ls.name,
        address=address_pb2.Address(
            socket_address=address_pb2.SocketAddress(
                address=address, port_value=bind_port(ls.port, port_offset)
            )
        ),
        filter_chains=[
            listener_components_pb2.FilterChain(
                filters=[
                    listener_components_pb2.Filter(name=HCM_FILTER, typed_config=_pack(manager))
                ]
            )
        ],
    )


def http_connection_manager(stat_prefix: str, route_config_name: str) -> Any:
    """The HTTP connection manager of a filter chain, fetching its routes over RDS."""
    return hcm_pb2.HttpConnectionManager(
        stat_prefix=stat_prefix,
        rds=hcm_pb2.Rds(config_source=_ads(), route_config_name=route_config_name),
        http_filters=[
            hcm_pb2.HttpFilter(name=ROUTER_FILTER, typed_config=_pack(router_pb2.Router()))
        ],
        strip_any_host_port=True,
        normalize_path={"value": True},
        use_remote_address={"value": True},
    )


def route_configuration(ls: HTTPListener) -> Any:
    return route_pb2.RouteConfiguration(
        name=names.route_config(ls.port),
        virtual_hosts=[virtual_host(vh) for vh in ls.virtual_hosts],
    )


def virtual_host(vh: VirtualHost) -> Any:
    return route_components_pb2.VirtualHost(
        name=vh.name, domains=list(vh.domains), routes=[route(r) for r in vh.routes]
    )


def route(r: Route) -> Any:
    message = route_components_pb2.Route(name=r.name, match=route_match(r.match))
    xds_filters.headers(message, r.filters.request_headers, r.filters.response_headers)
    if r.filters.redirect is not None:
        message.redirect.CopyFrom(xds_filters.redirect(r, r.filters.redirect))
        return message
    valid = [b for b in r.backends if b.cluster is not None]
    if not valid:
        message.direct_response.status = r.invalid_backend_status
        return message
    action = message.route
    action.cluster_not_found_response_code = _NOT_FOUND_CODES[r.invalid_backend_status]
    xds_filters.route_action(action, r)
    if len(r.backends) == 1:
        action.cluster = r.backends[0].cluster or names.INVALID_BACKEND
        return message
    for share in r.backends:
        entry = action.weighted_clusters.clusters.add()
        entry.name = share.cluster or names.INVALID_BACKEND
        entry.weight.value = share.weight
        xds_filters.headers(entry, share.request_headers, share.response_headers)
    return message


def route_match(match: HTTPMatch) -> Any:
    result = route_components_pb2.RouteMatch()
    path = match.path
    if path.type == "Exact":
        result.path = path.value
    elif path.type == "RegularExpression":
        result.safe_regex.CopyFrom(regex_pb2.RegexMatcher(regex=path.value))
    elif (prefix := prefix_value(path.value)) == "/":
        result.prefix = "/"
    else:
        result.path_separated_prefix = prefix
    if match.method is not None:
        method = route_components_pb2.HeaderMatcher(name=":method")
        method.string_match.exact = match.method
        result.headers.append(method)
    for header in match.headers:
        result.headers.append(
            route_components_pb2.HeaderMatcher(name=header.name, string_match=_string(header))
        )
    for query in match.query:
        result.query_parameters.append(
            route_components_pb2.QueryParameterMatcher(name=query.name, string_match=_string(query))
        )
    return result


def _string(match: ValueMatch) -> Any:
    if match.type == "RegularExpression":
        return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=match.value))
    return string_pb2.StringMatcher(exact=match.value)


def cluster(c: Cluster) -> Any:
    message = cluster_pb2.Cluster(
        name=c.name,
        type=cluster_pb2.Cluster.DiscoveryType.EDS,
        eds_cluster_config=cluster_pb2.Cluster.EdsClusterConfig(eds_config=_ads()),
        connect_timeout=duration_pb2.Duration(seconds=CONNECT_TIMEOUT_SECONDS),
        lb_policy=cluster_pb2.Cluster.LbPolicy.ROUND_ROBIN,
    )
    if c.protocol == "h2c":
        message.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(_pack(_http2()))
    return message


def _http2() -> Any:
    """Upstream HTTP/2 with prior knowledge (h2c: no TLS, no upgrade from HTTP/1.1)."""
    options = http_protocol_options_pb2.HttpProtocolOptions()
    options.explicit_http_config.http2_protocol_options.SetInParent()
    return options


def load_assignment(c: Cluster) -> Any:
    assignment = endpoint_pb2.ClusterLoadAssignment(cluster_name=c.name)
    udp = c.protocol == "udp"  # UDPRoute backends: datagrams to the endpoints
    protocol = address_pb2.SocketAddress.UDP if udp else address_pb2.SocketAddress.TCP
    if c.endpoints:
        locality = assignment.endpoints.add()
        for ep in c.endpoints:
            locality.lb_endpoints.append(
                endpoint_components_pb2.LbEndpoint(
                    endpoint=endpoint_components_pb2.Endpoint(
                        address=address_pb2.Address(
                            socket_address=address_pb2.SocketAddress(
                                address=ep.address, port_value=ep.port, protocol=protocol
                            )
                        )
                    )
                )
            )
    return assignment
