"""The IR of HTTPS, TLS, TCP and UDP listeners -> Envoy resources (stage two, beside xds).

``gateway_resources`` is what ``translator.translate`` calls for each Gateway: the plain
HTTP resources of ``translator.xds`` plus, from ``translator.l4listeners``' IR,

- a listener per TCP port of HTTPS/TLS listeners: the ``tls_inspector`` listener filter,
  filter chains matched by SNI (``server_names``), TLS terminated with a
  DownstreamTlsContext whose certificates come over SDS (ADS), then either an HTTP
  connection manager with that chain's own RouteConfiguration (RDS) or a ``tcp_proxy``;
- a listener per TCP listener (one ``tcp_proxy`` chain) and per UDP listener
  (``udp_proxy``, a UDP listener filter, routing with a matcher's ``on_no_match``);
- the SDS Secrets of the certificates (inline PEM; key material never leaves this Gateway's
  resources, and `translator.render` redacts it when printing).

A share without a valid backend names a cluster that is never defined, so Envoy refuses
the connection (or drops the datagram) for that share, as the Gateway API asks.
"""

from __future__ import annotations

from typing import Any

from envoy.config.core.v3 import address_pb2, base_pb2, config_source_pb2
from envoy.config.listener.v3 import (
    listener_components_pb2,
    listener_pb2,
    udp_listener_config_pb2,
)
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.filters.udp.udp_proxy.v3 import route_pb2 as udp_route_pb2
from envoy.extensions.filters.udp.udp_proxy.v3 import udp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from google.protobuf import any_pb2
from xds.core.v3 import extension_pb2
from xds.type.matcher.v3 import matcher_pb2

from translator import names, xds
from translator.ir import (
    DatagramListener,
    FilterChain,
    GatewayIR,
    RouteTable,
    StreamListener,
    TLSCertificate,
    WeightedCluster,
)
from translator.result import GatewayResources

TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"
TLS_TRANSPORT_SOCKET = "envoy.transport_sockets.tls"
TCP_PROXY = "envoy.filters.network.tcp_proxy"
UDP_PROXY = "envoy.filters.udp_listener.udp_proxy"
UDP_ROUTE_ACTION = "route"
HTTPS_ALPN = ("h2", "http/1.1")
MISDIRECTED = 421


def gateway_resources(
    gateway: GatewayIR, listener_address: str, port_offset: int = 0
) -> GatewayResources:
    """Every Envoy resource of a Gateway, each kind sorted by name."""
    http = xds.gateway_resources(gateway, listener_address, port_offset)
    streams = [stream_listener(s, listener_address, port_offset) for s in gateway.streams]
    datagrams = [datagram_listener(d, listener_address, port_offset) for d in gateway.datagrams]
    tables = [c.routes for s in gateway.streams for c in s.chains if c.routes is not None]
    return GatewayResources(
        listeners=_sorted([*http.listeners, *streams, *datagrams]),
        routes=_sorted([*http.routes, *(route_configuration(t) for t in tables)]),
        clusters=http.clusters,
        endpoints=http.endpoints,
        secrets=tuple(secret(cert) for cert in gateway.certificates),
    )


def _sorted(messages: list[Any]) -> tuple[Any, ...]:
    return tuple(sorted(messages, key=lambda m: m.name))


def _pack(message: Any) -> Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _address(address: str, port: int, port_offset: int, udp: bool = False) -> Any:
    protocol = address_pb2.SocketAddress.Protocol.UDP if udp else address_pb2.SocketAddress.TCP
    return address_pb2.Address(
        socket_address=address_pb2.SocketAddress(
            address=address, port_value=xds.bind_port(port, port_offset), protocol=protocol
        )
    )


def stream_listener(ls: StreamListener, address: str, port_offset: int) -> Any:
    message = listener_pb2.Listener(
        name=ls.name,
        address=_address(address, ls.port, port_offset),
        filter_chains=[filter_chain(chain) for chain in ls.chains],
    )
    if ls.inspect_tls:
        message.listener_filters.append(
            listener_components_pb2.ListenerFilter(
                name=TLS_INSPECTOR, typed_config=_pack(tls_inspector_pb2.TlsInspector())
            )
        )
    return message


