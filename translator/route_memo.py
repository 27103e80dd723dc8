"""What ``translator.incremental`` remembers of each translated HTTPRoute and GRPCRoute.

A ``RouteMemo`` holds what a route's outcome contributes to the whole translation (its
entries per Gateway, the clusters it provides, the listeners it counts as attached to, its
status entry) and what its translation read; ``RouteStatuses`` keeps the routes' status
entries in the order ``translate()`` lists them. Plain data, no translation logic.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass

from translator.ir import Cluster
from translator.model import Meta, ObjectName
from translator.port_routes import RouteOrder
from translator.read_log import Read
from translator.result import StatusEntry
from translator.routeflow import RouteEntry, RouteOutcome
from translator.translate import attached_pairs, status_entry


@dataclass(frozen=True, slots=True)
class RouteMemo:
    reads: frozenset[Read]
    by_gateway: Mapping[ObjectName, tuple[RouteEntry, ...]]
    pairs: frozenset[tuple[str, str]]  # (Gateway, listener name) it is attached to
    clusters: tuple[Cluster, ...]
    status: StatusEntry | None


def memo_of(kind: str, meta: Meta, outcome: RouteOutcome, reads: frozenset[Read]) -> RouteMemo:
    by_gateway: dict[ObjectName, list[RouteEntry]] = {}
    for entry in outcome.entries:
        by_gateway.setdefault(entry.listener.gateway, []).append(entry)
    status = status_entry(kind, meta, outcome.status) if outcome.status is not None else None
    return RouteMemo(
        reads=reads,
        by_gateway={key: tuple(entries) for key, entries in by_gateway.items()},
        pairs=pairs_of(outcome),
        clusters=outcome.clusters,
        status=status,
    )


def pairs_of(outcome: RouteOutcome) -> frozenset[tuple[str, str]]:
    """(Gateway, listener name) of every listener the outcome is attached to."""
    return frozenset((gateway, listener) for gateway, listener, _ in attached_pairs(outcome))


class RouteStatuses:
    """Status entries of the routes that have one, in (kind, namespace, name) order."""

    def __init__(self) -> None:
        self._orders: list[RouteOrder] = []
        self._entries: list[StatusEntry] = []
        self._tuple: tuple[StatusEntry, ...] | None = ()

    def replace(self, order: RouteOrder, old: RouteMemo | None, new: RouteMemo | None) -> None:
        before = old.status if old is not None else None
        after = new.status if new is not None else None
        if before is None and after is None:
            return
        index = bisect.bisect_left(self._orders, order)
        present = index < len(self._orders) and self._orders[index] == order
        if after is None:
            del self._orders[index], self._entries[index]
        elif present:
            self._entries[index] = after
        else:
            self._orders.insert(index, order)
            self._entries.insert(index, after)
        self._tuple = None

    def entries(self) -> tuple[StatusEntry, ...]:
        if self._tuple is None:
            self._tuple = tuple(self._entries)
        return self._tuple
