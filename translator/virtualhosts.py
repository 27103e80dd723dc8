"""Routes on listeners -> one Envoy listener per port, with one virtual host per domain.

Several Gateway listeners on one port become one Envoy listener. A request belongs to the
Gateway listener with the most specific hostname that matches it, and within that listener
to the routes whose hostnames match it: exact hostnames first, then longer wildcards, then
routes for any host, each group ordered by match precedence. Envoy picks the most specific
virtual host domain, so each domain gets the routes of the listener that owns it, in that
order; every listener hostname gets a virtual host even without routes (a 404 there is
right: the request must not fall through to a less specific listener).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from translator import hostnames, names
from translator.gateways import GatewayState, ListenerState
from translator.ir import Cluster, GatewayIR, HTTPListener, Route, VirtualHost
from translator.model import ObjectName
from translator.routeflow import RouteEntry


def assemble(
    states: Iterable[GatewayState],
    entries: Iterable[RouteEntry],
    clusters: Mapping[str, Cluster],
) -> dict[ObjectName, GatewayIR]:
    """The IR of every accepted Gateway."""
    by_gateway: dict[ObjectName, list[RouteEntry]] = {}
    for entry in entries:
        by_gateway.setdefault(entry.listener.gateway, []).append(entry)
    result = {}
    for state in states:
        if not state.accepted:
            continue
        key = state.gateway.meta.key
        gateway_entries = by_gateway.get(key, [])
        listeners = _port_listeners(state, gateway_entries)
        used = sorted({b.cluster for e in gateway_entries for b in e.route.backends if b.cluster})
        mirrored = {m.cluster for e in gateway_entries for m in e.route.filters.mirrors}
        used = sorted({*used, *mirrored})
        result[key] = GatewayIR(key, listeners, tuple(clusters[name] for name in used))
    return result


def _port_listeners(state: GatewayState, entries: list[RouteEntry]) -> tuple[HTTPListener, ...]:
    by_port: dict[int, list[ListenerState]] = {}
    for ls in state.listeners:
        if ls.valid and ls.listener.protocol == "HTTP":  # HTTPS: translator.l4listeners
            by_port.setdefault(ls.listener.port, []).append(ls)
    result = []
    for port in sorted(by_port):
        port_entries = [e for e in entries if e.listener.listener.port == port]
        vhosts = _virtual_hosts(port, by_port[port], port_entries)
        result.append(HTTPListener(names.http_listener(port), port, vhosts))
    return tuple(result)


def _virtual_hosts(
    port: int, listeners: list[ListenerState], entries: list[RouteEntry]
) -> tuple[VirtualHost, ...]:
    return tuple(vhost for _, vhost in owned_virtual_hosts(port, listeners, entries))


def owned_virtual_hosts(
    port: int, listeners: list[ListenerState], entries: list[RouteEntry]
) -> list[tuple[ListenerState, VirtualHost]]:
    """Every domain's virtual host and the listener that owns it (HTTPS splits them up)."""
    domains = {e.hostname for e in entries}
    domains.update(ls.listener.hostname for ls in listeners if ls.listener.hostname)
    by_host: dict[tuple[str, str], list[RouteEntry]] = {}
    for entry in entries:
        by_host.setdefault((entry.listener.listener.name, entry.hostname), []).append(entry)
    vhosts = []
    for domain in sorted(domains):
        owner_ = owner(domain, listeners)
        if owner_ is None:
            continue
        routes = routes_for(domain, owner_, by_host)
        vhosts.append((owner_, VirtualHost(names.virtual_host(port, domain), (domain,), routes)))
    return vhosts


def owner(domain: str, listeners: list[ListenerState]) -> ListenerState | None:
    """The listener with the most specific hostname that matches ``domain``."""
    matching = [ls for ls in listeners if hostnames.covers(ls.listener.hostname, domain)]
    if not matching:
        return None
    return min(matching, key=lambda ls: hostnames.specificity(ls.listener.hostname))


def routes_for(
    domain: str, owner: ListenerState, by_host: dict[tuple[str, str], list[RouteEntry]]
) -> tuple[Route, ...]:
    """The owner's routes for every hostname that covers ``domain``, in precedence order."""
    name = owner.listener.name
    candidates = [
        entry
        for pattern in hostnames.patterns_covering(domain)
        for entry in by_host.get((name, pattern), ())
    ]
    candidates.sort(key=lambda e: (hostnames.specificity(e.hostname), e.route.precedence))
    ordered: dict[str, Route] = {}
    for entry in candidates:
        ordered.setdefault(entry.route.name, entry.route)
    return tuple(ordered.values())
