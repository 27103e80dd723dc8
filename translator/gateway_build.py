"""The Envoy resources of one accepted Gateway, kept up to date route by route.

Held by ``translator.incremental`` for each accepted Gateway whose state did not change (a
changed state gets a new builder). It is told each route's entries on the Gateway, and
``build`` returns the same ``GatewayResources`` as a full translation
(``virtualhosts.assemble``, ``l4listeners.add_l4_listeners``,
``xds_listeners.gateway_resources``), reusing every message that did not change:

    plain HTTP ports    a ``PortRoutes`` each: only virtual hosts of touched domains rebuilt
    clusters, CLAs      sorted by name; messages from the ``ClusterTable``, patched by name
    HTTPS, TLS, TCP,    rebuilt with the full translation's own functions, but only when one
    UDP listeners       of their inputs changed (HTTPS entries, the TLS/TCP/UDP routes)

Unchanged parts keep their tuples, and an unchanged Gateway its ``GatewayResources``
object, so the snapshot cache can tell at a glance what it already encoded.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any

from translator import names, tls, xds, xds_listeners
from translator.cluster_table import ClusterTable
from translator.gateways import GatewayState
from translator.ir import GatewayIR, HTTPListener
from translator.l4listeners import add_l4_listeners
from translator.l4routes import L4Routes
from translator.port_routes import PortRoutes, RouteOrder
from translator.result import GatewayResources
from translator.routeflow import RouteEntry

_L4_PROTOCOLS = frozenset({"HTTPS", "TLS", "TCP", "UDP"})
_FEW = 64  # more changes than this: rebuild a sorted list rather than insert into it


class GatewayBuild:
    """What a full translation builds for one accepted Gateway, and how to update it."""

    def __init__(self, state: GatewayState, address: str, port_offset: int) -> None:
        self.state = state
        self._address, self._offset = address, port_offset
        by_port: dict[int, list[Any]] = {}
        for ls in state.listeners:
            if ls.valid and ls.listener.protocol == "HTTP":
                by_port.setdefault(ls.listener.port, []).append(ls)
        self._ports = {port: PortRoutes(port, by_port[port]) for port in sorted(by_port)}
        self._http_listeners = [
            xds.listener(HTTPListener(names.http_listener(port), port, ()), address, port_offset)
            for port in self._ports
        ]
        self._has_l4 = any(
            ls.valid and ls.listener.protocol in _L4_PROTOCOLS for ls in state.listeners
        )
        self._secrets = tuple(xds_listeners.secret(c) for c in tls.certificates_of(state.listeners))
        self._entries: dict[RouteOrder, tuple[RouteEntry, ...]] = {}
        self._route_clusters: dict[RouteOrder, frozenset[str]] = {}
        self._uses: dict[str, int] = {}  # cluster name -> routes (and the L4 part) using it
        self._names: list[str] = []  # sorted
        self._cluster_messages: list[Any] = []
        self._load_assignments: list[Any] = []
        self._l4_dirty = True
        self._l4_listeners: list[Any] = []
        self._l4_routes: list[Any] = []
        self._l4_clusters: frozenset[str] = frozenset()
        self._moved: set[str] = set()  # cluster names that came into use or went since build
        self._configs: tuple[Any, ...] = ()
        self._output: GatewayResources | None = None

    def set_route(self, order: RouteOrder, entries: tuple[RouteEntry, ...]) -> None:
        """Replace the entries a route has on this Gateway (empty: none any more)."""
        old = self._entries.pop(order, ())
        if entries:
            self._entries[order] = entries
        for port, routes in self._ports.items():
            before = [e for e in old if _on_http_port(e, port)]
            after = [e for e in entries if _on_http_port(e, port)]
            if before or after:
                routes.set_route(order, before, after)
        if self._has_l4 and any(e.listener.listener.protocol == "HTTPS" for e in (*old, *entries)):
            self._l4_dirty = True
        used = frozenset(_clusters_of(entries))
        was = self._route_clusters.pop(order, frozenset())
        if used:
            self._route_clusters[order] = used
        self._use(used - was, +1)
        self._use(was - used, -1)

    def l4_changed(self) -> None:
        """The TLS, TCP or UDP routes changed: rebuild the Gateway's HTTPS/TLS/TCP/UDP part."""
        self._l4_dirty = self._l4_dirty or self._has_l4

    @property
    def virtual_hosts_built(self) -> int:
        """Virtual hosts of plain HTTP ports built so far (a test's counter)."""
        return sum(routes.virtual_hosts_built for routes in self._ports.values())

    def build(self, table: ClusterTable, l4: L4Routes) -> GatewayResources:
        """The Gateway's resources (the same object as last time if nothing changed)."""
        out = self._output
        l4_built = self._l4_dirty
        if l4_built:
            self._build_l4(l4)
        names_changed = bool(self._moved)
        patched = False
        if names_changed:
            patched = self._update_names(table)
        for name in table.changed if not patched else ():
            if name in self._uses:
                self._load_assignments[self._index(name)] = table.load_assignment(name)
                patched = True
        configs = tuple(routes.build() for routes in self._ports.values())
        configs_changed = len(configs) != len(self._configs) or any(
            a is not b for a, b in zip(configs, self._configs, strict=False)
        )
        self._configs = configs
        if out is not None and not (l4_built or names_changed or patched or configs_changed):
            return out
        listeners = (
            _by_name([*self._http_listeners, *self._l4_listeners])
            if out is None or l4_built
            else out.listeners
        )
        routes_ = (
            _by_name([*configs, *self._l4_routes])
            if out is None or l4_built or configs_changed
            else out.routes
        )
        clusters = tuple(self._cluster_messages) if out is None or names_changed else out.clusters
        endpoints = (
            tuple(self._load_assignments)
            if out is None or names_changed or patched
            else out.endpoints
        )
        self._output = GatewayResources(listeners, routes_, clusters, endpoints, self._secrets)
        return self._output

    def _update_names(self, table: ClusterTable) -> bool:
        """Sorted cluster names and messages after names came and went; True if all rebuilt."""
        moved, self._moved = self._moved, set()
        if len(moved) > _FEW:
            self._names = sorted(self._uses)
            self._cluster_messages = [table.cluster(name) for name in self._names]
            self._load_assignments = [table.load_assignment(name) for name in self._names]
            return True
        for name in moved:
            index = self._index(name)
            listed = index < len(self._names) and self._names[index] == name
            if listed and name not in self._uses:
                del self._names[index], self._cluster_messages[index]
                del self._load_assignments[index]
            elif name in self._uses and not listed:
                self._names.insert(index, name)
                self._cluster_messages.insert(index, table.cluster(name))
                self._load_assignments.insert(index, table.load_assignment(name))
        return False

    def _build_l4(self, l4: L4Routes) -> None:
        """HTTPS, TLS, TCP and UDP listeners, as ``add_l4_listeners`` and its callers build them."""
        self._l4_dirty = False
        if not self._has_l4:
            return
        key = self.state.gateway.meta.key
        https = [e for order in sorted(self._entries) for e in self._entries[order]]
        https = [e for e in https if e.listener.listener.protocol == "HTTPS"]
        ir = add_l4_listeners({key: GatewayIR(key, (), ())}, [self.state], https, l4)[key]
        address, offset = self._address, self._offset
        self._l4_listeners = [
            *(xds_listeners.stream_listener(s, address, offset) for s in ir.streams),
            *(xds_listeners.datagram_listener(d, address, offset) for d in ir.datagrams),
        ]
        tables = [c.routes for s in ir.streams for c in s.chains if c.routes is not None]
        self._l4_routes = [xds_listeners.route_configuration(t) for t in tables]
        used = frozenset(c.name for c in ir.clusters)
        self._use(used - self._l4_clusters, +1)
        self._use(self._l4_clusters - used, -1)
        self._l4_clusters = used

    def _use(self, names_: Iterable[str], delta: int) -> None:
        for name in names_:
            count = self._uses.get(name, 0) + delta
            if count > 0:
                if name not in self._uses:
                    self._moved.add(name)
                self._uses[name] = count
            else:
                del self._uses[name]
                self._moved.add(name)

    def _index(self, name: str) -> int:
        return bisect.bisect_left(self._names, name)


def _on_http_port(entry: RouteEntry, port: int) -> bool:
    listener = entry.listener.listener
    return listener.protocol == "HTTP" and listener.port == port


def _clusters_of(entries: Iterable[RouteEntry]) -> Iterable[str]:
    """The clusters entries send traffic to or mirror it to (``virtualhosts.assemble``)."""
    for entry in entries:
        yield from (b.cluster for b in entry.route.backends if b.cluster)
        yield from (m.cluster for m in entry.route.filters.mirrors)


def _by_name(messages: list[Any]) -> tuple[Any, ...]:
    return tuple(sorted(messages, key=lambda m: m.name))
