"""``IncrementalTranslator``: translate each new snapshot, redoing only what its changes affect.

The server process (``xds_server.app``) holds one and calls ``translate(objects)`` with every
object of each snapshot, keyed by a stable identity. The result is equal, byte for byte and
status for status, to ``translate(objects.values(), options)``; tests compare them. What it
remembers between calls is in the object, never in globals; it does no I/O and reads no clock.

Each call takes one of these paths (``stats.path``):

    unchanged   no object changed: the previous result
    endpoints   only EndpointSlices changed: the load assignments of their Services'
                clusters are re-read (``ClusterTable.refresh_endpoints``), all else is kept
    incremental the steps of ``translate()``, each redone only where its inputs changed:
                objects parsed again only when their body changed (``InventoryMemo``);
                Gateway states recomputed when a Gateway, GatewayClass, or a Secret or
                ReferenceGrant they read changed; a route translated again when it changed
                or when anything it read changed (``read_log``: the Gateways, Services,
                EndpointSlices, ReferenceGrants and Namespaces it looked up) or the listeners
                it lost to cross serving did (``CrossServing``: only listeners where changed
                routes claim hostnames are settled again); TLS/TCP/UDP routes (few)
                recomputed whole; each Gateway's resources patched (``GatewayBuild``)
    full        the first call, or after a failure: the incremental path from nothing
    fallback    two objects with one identity: plain ``translate()``, memory dropped

What a route's translation reads is recorded, not assumed: a later change to anything it
did not read cannot change its outcome, so skipping it is exact.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from translator import crossserving, l4routes, tls
from translator import gateways as gw
from translator.cluster_table import ClusterTable
from translator.crossserving import ClaimingRoute
from translator.crossserving_memo import CrossServing
from translator.gateway_build import GatewayBuild
from translator.gateways import GatewayState
from translator.grpcroutes import translate_grpc_route
from translator.httproutes import translate_http_route
from translator.inventory_memo import InventoryMemo, Replaced, slice_group
from translator.l4routes import L4Routes
from translator.model import ObjectName, object_name
from translator.parse import Inventory
from translator.port_routes import RouteOrder
from translator.read_log import ALL, Read, ReadLog, Recorded, RecordedTuple
from translator.result import StatusEntry, TranslationResult
from translator.route_memo import RouteMemo, RouteStatuses, memo_of, pairs_of
from translator.routeflow import RouteContext
from translator.translate import TranslateOptions, status_entry, translate

ROUTE_RANKS = {"HTTPRoute": 0, "GRPCRoute": 1}  # full translation: HTTPRoutes first
_READ_AS = {  # kind -> what its changes are noted as in read logs
    "Service": "service",
    "EndpointSlice": "slices",
    "ReferenceGrant": "grants",
    "Namespace": "namespace",
    "Secret": "secret",
    "GatewayClass": "classes",
    "Gateway": "gateways",
    "HTTPRoute": "http_routes",
    "GRPCRoute": "grpc_routes",
    **dict.fromkeys(l4routes.L4_KINDS, "l4_routes"),
}
_NO_L4 = L4Routes((), {}, (), ())


@dataclass(slots=True)
class Stats:
    """What the last call did, and totals: observable by tests, never timing."""

    path: str = ""
    routes_translated: int = 0  # by the last call
    virtual_hosts_built: int = 0  # by the last call (plain HTTP ports)
    load_assignments_built: int = 0  # by the last call
    calls: dict[str, int] = field(default_factory=dict)  # per path


class IncrementalTranslator:
    """Translates snapshot after snapshot; keeps what the next one can reuse."""

    def __init__(self, options: TranslateOptions | None = None) -> None:
        self.options = options or TranslateOptions()
        self.stats = Stats()
        self._reset()

    def _reset(self) -> None:
        self._inventory = InventoryMemo()
        self._log = ReadLog()
        self._table = ClusterTable()
        self._states: tuple[GatewayState, ...] = ()
        self._by_key: dict[ObjectName, GatewayState] = {}
        self._state_reads: frozenset[Read] = frozenset()
        self._lost: Mapping[tuple[str, ObjectName], crossserving.Lost] = {}
        self._cross: CrossServing | None = None  # while HTTPRoutes and GRPCRoutes both exist
        self._memos: dict[RouteOrder, RouteMemo] = {}
        self._readers: dict[Read, set[RouteOrder]] = {}
        self._counts: dict[tuple[str, str], int] = {}  # HTTP/GRPC routes per listener
        self._l4 = _NO_L4
        self._l4_counts: dict[tuple[str, str], int] = {}
        self._builds: dict[ObjectName, GatewayBuild] = {}
        self._retired_vhosts = 0  # virtual hosts built by builders since dropped
        self._class_statuses: tuple[StatusEntry, ...] = ()
        self._gateway_statuses: dict[ObjectName, tuple[Any, StatusEntry]] = {}
        self._route_statuses = RouteStatuses()
        self._result: TranslationResult | None = None

    def translate(self, objects: Mapping[Any, Mapping[str, Any]]) -> TranslationResult:
        """The translation of ``objects`` (keyed by a stable identity, e.g. an ObjectKey)."""
        try:
            return self._translate(objects)
        except BaseException:
            self._reset()  # never reuse a half-updated memory
            raise

    def _translate(self, objects: Mapping[Any, Mapping[str, Any]]) -> TranslationResult:
        vhosts, assignments = self._built()
        result = self._translate_objects(objects)
        after = self._built()
        self.stats.virtual_hosts_built = max(0, after[0] - vhosts)  # 0 after a reset
        self.stats.load_assignments_built = max(0, after[1] - assignments)
        return result

    def _built(self) -> tuple[int, int]:
        vhosts = sum(build.virtual_hosts_built for build in self._builds.values())
        return vhosts + self._retired_vhosts, self._table.assignments_built

    def _translate_objects(self, objects: Mapping[Any, Mapping[str, Any]]) -> TranslationResult:
        replaced = self._inventory.update(objects)
        if self._inventory.degenerate:
            self._reset()
            self._count("fallback", 0)
            return translate(objects.values(), self.options)
        previous = self._result
        if previous is not None and not replaced:
            self._count("unchanged", 0)
            return previous
        self._table.clear_changed()
        if previous is not None and {kind for kind, _ in replaced} == {"EndpointSlice"}:
            result = self._endpoints_only(replaced, previous)
        else:
            result = self._step(replaced, first=previous is None)
        self._result = result
        return result

    def _count(self, path: str, routes: int) -> None:
        self.stats.path = path
        self.stats.routes_translated = routes
        self.stats.calls[path] = self.stats.calls.get(path, 0) + 1

    # --- the EDS fast path -----------------------------------------------------------------

    def _endpoints_only(self, replaced: Replaced, previous: TranslationResult) -> TranslationResult:
        services = {
            group
            for pair in replaced.values()
            for value in pair
            if value is not None and (group := slice_group(value)) is not None
        }
        self._table.refresh_endpoints(sorted(services), self._inventory.inventory.slices)
        self._count("endpoints", 0)
        return TranslationResult(self._gateway_resources(), previous.statuses)

    # --- the incremental path --------------------------------------------------------------

    def _step(self, replaced: Replaced, *, first: bool) -> TranslationResult:
        inv = self._inventory.inventory
        kinds = {kind for kind, _ in replaced}
        changed = _changed_reads(replaced)
        changed_gateways: set[ObjectName] = set()
        if first or kinds & {"GatewayClass", "Gateway"} or changed & self._state_reads:
            changed_gateways = self._update_states(inv, classes_changed="GatewayClass" in kinds)
            changed |= {("gateway", key) for key in changed_gateways}
            changed |= {("gateway", ALL)} if changed_gateways else set()
        dirty = self._update_lost(inv, replaced, rebuild=first or bool(changed_gateways))
        dirty |= {(ROUTE_RANKS[kind], *key) for kind, key in replaced if kind in ROUTE_RANKS}
        for read in changed:
            dirty |= self._readers.get(read, set())
        ctx = self._route_context(inv)
        for order in sorted(dirty):
            self._retranslate(order, ctx)
        self._update_l4(inv)
        self._count("full" if first else "incremental", len(dirty))
        gateways = self._gateway_resources()
        statuses = (
            *self._class_statuses,
            *self._gateway_status_entries(),
            *self._route_statuses.entries(),
            *self._l4.statuses,
        )
        return TranslationResult(gateways, statuses)

    def _update_states(self, inv: Inventory, *, classes_changed: bool) -> set[ObjectName]:
        """Gateway states anew (an equal state keeps its object); the keys that changed."""
        classes = gw.our_classes(inv.classes)
        if classes_changed or not self._class_statuses:
            self._class_statuses = tuple(
                status_entry("GatewayClass", gc.meta, gw.class_status(gc))
                for gc in classes.values()
            )
        states = gw.gateway_states(inv.gateways, classes)
        self._log.take()
        read = dataclasses.replace(
            inv,
            secrets=Recorded(inv.secrets, "secret", self._log),
            grants=Recorded(inv.grants, "grants", self._log),
        )
        states = tls.resolve_certificates(states, read)
        self._state_reads = self._log.take()
        kept: dict[ObjectName, GatewayState] = {}
        for state in states:
            key = state.gateway.meta.key
            old = self._by_key.get(key)
            kept[key] = old if old is not None and old == state else state
        changed = {
            k for k in kept.keys() | self._by_key.keys() if kept.get(k) is not self._by_key.get(k)
        }
        self._states = tuple(kept.values())
        self._by_key = kept
        address, offset = self.options.listener_address, self.options.privileged_port_offset
        for key in changed:
            retired = self._builds.pop(key, None)
            self._retired_vhosts += retired.virtual_hosts_built if retired else 0
            state_ = kept.get(key)
            if state_ is not None and state_.accepted:
                self._builds[key] = GatewayBuild(state_, address, offset)
        return changed

    def _update_lost(self, inv: Inventory, replaced: Replaced, *, rebuild: bool) -> set[RouteOrder]:
        """Cross serving after the changes (``rebuild``: Gateways or Namespaces changed, so
        every route's claims); the routes whose lost listeners changed."""
        old = self._lost
        if not inv.http_routes or not inv.grpc_routes:
            self._cross, self._lost = None, {}
            moved = set(old)
        elif self._cross is None or rebuild or "Namespace" in {kind for kind, _ in replaced}:
            self._cross = CrossServing(self._by_key, inv.namespaces)
            routes: list[ClaimingRoute] = [*inv.http_routes, *inv.grpc_routes]
            self._cross.update(((r.kind, r.meta.key), r) for r in routes)
            self._lost = self._cross.lost
            moved = {
                key for key in old.keys() | self._lost.keys() if old.get(key) != self._lost.get(key)
            }
        else:
            changed = [
                ((kind, object_name(*key)), self._inventory.current(kind, key))
                for kind, key in replaced
                if kind in ROUTE_RANKS
            ]
            moved = self._cross.update(changed)
        orders = set()
        for kind, key in moved:
            namespace, name = key.split("/", 1)  # names never hold a "/"
            orders.add((ROUTE_RANKS[kind], namespace, name))
        return orders

    def _route_context(self, inv: Inventory) -> RouteContext:
        """The context routes are translated against, noting what each one reads."""
        log = self._log
        read = Inventory(
            classes=RecordedTuple(inv.classes, "classes", log),
            gateways=RecordedTuple(inv.gateways, "gateways", log),
            http_routes=RecordedTuple(inv.http_routes, "http_routes", log),
            grpc_routes=RecordedTuple(inv.grpc_routes, "grpc_routes", log),
            services=Recorded(inv.services, "service", log),
            slices=Recorded(inv.slices, "slices", log),
            grants=Recorded(inv.grants, "grants", log),
            namespaces=Recorded(inv.namespaces, "namespace", log),
            secrets=Recorded(inv.secrets, "secret", log),
            l4_routes=RecordedTuple(inv.l4_routes, "l4_routes", log),
        )
        return RouteContext(Recorded(self._by_key, "gateway", log), read, self._lost)

    def _retranslate(self, order: RouteOrder, ctx: RouteContext) -> None:
        """Translate one route again (or forget it): its entries, clusters, counts, status."""
        kind = "HTTPRoute" if order[0] == 0 else "GRPCRoute"
        route = self._inventory.current(kind, order[1:])
        old = self._memos.pop(order, None)
        new: RouteMemo | None = None
        if route is not None:
            self._log.take()
            outcome = (
                translate_http_route(route, ctx)
                if kind == "HTTPRoute"
                else translate_grpc_route(route, ctx)
            )
            new = self._memos[order] = memo_of(kind, route.meta, outcome, self._log.take())
            self._table.provide(outcome.clusters)  # before the old ones go: no churn
        if old is not None:
            self._table.withdraw(c.name for c in old.clusters)
            for read in old.reads:
                readers = self._readers[read]
                readers.discard(order)
                if not readers:
                    del self._readers[read]
        for read in new.reads if new else ():
            self._readers.setdefault(read, set()).add(order)
        for key in {*(old.by_gateway if old else ()), *(new.by_gateway if new else ())}:
            build = self._builds.get(key)
            if build is not None:
                build.set_route(order, new.by_gateway.get(key, ()) if new else ())
        _move(self._counts, old.pairs if old else (), new.pairs if new else ())
        self._route_statuses.replace(order, old, new)

    def _update_l4(self, inv: Inventory) -> None:
        """TLS, TCP and UDP routes, whole (they are few); their clusters and counts."""
        if not inv.l4_routes and not self._l4.outcomes:
            return
        ctx = RouteContext(self._by_key, inv, self._lost)
        l4 = l4routes.translate_l4_routes(inv.l4_routes, ctx)
        if l4.bound != self._l4.bound or l4.clusters != self._l4.clusters:
            for build in self._builds.values():
                build.l4_changed()
        self._table.provide(l4.clusters.values())
        self._table.withdraw(self._l4.clusters)
        counts: dict[tuple[str, str], int] = {}
        _move(counts, (), [p for o in l4.outcomes for p in pairs_of(o)])
        self._l4, self._l4_counts = l4, counts

    # --- output ----------------------------------------------------------------------------

    def _gateway_resources(self) -> dict[str, Any]:
        return {key: self._builds[key].build(self._table, self._l4) for key in sorted(self._builds)}

    def _gateway_status_entries(self) -> list[StatusEntry]:
        """Each Gateway's status, rebuilt only when its state or its attached counts changed."""
        entries = []
        memo: dict[ObjectName, tuple[Any, StatusEntry]] = {}
        for state in self._states:
            key = state.gateway.meta.key
            attached: dict[tuple[str, str], int] = {
                (key, ls.listener.name): self._counts.get((key, ls.listener.name), 0)
                + self._l4_counts.get((key, ls.listener.name), 0)
                for ls in state.listeners
            }
            seen = (state, tuple(attached.values()))
            old = self._gateway_statuses.get(key)
            if old is not None and old[0][0] is state and old[0][1] == seen[1]:
                memo[key] = old
            else:
                status = gw.gateway_status(state, attached)
                memo[key] = (seen, status_entry("Gateway", state.gateway.meta, status))
            entries.append(memo[key][1])
        self._gateway_statuses = memo
        return entries


def _move(
    counts: dict[tuple[str, str], int],
    old: Any,
    new: Any,
) -> None:
    for pair in old:
        counts[pair] -= 1
        if not counts[pair]:
            del counts[pair]
    for pair in new:
        counts[pair] = counts.get(pair, 0) + 1


def _changed_reads(replaced: Replaced) -> set[Read]:
    """What reads the replaced objects answer: (what, key) and (what, ALL)."""
    reads: set[Read] = set()
    for (kind, _), pair in replaced.items():
        what = _READ_AS.get(kind)
        if what is None:
            continue
        reads.add((what, ALL))
        for value in pair:
            if value is None:
                continue
            if kind in {"Service", "Secret"}:
                reads.add((what, value.meta.key))
            elif kind == "EndpointSlice":
                reads.add((what, slice_group(value)))
            elif kind == "ReferenceGrant":
                reads.add((what, value.meta.namespace))
            elif kind == "Namespace":
                reads.add((what, value.name))
    return reads
