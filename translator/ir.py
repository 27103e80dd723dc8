"""The intermediate representation between Gateway API objects and Envoy resources.

Stage one (gateways, attachment, routes) produces these values; stage two
(``translator.xds``) turns them into protobuf. The IR knows nothing of protobuf, so each
stage is easy to test alone and new route kinds only add IR, not another copy of the
Envoy code.
"""

from __future__ import annotations

from dataclasses import dataclass

from translator.model import HTTPMatch, ObjectName


@dataclass(frozen=True, slots=True)
class Endpoint:
    address: str
    port: int


@dataclass(frozen=True, slots=True)
class Cluster:
    """One backend (Service and port) and its ready endpoints."""

    name: str
    endpoints: tuple[Endpoint, ...]


@dataclass(frozen=True, slots=True)
class WeightedCluster:
    """A share of a rule's traffic; ``cluster`` None is an invalid backend (answers 500)."""

    cluster: str | None
    weight: int


@dataclass(frozen=True, slots=True)
class Route:
    """One match of one rule and where it sends traffic (no backends at all: 500)."""

    name: str
    match: HTTPMatch
    backends: tuple[WeightedCluster, ...]
    precedence: tuple[object, ...]


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
class GatewayIR:
    name: ObjectName
    listeners: tuple[HTTPListener, ...]
    clusters: tuple[Cluster, ...]
