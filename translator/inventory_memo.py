"""Parse each object once: the ``Inventory`` of ``translator.parse``, kept up to date by diffs.

Called by ``translator.incremental`` with every object of a snapshot, keyed by a stable
identity (a provider's ObjectKey). Objects whose body is the very same dict as last time
(providers keep unchanged bodies), or an equal one, are not parsed again; the others are
parsed with the functions ``parse_inventory`` uses, and the fields of the ``Inventory``
that hold them are rebuilt (copied, never mutated: earlier inventories stay valid).

The result equals ``parse_inventory(objects.values())`` except for the iteration order of
its mappings, which nothing reads. Two objects with one identity (kind, namespace, name)
make the memo ``degenerate``: the caller must then translate without it.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import operator
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from translator import kube
from translator.l4routes import L4_KINDS, parse_l4_route
from translator.model import Namespace, object_name
from translator.parse import (
    Inventory,
    parse_endpoint_slice,
    parse_gateway,
    parse_gateway_class,
    parse_http_route,
    parse_meta,
    parse_reference_grant,
    parse_service,
    valid_identity,
)
from translator.parse_grpc import parse_grpc_route
from translator.tls import parse_secret

Body = Mapping[str, Any]
NsName = tuple[str, str]  # (namespace, name), the order parse_inventory sorts by


def _secret(body: Body) -> Any:
    return parse_secret(body, parse_meta(body))


def _namespace(body: Body) -> Any:
    return Namespace(kube.name_of(body), kube.labels_of(body))


_GW = kube.GATEWAY_GROUP
# Kind -> (API group, parser): what parse_inventory reads.
PARSERS: Mapping[str, tuple[str, Callable[[Body], Any]]] = {
    "GatewayClass": (_GW, parse_gateway_class),
    "Gateway": (_GW, parse_gateway),
    "HTTPRoute": (_GW, parse_http_route),
    "GRPCRoute": (_GW, parse_grpc_route),
    **dict.fromkeys(L4_KINDS, (_GW, parse_l4_route)),
    "ReferenceGrant": (_GW, parse_reference_grant),
    "Service": ("", parse_service),
    "EndpointSlice": ("discovery.k8s.io", parse_endpoint_slice),
    "Secret": ("", _secret),
    "Namespace": ("", _namespace),
}


@dataclass(frozen=True, slots=True)
class _Parsed:
    body: Body
    kind: str | None  # None: not an object the translator reads
    key: NsName
    value: Any


_IGNORED = ("", "")
_FEW = 64  # more keys entered into a sorted list than this: sort it again

# (kind, (namespace, name)) -> (value before, value after); None where absent.
Replaced = Mapping[tuple[str, NsName], tuple[Any, Any]]


class InventoryMemo:
    """The parsed objects of the last snapshot, and the ``Inventory`` built from them."""

    def __init__(self) -> None:
        self._parsed: dict[Hashable, _Parsed] = {}
        self._keys: list[Hashable] = []
        self._bodies: list[Body] = []
        self._values: dict[str, dict[NsName, Any]] = {kind: {} for kind in PARSERS}
        self._order: dict[str, list[NsName]] = {kind: [] for kind in PARSERS}
        self._groups: dict[str, dict[str, list[NsName]]] = {kind: {} for kind in _GROUPS}
        self._owners: dict[tuple[str, NsName], Hashable] = {}
        self._entered: dict[int, tuple[list[NsName], list[NsName]]] = {}  # by id of the list
        self.degenerate = False
        self.inventory = _empty_inventory()

    def update(self, objects: Mapping[Any, Body]) -> Replaced:
        """Take the new snapshot; what changed, by kind and (namespace, name)."""
        replaced: dict[tuple[str, NsName], tuple[Any, Any]] = {}
        entering: list[tuple[Hashable, Body]] = []
        for key in self._changed_keys(objects):
            body = objects.get(key)
            old = self._parsed.pop(key, None)
            if old is not None and body is not None and old.body == body:
                self._parsed[key] = dataclasses.replace(old, body=body)
                continue
            if old is not None and old.kind is not None:
                self._forget(old, replaced)
            if body is not None:
                entering.append((key, body))
        for key, body in entering:  # after every removal: an object may change its key
            self._enter(key, body, replaced)
        self._sort_entered()
        self._keys, self._bodies = list(objects), list(objects.values())
        replaced = {k: pair for k, pair in replaced.items() if pair[0] is not pair[1]}
        if replaced:
            self.inventory = self._rebuilt(replaced)
        return replaced

    def current(self, kind: str, key: NsName) -> Any:
        """The parsed object of ``kind`` at (namespace, name), or None."""
        return self._values[kind].get(key)

    def _changed_keys(self, objects: Mapping[Any, Body]) -> list[Hashable]:
        """Keys whose body is not the very same object as last time (added, removed too)."""
        if list(objects) == self._keys:  # the usual case: same keys in the same order
            flags = map(operator.is_not, objects.values(), self._bodies)
            return list(itertools.compress(objects.keys(), flags))
        get = self._parsed.get
        changed = [
            k for k, body in objects.items() if (old := get(k)) is None or old.body is not body
        ]
        changed += list(self._parsed.keys() - objects.keys())
        return changed

    def _enter(
        self, key: Hashable, body: Body, replaced: dict[tuple[str, NsName], tuple[Any, Any]]
    ) -> None:
        new = _parse(body)
        self._parsed[key] = new
        if new.kind is None:
            return
        identity = (new.kind, new.key)
        if identity in self._owners:
            self.degenerate = True  # two objects, one identity: parse_inventory keeps both
            return
        self._owners[identity] = key
        self._values[new.kind][new.key] = new.value
        self._note_entered(self._order[new.kind], new.key)
        if (group := _group_of(new.kind, new.value)) is not None:
            self._note_entered(self._groups[new.kind].setdefault(group, []), new.key)
        before = replaced.get(identity, (None, None))[0]
        replaced[identity] = (before, new.value)

    def _note_entered(self, order: list[NsName], key: NsName) -> None:
        self._entered.setdefault(id(order), (order, []))[1].append(key)

    def _sort_entered(self) -> None:
        """Put the keys entered into their sorted lists: one by one if few, else sort again."""
        for order, keys in self._entered.values():
            if len(keys) > _FEW:
                order.extend(keys)
                order.sort()
            else:
                for key in keys:
                    bisect.insort(order, key)
        self._entered = {}

    def _forget(self, old: _Parsed, replaced: dict[tuple[str, NsName], tuple[Any, Any]]) -> None:
        assert old.kind is not None
        identity = (old.kind, old.key)
        if self._values[old.kind].get(old.key) is not old.value:
            return  # a duplicate that was never entered
        del self._owners[identity]
        del self._values[old.kind][old.key]
        _remove(self._order[old.kind], old.key)
        if (group := _group_of(old.kind, old.value)) is not None:
            members = self._groups[old.kind][group]
            _remove(members, old.key)
            if not members:
                del self._groups[old.kind][group]
        replaced[identity] = (old.value, None)

    def _rebuilt(self, replaced: Replaced) -> Inventory:
        inv = self.inventory
        kinds = {kind for kind, _ in replaced}
        fields: dict[str, Any] = {}
        for kind, name in _TUPLE_FIELDS.items():
            if kind in kinds:
                fields[name] = self._tuple(kind, getattr(inv, name), replaced)
        if kinds & set(L4_KINDS):
            fields["l4_routes"] = tuple(
                v for kind in L4_KINDS for v in (self._values[kind][k] for k in self._order[kind])
            )
        if "Service" in kinds:
            fields["services"] = _by_key(inv.services, replaced, "Service")
        if "Secret" in kinds:
            fields["secrets"] = _by_key(inv.secrets, replaced, "Secret")
        if "Namespace" in kinds:  # few; names may repeat across namespaces: the last one wins
            fields["namespaces"] = {v.name: v for v in self._tuple("Namespace", (), {})}
        for kind, name in _GROUPS.items():
            if kind in kinds:
                fields[name] = self._grouped(getattr(inv, name), replaced, kind)
        return dataclasses.replace(inv, **fields)

    def _tuple(self, kind: str, previous: tuple[Any, ...], replaced: Replaced) -> tuple[Any, ...]:
        """The kind's objects in (namespace, name) order; patched when none came or went."""
        order, values = self._order[kind], self._values[kind]
        mine = [(key, pair) for (k, key), pair in replaced.items() if k == kind]
        if len(previous) != len(order) or any(None in pair for _, pair in mine):
            return tuple(values[k] for k in order)
        patched = list(previous)
        for key, (_, after) in mine:
            patched[bisect.bisect_left(order, key)] = after
        return tuple(patched)

    def _grouped(
        self, previous: Mapping[Any, tuple[Any, ...]], replaced: Replaced, kind: str
    ) -> dict[Any, tuple[Any, ...]]:
        """Objects grouped (by Service, by namespace), each group in (namespace, name) order."""
        touched = {
            group
            for (k, _), pair in replaced.items()
            if k == kind
            for value in pair
            if value is not None and (group := _group_of(kind, value)) is not None
        }
        result = dict(previous)
        values, groups = self._values[kind], self._groups[kind]
        for group in touched:
            if group in groups:
                result[group] = tuple(values[k] for k in groups[group])
            else:
                result.pop(group, None)
        return result


