"""The intermediate representation between Gateway API objects and Envoy resources.

Stage one (gateways, attachment, routes) produces these values; stage two
(``translator.xds``) turns them into protobuf. The IR knows nothing of protobuf, so each
stage is easy to test alone and new route kinds only add IR, not another copy of the
Envoy code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from translator.filters import NO_ROUTE_FILTERS, HeaderEdits, RouteFilters
from translator.model import HTTPMatch, ObjectName

# How Envoy talks to a backend: HTTP/1.1, or HTTP/2 without TLS (prior knowledge); raw TCP
# or UDP for TLS, TCP and UDP routes.
UpstreamProtocol = Literal["http1", "h2c", "tcp", "udp"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    address: str
    port: int


@dataclass(frozen=True, slots=True)
class Cluster:
    """One backend (Service and port) and its ready endpoints."""

    name: str
    endpoints: tuple[Endpoint, ...]
    protocol: UpstreamProtocol = "http1"
    # The Service ("namespace/name") and port name the endpoints are read from, so that an
    # EndpointSlice change can refresh them alone (translator.cluster_table).
    service: str = ""
    port_name: str = ""


@dataclass(frozen=True, slots=True)
class WeightedCluster:
    """A share of a rule's traffic; ``cluster`` None is an invalid backend (answers 500)."""

    cluster: str | None
    weight: int
    request_headers: HeaderEdits | None = None  # this backend's own (backendRefs[].filters)
    response_headers: HeaderEdits | None = None


@dataclass(frozen=True, slots=True)
class Route:
    """One match of one rule and where it sends traffic (no backends at all: 500)."""

    name: str
    match: HTTPMatch
    backends: tuple[WeightedCluster, ...]
    precedence: tuple[object, ...]
    invalid_backend_status: int = 500  # answer for the share of invalid backends (gRPC: 503)
    filters: RouteFilters = NO_ROUTE_FILTERS  # headers, redirect, rewrite, mirrors, timeouts


@dataclass(frozen=True, slots=True)
class VirtualHost:
    name: str
    domains: tuple[str, ...]
    routes: tuple[Route, ...]


@dataclass(frozen=True, slots=True)
class HTTPListener:
    """All Gateway listeners of one port, merged into one Envoy listener."""

    name: str
    port: int
    virtual_hosts: tuple[VirtualHost, ...]


@dataclass(frozen=True, slots=True)
class TLSCertificate:
    """A certificate chain and its private key (PEM), sent to proxies over SDS."""

    name: str
    certificate_chain: bytes
    private_key: bytes


@dataclass(frozen=True, slots=True)
class RouteTable:
    """The RouteConfiguration of one HTTPS Gateway listener (its own filter chain's)."""

    name: str
    virtual_hosts: tuple[VirtualHost, ...]
    misdirected: tuple[str, ...]  # domains other listeners of the port own: 421


@dataclass(frozen=True, slots=True)
class FilterChain:
    """Connections of one SNI name set: HTTP routes (HTTPS) or a TCP proxy (TLS, TCP)."""

    name: str
    server_names: tuple[str, ...]  # empty: any (the port's default chain)
    certificates: tuple[str, ...]  # SDS secret names; empty: TLS passes through (or none)
    routes: RouteTable | None  # HTTPS: an HTTP connection manager with these routes
    backends: tuple[WeightedCluster, ...]  # otherwise: proxied to these (none: refused)


@dataclass(frozen=True, slots=True)
class StreamListener:
    """A TCP port whose Gateway listeners are HTTPS and TLS, or one TCP listener."""

    name: str
    port: int
    inspect_tls: bool  # read the ClientHello (SNI) before choosing a filter chain
    chains: tuple[FilterChain, ...]


@dataclass(frozen=True, slots=True)
class DatagramListener:
    """A UDP Gateway listener: every datagram goes to the bound UDPRoute's backends."""

    name: str
    port: int
    backends: tuple[WeightedCluster, ...]


@dataclass(frozen=True, slots=True)
class GatewayIR:
    name: ObjectName
    listeners: tuple[HTTPListener, ...]
    clusters: tuple[Cluster, ...]
    streams: tuple[StreamListener, ...] = ()
    datagrams: tuple[DatagramListener, ...] = ()
    certificates: tuple[TLSCertificate, ...] = ()
