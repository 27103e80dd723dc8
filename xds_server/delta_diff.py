"""Delta ADS, one type of one stream: what the proxy holds, and what differs from a target.

Who calls it: the delta state machine (``xds_server.delta_state``), which owns the order
of types and the protocol; this module answers, for one type, "what must be sent (or
removed) so that the proxy holds what the target selects?" ::

    DeltaTypeState(held, owed, unknown, rejected, names | wildcard)
            │  changes(ts, target)  memoized per (target, generation, owed)
            ▼
    Changes(updates, removed_now, removed_later, exact)

Two ways give the same answer (a property test checks it): ``full_changes`` compares every
selected resource with what the proxy holds; ``changes_since`` starts from the ``base``
target whose selection the proxy holds exactly, and reads only the shared
snapshot-to-snapshot difference (``delta_index.changes``) and the names owed an answer.
Rejected content is never in ``updates``. ``held`` and ``acked`` are the snapshot's own
immutable mapping whenever the proxy holds the whole target (``own`` makes a private copy
before any change). No I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from translator.result import CLUSTER_TYPE, ENDPOINT_TYPE, ROUTE_TYPE, SECRET_TYPE
from xds_server import delta_index
from xds_server.cache import Resource, TypeSet
from xds_server.clients import Nack

_REMOVED_WITH_CLEANUP = frozenset({CLUSTER_TYPE, ENDPOINT_TYPE, SECRET_TYPE, ROUTE_TYPE})


_NOTHING: Mapping[str, Resource] = MappingProxyType({})


def _nothing() -> Mapping[str, Resource]:
    return _NOTHING


@dataclass(frozen=True, slots=True)
class DeltaResponse:
    """A response to send: resources added or changed, names removed."""

    type_url: str
    version: str  # system_version_info
    resources: tuple[Resource, ...]
    removed: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Changes:
    """What differs between a type's selection of the target and what the proxy holds."""

    updates: tuple[Resource, ...]
    removed_now: tuple[str, ...]  # owed names that do not exist; listeners gone
    removed_later: tuple[str, ...]  # held resources gone: removed with the cleanup
    exact: bool = True  # False: rejected content the proxy lacks was left out

    def __bool__(self) -> bool:
        return bool(self.updates or self.removed_now or self.removed_later)


@dataclass(slots=True)
class DeltaTypeState:
    """What one stream subscribed to, holds and ACKed, for one type URL."""

    type_url: str
    subscribed: bool = False  # a request of this type came on this stream
    wildcard: bool = False
    names: frozenset[str] = frozenset()  # explicit subscriptions, never "*"
    answer: bool = False  # the first request waits for an answer, even an empty one
    owed: set[str] = field(default_factory=set)
    # held and acked are either a snapshot's own immutable mapping, shared by every stream
    # that holds exactly that target, or a dict private to this stream (see own).
    held: Mapping[str, Resource] = field(default_factory=_nothing)
    unknown: dict[str, str] = field(default_factory=dict)  # reconnect: versions we lack
    acked: Mapping[str, Resource] = field(default_factory=_nothing)
    acked_after: Mapping[str, Resource] | None = None  # acked once the pending is ACKed
    rejected: dict[str, str] = field(default_factory=dict)  # name -> NACKed digest
    version: str = ""  # system_version_info of the last response
    nonce: str = ""
    pending: DeltaResponse | None = None  # awaits its ACK/NACK
    sent_at: float = 0.0  # monotonic
    nack: Nack | None = None
    nack_standing: bool = False  # no ACK of this type since the last NACK
    acks: int = 0  # ACKs received on this stream
    # Bumped whenever held, names, wildcard, unknown or rejected change (not owed).
    generation: int = 0
    base: tuple[TypeSet, int] | None = None  # (target, generation): held == its selection
    memo: tuple[TypeSet, int, frozenset[str], Changes] | None = None
    selection_memo: tuple[TypeSet, frozenset[str], Mapping[str, Resource]] | None = None
    all_memo: tuple[TypeSet, frozenset[str], bool] | None = None  # names cover the target

    def touch(self) -> None:
        """The proxy's holdings or subscription changed: diffs must be recomputed."""
        self.generation += 1

    def covers(self, name: str) -> bool:
        return self.wildcard or name in self.names