_TUPLE_FIELDS = {
    "GatewayClass": "classes",
    "Gateway": "gateways",
    "HTTPRoute": "http_routes",
    "GRPCRoute": "grpc_routes",
}


_GROUPS = {"EndpointSlice": "slices", "ReferenceGrant": "grants"}


def _group_of(kind: str, value: Any) -> str | None:
    if kind == "EndpointSlice":
        return slice_group(value)
    if kind == "ReferenceGrant":
        return str(value.meta.namespace)
    return None


def _remove(order: list[NsName], key: NsName) -> None:
    del order[bisect.bisect_left(order, key)]


def slice_group(value: Any) -> str | None:
    """The Service an EndpointSlice belongs to ("namespace/name"); None: none (ignored)."""
    return object_name(value.meta.namespace, value.service) if value.service else None


def _by_key(previous: Mapping[Any, Any], replaced: Replaced, kind: str) -> dict[Any, Any]:
    """``previous`` (keyed "namespace/name") with the kind's replaced objects swapped in."""
    result = dict(previous)
    for (k, _), (before, after) in replaced.items():
        if k != kind:
            continue
        if before is not None:
            key = before.meta.key
            if result.get(key) is before:
                del result[key]
        if after is not None:
            result[after.meta.key] = after
    return result


def _parse(body: Body) -> _Parsed:
    name = kube.name_of(body)
    parser = PARSERS.get(kube.kind_of(body)) if name else None
    if parser is None or kube.group_of(body) != parser[0]:
        return _Parsed(body, None, _IGNORED, None)
    namespace = kube.namespace_of(body)
    if not valid_identity(namespace, name):
        return _Parsed(body, None, _IGNORED, None)
    value = parser[1](body)
    kind = kube.kind_of(body)
    if kind == "EndpointSlice" and not value.service:
        return _Parsed(body, None, _IGNORED, None)
    return _Parsed(body, kind, (namespace, name), value)


def _empty_inventory() -> Inventory:
    return Inventory((), (), (), (), {}, {}, {}, {}, {}, ())
