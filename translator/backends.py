"""backendRefs -> clusters: kind check, ReferenceGrant, Service port, EndpointSlices.

Shared by every route kind. A reference that cannot be resolved is a ``Problem`` with the
Gateway API's ResolvedRefs reason (InvalidKind, RefNotPermitted, BackendNotFound); the
route keeps it as an invalid share of traffic, which answers 500.
"""

from __future__ import annotations

from dataclasses import dataclass

from translator import conditions as c
from translator import names
from translator.conditions import Problem
from translator.ir import Cluster, Endpoint, UpstreamProtocol
from translator.kube import GATEWAY_GROUP
from translator.model import BackendRef, EndpointSlice, object_name
from translator.parse import Inventory

H2C_APP_PROTOCOL = "kubernetes.io/h2c"  # KEP-3726: HTTP/2 over cleartext, prior knowledge
# The Service port protocol each byte-proxying route kind needs.
L4_PORT_PROTOCOLS = {"TLSRoute": "TCP", "TCPRoute": "TCP", "UDPRoute": "UDP"}


@dataclass(frozen=True, slots=True)
class Resolved:
    cluster: Cluster | None
    problem: Problem | None


def resolve(ref: BackendRef, route_kind: str, route_namespace: str, inv: Inventory) -> Resolved:
    """The cluster a backendRef stands for, or why it cannot be used."""
    if ref.group not in {"", "core"} or ref.kind != "Service":
        shown = f"{ref.group}/{ref.kind}" if ref.group else ref.kind
        return _fail(c.R_INVALID_KIND, f"backendRef kind {shown} is not supported")
    target = object_name(ref.namespace, ref.name)
    if ref.namespace != route_namespace and not granted(inv, route_kind, route_namespace, ref):
        message = f"backendRef to Service {target} is not permitted by any ReferenceGrant"
        return _fail(c.R_REF_NOT_PERMITTED, message)
    service = inv.services.get(target)
    if service is None:
        return _fail(c.R_BACKEND_NOT_FOUND, f"Service {target} not found")
    if ref.port is None:
        return _fail(c.R_BACKEND_NOT_FOUND, f"backendRef to Service {target} must set a port")
    wanted = L4_PORT_PROTOCOLS.get(route_kind)  # TLS, TCP and UDP routes: that protocol's port
    port = next(
        (p for p in service.ports if p.port == ref.port and wanted in {None, p.protocol}), None
    )
    if port is None:
        shown = f"{wanted} port" if wanted else "port"
        return _fail(c.R_BACKEND_NOT_FOUND, f"Service {target} has no {shown} {ref.port}")
    endpoints = ready_endpoints(port.name, inv.slices.get(target, ()))
    protocol = upstream_protocol(route_kind, port.app_protocol)
    name = names.cluster(ref.namespace, ref.name, ref.port, protocol)
    return Resolved(Cluster(name, endpoints, protocol, target, port.name), None)


def upstream_protocol(route_kind: str, app_protocol: str | None) -> UpstreamProtocol:
    """gRPC, and Service ports whose appProtocol is kubernetes.io/h2c, use HTTP/2 cleartext.

    TLS, TCP and UDP routes proxy bytes: clusters of their own ("tcp", "udp").
    """
    if route_kind in L4_PORT_PROTOCOLS:
        return "udp" if L4_PORT_PROTOCOLS[route_kind] == "UDP" else "tcp"
    if route_kind == "GRPCRoute":
        return "h2c"
    if route_kind == "HTTPRoute" and app_protocol == H2C_APP_PROTOCOL:
        return "h2c"
    return "http1"


def granted(inv: Inventory, route_kind: str, route_namespace: str, ref: BackendRef) -> bool:
    """True if a ReferenceGrant in the Service's namespace lets the route refer to it."""
    for grant in inv.grants.get(ref.namespace, ()):
        source_ok = any(
            f.group == GATEWAY_GROUP and f.kind == route_kind and f.namespace == route_namespace
            for f in grant.sources
        )
        target_ok = any(
            t.group in {"", "core"} and t.kind == "Service" and t.name in {None, ref.name}
            for t in grant.targets
        )
        if source_ok and target_ok:
            return True
    return False


def ready_endpoints(port_name: str, slices: tuple[EndpointSlice, ...]) -> tuple[Endpoint, ...]:
    """Ready endpoints of the slices' port named like the Service port, sorted."""
    found: set[Endpoint] = set()
    for slice_ in slices:
        port = next((p for p in slice_.ports if p.name == port_name), None)
        if port is None or not 1 <= port.port <= 65535:
            continue
        found.update(Endpoint(address, port.port) for address in slice_.addresses)
    return tuple(sorted(found, key=lambda e: (e.address, e.port)))


def _fail(reason: str, message: str) -> Resolved:
    return Resolved(None, Problem(reason, message))