def own(shared: Mapping[str, Resource]) -> dict[str, Resource]:
    """A mapping this stream may change: itself if private, else a private copy."""
    return shared if isinstance(shared, dict) else dict(shared)


def selection(ts: DeltaTypeState, target: TypeSet) -> Mapping[str, Resource]:
    """What the subscription selects from the target (the wildcard: everything)."""
    if ts.wildcard or selects_all(ts, target):
        return target.by_name
    memo = ts.selection_memo
    if memo is not None and memo[0] is target and memo[1] is ts.names:
        return memo[2]
    by_name = target.by_name
    selected = {n: by_name[n] for n in sorted(ts.names) if n in by_name}
    ts.selection_memo = (target, ts.names, selected)
    return selected


def selects_all(ts: DeltaTypeState, target: TypeSet) -> bool:
    """Whether the subscription selects every resource of the target (from the change)."""
    if ts.wildcard:
        return True
    known = ts.all_memo
    if known is not None and known[1] is ts.names and known[0] is target:
        return known[2]
    if known is not None and known[1] is ts.names and known[2]:
        before = known[0].by_name
        new = (n for n in delta_index.changes(known[0], target).changed if n not in before)
        result = all(n in ts.names for n in new)
    else:
        result = target.by_name.keys() <= ts.names
    ts.all_memo = (target, ts.names, result)
    return result


def sendable(ts: DeltaTypeState, resource: Resource) -> bool:
    return ts.rejected.get(resource.name) != resource.digest  # rejected: never again


def holds(ts: DeltaTypeState, resource: Resource) -> bool:
    held = ts.held.get(resource.name)
    return held is not None and held.digest == resource.digest


def _removals(
    ts: DeltaTypeState, now: set[str], gone: set[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(removed now, removed with the cleanup): held resources ``gone`` wait, but listeners."""
    if ts.type_url in _REMOVED_WITH_CLEANUP:
        return tuple(sorted(now)), tuple(sorted(gone))
    return tuple(sorted(now | gone)), ()


def full_changes(ts: DeltaTypeState, target: TypeSet) -> Changes:
    """Compare every selected resource with what the proxy holds."""
    selected = selection(ts, target)
    updates, exact = [], True
    for name, resource in selected.items():
        if name in ts.owed or not holds(ts, resource):
            if sendable(ts, resource):
                updates.append(resource)
            else:
                exact = exact and holds(ts, resource)
    now = ts.owed - selected.keys()  # answered: it does not exist
    gone = (ts.held.keys() | ts.unknown.keys()) - selected.keys() - ts.owed
    return Changes(tuple(updates), *_removals(ts, now, gone), exact=exact)


def changes_since(ts: DeltaTypeState, base: TypeSet, target: TypeSet) -> Changes:
    """The proxy holds ``base``'s selection: only what changed since, and what is owed."""
    diff = delta_index.changes(base, target)
    selects: Callable[[str], bool] = (lambda _name: True) if ts.wildcard else ts.names.__contains__
    by_name = target.by_name
    names = [n for n in diff.changed if selects(n)]
    if ts.owed:
        names = sorted({*names, *(n for n in ts.owed if n in by_name and selects(n))})
    updates = tuple(by_name[n] for n in names)  # diff.changed is sorted as the target is
    exact = True
    if ts.rejected:
        kept = tuple(r for r in updates if sendable(ts, r))
        exact = all(holds(ts, r) for r in updates if not sendable(ts, r))
        updates = kept
    now = {n for n in ts.owed if n not in by_name or not selects(n)}
    gone = {n for n in diff.removed if selects(n) and n not in ts.owed}
    return Changes(updates, *_removals(ts, now, gone), exact=exact)


def changes(ts: DeltaTypeState, target: TypeSet) -> Changes:
    """What differs for this type towards ``target`` (from the base when there is one)."""
    owed = frozenset(ts.owed)
    memo = ts.memo
    if memo is not None and memo[0] is target and memo[1] == ts.generation and memo[2] == owed:
        return memo[3]
    base = ts.base
    if base is not None and base[1] == ts.generation and not ts.unknown:
        found = changes_since(ts, base[0], target)
    else:
        found = full_changes(ts, target)
    if not found and found.exact:  # the proxy holds exactly the selection
        ts.base = (target, ts.generation)
    ts.memo = (target, ts.generation, owed, found)
    return found
