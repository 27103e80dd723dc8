"""``translate()``: Gateway API objects -> Envoy resources per Gateway, and status.

Reads as the ordered list of steps it is. Pure: no I/O, no clock, no globals; the same
objects give the same result, byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from translator import crossserving, l4listeners, l4routes, tls, xds_listeners
from translator import gateways as gw
from translator.grpcroutes import translate_grpc_route
from translator.httproutes import translate_http_route
from translator.ir import Cluster
from translator.kube import GATEWAY_GROUP
from translator.model import Meta
from translator.parse import parse_inventory
from translator.result import StatusEntry, TranslationResult
from translator.routeflow import RouteContext, RouteOutcome
from translator.virtualhosts import assemble

STATUS_API_VERSION = f"{GATEWAY_GROUP}/v1"


@dataclass(frozen=True, slots=True)
class TranslateOptions:
    """Settings of the proxies that are not in the Gateway API objects."""

    listener_address: str = "0.0.0.0"
    # Gateway listener ports below 1024 bind to port + offset: an unprivileged proxy cannot
    # bind them (Envoy Gateway does the same); 0 binds the ports as written.
    privileged_port_offset: int = 10000


def translate(
    objects: Iterable[Mapping[str, Any]], options: TranslateOptions | None = None
) -> TranslationResult:
    options = options or TranslateOptions()
    # 1. Parse and validate every object we read.
    inv = parse_inventory(objects)
    # 2. Our GatewayClasses, then their Gateways and the state of each listener.
    classes = gw.our_classes(inv.classes)
    states = gw.gateway_states(inv.gateways, classes)
    #    The certificates of listeners that terminate TLS (Secrets, ReferenceGrants).
    states = tls.resolve_certificates(states, inv)
    by_key = {state.gateway.meta.key: state for state in states}
    # 3. Attach routes to listeners (an HTTPRoute and a GRPCRoute never share a hostname on
    #    one listener), resolve their backends, build IR routes.
    ctx = RouteContext(by_key, inv, crossserving.lost_listeners(inv, by_key))
    http_outcomes = [translate_http_route(route, ctx) for route in inv.http_routes]
    grpc_outcomes = [translate_grpc_route(route, ctx) for route in inv.grpc_routes]
    outcomes = [*http_outcomes, *grpc_outcomes]
    #    TLS, TCP and UDP routes: the same steps; the oldest route wins a listener (SNI name).
    l4 = l4routes.translate_l4_routes(inv.l4_routes, ctx)
    # 4. Merge listeners per port and routes per domain into the IR of each Gateway.
    entries = [entry for outcome in outcomes for entry in outcome.entries]
    clusters = _clusters(outcomes)
    irs = assemble(states, entries, clusters)
    #    HTTPS, TLS, TCP and UDP listeners: filter chains per port (SNI), secrets.
    irs = l4listeners.add_l4_listeners(irs, states, entries, l4)
    # 5. Envoy resources from the IR.
    address, offset = options.listener_address, options.privileged_port_offset
    resources = {
        key: xds_listeners.gateway_resources(ir, address, offset) for key, ir in irs.items()
    }
    # 6. Status of every object we own.
    attached = _attached_routes([*outcomes, *l4.outcomes])
    statuses: list[StatusEntry] = [
        status_entry("GatewayClass", gc.meta, gw.class_status(gc)) for gc in classes.values()
    ]
    statuses += [
        status_entry("Gateway", s.gateway.meta, gw.gateway_status(s, attached)) for s in states
    ]
    statuses += [
        status_entry("HTTPRoute", route.meta, outcome.status)
        for route, outcome in zip(inv.http_routes, http_outcomes, strict=True)
        if outcome.status is not None
    ]
    statuses += [
        status_entry("GRPCRoute", route.meta, outcome.status)
        for route, outcome in zip(inv.grpc_routes, grpc_outcomes, strict=True)
        if outcome.status is not None
    ]
    statuses += l4.statuses
    return TranslationResult(dict(sorted(resources.items())), tuple(statuses))


def _clusters(outcomes: list[RouteOutcome]) -> dict[str, Cluster]:
    return {c.name: c for outcome in outcomes for c in outcome.clusters}


def _attached_routes(outcomes: list[RouteOutcome]) -> dict[tuple[str, str], int]:
    """Routes attached per (Gateway, listener name): each route counts once per listener."""
    pairs = {pair for outcome in outcomes for pair in attached_pairs(outcome)}
    counts: dict[tuple[str, str], int] = {}
    for gateway, listener, _route in pairs:
        counts[(gateway, listener)] = counts.get((gateway, listener), 0) + 1
    return counts


def attached_pairs(outcome: RouteOutcome) -> set[tuple[str, str, str]]:
    """(Gateway, listener name, route) for every listener a route's outcome is attached to."""
    return {
        (e.listener.gateway, e.listener.listener.name, e.route.name.rsplit("/rule/", 1)[0])
        for e in outcome.entries
    }


def status_entry(kind: str, meta: Meta, status: Mapping[str, Any]) -> StatusEntry:
    metadata = (
        {"namespace": meta.namespace, "name": meta.name} if meta.namespace else {"name": meta.name}
    )
    return {"apiVersion": STATUS_API_VERSION, "kind": kind, "metadata": metadata, "status": status}