def filter_chain(chain: FilterChain) -> Any:
    message = listener_components_pb2.FilterChain(name=chain.name)
    if chain.server_names:
        message.filter_chain_match.server_names.extend(chain.server_names)
    if chain.certificates:
        alpn = HTTPS_ALPN if chain.routes is not None else ()
        message.transport_socket.CopyFrom(_tls_socket(chain.certificates, alpn))
    if chain.routes is not None:
        manager = xds.http_connection_manager(chain.name, chain.routes.name)
        network_filter = listener_components_pb2.Filter(
            name=xds.HCM_FILTER, typed_config=_pack(manager)
        )
    else:
        network_filter = listener_components_pb2.Filter(
            name=TCP_PROXY, typed_config=_pack(tcp_proxy(chain.name, chain.backends))
        )
    message.filters.append(network_filter)
    return message


def _tls_socket(certificates: tuple[str, ...], alpn: tuple[str, ...]) -> Any:
    context = tls_pb2.DownstreamTlsContext(
        common_tls_context=tls_pb2.CommonTlsContext(
            tls_certificate_sds_secret_configs=[
                secret_pb2.SdsSecretConfig(name=name, sds_config=_ads()) for name in certificates
            ],
            alpn_protocols=list(alpn),
        )
    )
    return base_pb2.TransportSocket(name=TLS_TRANSPORT_SOCKET, typed_config=_pack(context))


def _ads() -> Any:
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(),
        resource_api_version=config_source_pb2.ApiVersion.V3,
    )


def tcp_proxy(stat_prefix: str, backends: tuple[WeightedCluster, ...]) -> Any:
    """Connections to one cluster, or split by weight (an invalid share is refused)."""
    message = tcp_proxy_pb2.TcpProxy(stat_prefix=stat_prefix)
    if len(backends) <= 1:
        message.cluster = _cluster_name(backends[0] if backends else None)
        return message
    for share in backends:
        message.weighted_clusters.clusters.add(name=_cluster_name(share), weight=share.weight)
    return message


def _cluster_name(share: WeightedCluster | None) -> str:
    if share is None or share.cluster is None:
        return names.INVALID_BACKEND
    return share.cluster


def datagram_listener(ls: DatagramListener, address: str, port_offset: int) -> Any:
    action = matcher_pb2.Matcher.OnMatch(
        action=_typed_extension(
            UDP_ROUTE_ACTION, udp_route_pb2.Route(cluster=_cluster_name(_only(ls.backends)))
        )
    )
    proxy = udp_proxy_pb2.UdpProxyConfig(
        stat_prefix=ls.name, matcher=matcher_pb2.Matcher(on_no_match=action)
    )
    return listener_pb2.Listener(
        name=ls.name,
        address=_address(address, ls.port, port_offset, udp=True),
        udp_listener_config=udp_listener_config_pb2.UdpListenerConfig(),
        listener_filters=[
            listener_components_pb2.ListenerFilter(name=UDP_PROXY, typed_config=_pack(proxy))
        ],
    )


def _only(backends: tuple[WeightedCluster, ...]) -> WeightedCluster | None:
    return backends[0] if len(backends) == 1 else None


def _typed_extension(name: str, message: Any) -> Any:
    return extension_pb2.TypedExtensionConfig(name=name, typed_config=_pack(message))


def route_configuration(table: RouteTable) -> Any:
    """An HTTPS listener's routes, and a 421 for Hosts that other listeners own."""
    config = route_pb2.RouteConfiguration(
        name=table.name, virtual_hosts=[xds.virtual_host(vh) for vh in table.virtual_hosts]
    )
    if table.misdirected:
        vhost = config.virtual_hosts.add(
            name=f"{table.name}/misdirected", domains=list(table.misdirected)
        )
        route = vhost.routes.add(
            name=f"{table.name}/misdirected", match=route_components_pb2.RouteMatch(prefix="/")
        )
        route.direct_response.status = MISDIRECTED
    return config


def secret(cert: TLSCertificate) -> Any:
    return secret_pb2.Secret(
        name=cert.name,
        tls_certificate=common_pb2.TlsCertificate(
            certificate_chain=base_pb2.DataSource(inline_bytes=cert.certificate_chain),
            private_key=base_pb2.DataSource(inline_bytes=cert.private_key),
        ),
    )
