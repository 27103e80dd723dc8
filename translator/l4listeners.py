"""HTTPS, TLS, TCP and UDP Gateway listeners -> the IR of their Envoy listeners.

Called by ``translator.translate`` after ``translator.virtualhosts`` built the plain HTTP
listeners; it adds to each Gateway's IR:

- per TCP port of HTTPS and TLS listeners, one ``StreamListener`` that reads the SNI and
  has a filter chain per HTTPS listener (its certificates, and an HTTP connection manager
  with that listener's own routes) and per TLS route hostname (terminated or passed
  through, then proxied). Each SNI name belongs to the listener with the most specific
  hostname covering it (as virtual hosts do for HTTP); a TLS listener hostname without a
  route still gets a chain that refuses connections, so they never fall through to a less
  specific listener;
- per TCP listener, a ``StreamListener`` with one chain proxying to its bound TCPRoute;
- per UDP listener, a ``DatagramListener`` to its bound UDPRoute;
- the clusters these use and the certificates of the listeners that terminate TLS.

HTTP routes on HTTPS listeners follow the HTTP rules: a request whose Host another
listener of the port owns is answered 421 (Misdirected Request), as the Gateway API asks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from translator import hostnames, names, tls
from translator.gateways import GatewayState, ListenerState
from translator.ir import (
    Cluster,
    DatagramListener,
    FilterChain,
    GatewayIR,
    RouteTable,
    StreamListener,
    VirtualHost,
    WeightedCluster,
)
from translator.l4routes import ANY_HOST, L4Entry, L4Routes
from translator.model import ObjectName
from translator.routeflow import RouteEntry
from translator.virtualhosts import owned_virtual_hosts, owner

SNI_PROTOCOLS = frozenset({"HTTPS", "TLS"})
STREAM_PROTOCOLS = frozenset({"HTTPS", "TLS", "TCP"})


def add_l4_listeners(
    irs: Mapping[ObjectName, GatewayIR],
    states: Iterable[GatewayState],
    entries: Iterable[RouteEntry],
    l4: L4Routes,
) -> dict[ObjectName, GatewayIR]:
    """``irs`` with the HTTPS, TLS, TCP and UDP listeners of each Gateway added."""
    https: dict[ObjectName, list[RouteEntry]] = {}
    for entry in entries:
        if entry.listener.listener.protocol == "HTTPS":
            https.setdefault(entry.listener.gateway, []).append(entry)
    bound: dict[ObjectName, list[L4Entry]] = {}
    for l4_entry in l4.bound:
        bound.setdefault(l4_entry.entry.listener.gateway, []).append(l4_entry)
    result = dict(irs)
    for state in states:
        key = state.gateway.meta.key
        if key in result:
            result[key] = _gateway(
                result[key], state, https.get(key, []), bound.get(key, []), l4.clusters
            )
    return result


def _gateway(
    ir: GatewayIR,
    state: GatewayState,
    https: list[RouteEntry],
    bound: list[L4Entry],
    clusters: Mapping[str, Cluster],
) -> GatewayIR:
    by_port: dict[tuple[int, bool], list[ListenerState]] = {}
    for ls in state.listeners:
        if ls.valid and ls.listener.protocol in STREAM_PROTOCOLS | {"UDP"}:
            by_port.setdefault((ls.listener.port, ls.listener.protocol == "UDP"), []).append(ls)
    streams: list[StreamListener] = []
    datagrams: list[DatagramListener] = []
    for (port, udp), group in sorted(by_port.items()):
        port_bound = [e for e in bound if e.entry.listener in group]
        if udp:
            datagrams += [_datagram(port, ls, port_bound) for ls in group]
        elif group[0].listener.protocol == "TCP":
            streams += [_tcp(port, ls, port_bound) for ls in group]
        else:
            port_https = [e for e in https if e.listener in group]
            chains = _sni_chains(port, group, port_https, port_bound)
            if chains:  # Envoy refuses a listener without filter chains
                name = names.stream_listener(port, True)
                streams.append(StreamListener(name, port, True, chains))
    shares = [share for s in streams for chain in s.chains for share in chain.backends]
    shares += [share for d in datagrams for share in d.backends]
    used = {share.cluster for share in shares if share.cluster is not None}
    merged = {c.name: c for c in ir.clusters} | {name: clusters[name] for name in used}
    return dataclasses.replace(
        ir,
        clusters=tuple(merged[name] for name in sorted(merged)),
        streams=tuple(streams),
        datagrams=tuple(datagrams),
        certificates=tls.certificates_of(state.listeners),
    )


def _backends_of(ls: ListenerState, bound: list[L4Entry]) -> tuple[WeightedCluster, ...]:
    found = next((e for e in bound if e.entry.listener == ls), None)
    return found.backends if found is not None else ()


def _tcp(port: int, ls: ListenerState, bound: list[L4Entry]) -> StreamListener:
    name = names.filter_chain("TCP", port, ls.listener.name)
    chain = FilterChain(name, (), (), None, _backends_of(ls, bound))
    return StreamListener(names.stream_listener(port, False), port, False, (chain,))


def _datagram(port: int, ls: ListenerState, bound: list[L4Entry]) -> DatagramListener:
    return DatagramListener(names.udp_listener(port), port, _backends_of(ls, bound))


def _sni_chains(
    port: int, group: list[ListenerState], https: list[RouteEntry], bound: list[L4Entry]
) -> tuple[FilterChain, ...]:
    """A chain per HTTPS listener and per SNI name of TLS listeners, each name owned once."""
    chains = [
        _https_chain(port, ls, group, https) for ls in group if ls.listener.protocol == "HTTPS"
    ]
    claimed: set[tuple[str, str]] = set()
    for entry in bound:
        listener, hostname = entry.entry.listener, entry.entry.hostname
        if owner(hostname, group) != listener:
            continue  # a more specific listener of the port owns this name
        claimed.add((listener.listener.name, hostname))
        chains.append(_tls_chain(port, listener, hostname, entry.backends))
    for ls in group:
        own = ls.listener.hostname
        if ls.listener.protocol == "TLS" and own and (ls.listener.name, own) not in claimed:
            chains.append(_tls_chain(port, ls, own, ()))  # refuse, do not fall through
    return tuple(sorted(chains, key=lambda chain: chain.name))


def _tls_chain(
    port: int, ls: ListenerState, hostname: str, backends: tuple[WeightedCluster, ...]
) -> FilterChain:
    name = names.filter_chain("TLS", port, ls.listener.name, hostname)
    server_names = () if hostname == ANY_HOST else (hostname,)
    certificates = tuple(cert.name for cert in ls.certificates) if tls.terminates(ls) else ()
    return FilterChain(name, server_names, certificates, None, backends)


def _https_chain(
    port: int, ls: ListenerState, group: list[ListenerState], https: list[RouteEntry]
) -> FilterChain:
    """The listener's own routes; Hosts other listeners of the port own answer 421."""
    listener = ls.listener
    own: list[VirtualHost] = []
    misdirected: list[str] = []
    for owner_, vhost in owned_virtual_hosts(port, group, https):
        if owner_ != ls:  # the "*" below covers what is outside this listener's hostname
            misdirected += [d for d in vhost.domains if hostnames.covers(listener.hostname, d)]
            continue
        domain = vhost.domains[0]
        own.append(
            dataclasses.replace(vhost, name=names.https_virtual_host(port, listener.name, domain))
        )
    if listener.hostname:
        misdirected.append(ANY_HOST)
    table = RouteTable(
        names.https_route_config(port, listener.name), tuple(own), tuple(sorted(misdirected))
    )
    server_names = (listener.hostname,) if listener.hostname else ()
    certificates = tuple(cert.name for cert in ls.certificates)
    name = names.filter_chain("HTTPS", port, listener.name)
    return FilterChain(name, server_names, certificates, table, ())
