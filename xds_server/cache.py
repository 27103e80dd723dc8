"""The snapshot cache: every Gateway's Envoy resources, serialized once, versioned by content.

The server process calls ``SnapshotCache.set_snapshot(result.gateways)`` after each
translation; the ADS server (``xds_server.ads``) reads ``get(gateway)`` and registers a
``watch`` per stream to learn when *its* Gateway's content changed. ::

    GatewayResources (protobuf messages)                      set_snapshot()
        └─► Resource(name, type_url, chunk, digest)   encoded once; interned by digest
              └─► TypeSet(type_url, version, resources)   version = hash of (name, digest)
                    └─► GatewaySnapshot(gateway, types)   one TypeSet per xDS type

``chunk`` is the complete ``resources`` entry of a DiscoveryResponse (see ``wire``), so a
response is a concatenation of shared bytes. Work follows what changed: a tuple of messages
that is the very same object as last time keeps its TypeSet, and a message that is the very
same object as last time keeps its Resource, without being serialized again (the
incremental translator reuses both for whatever did not change). So messages handed to
``set_snapshot`` must never be mutated afterwards. Versions are content hashes, stable across
restarts, so a reconnecting proxy can be recognised as up to date. Before the first
``set_snapshot`` the cache is not ready and ``get`` returns None for every Gateway: nothing
may ever be sent from an empty, partial world.

This module must not do I/O, know about gRPC or streams, or mutate the messages it is given.
``set_snapshot`` may run on any thread; watch callbacks are called on that thread and must
be thread-safe (the ADS server hands its event loop the wake-up).
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import operator
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2

from translator.result import TYPE_ORDER, GatewayResources
from xds_server import wire, xds_metrics

_TYPE_PREFIX = "type.googleapis.com/"
_CLA_FULL_NAME = "envoy.config.endpoint.v3.ClusterLoadAssignment"
_CLUSTER_FULL_NAME = "envoy.config.cluster.v3.Cluster"
_EMPTY: Mapping[str, Any] = MappingProxyType({})


def resource_name(message: Any) -> str:
    """The xDS name of a resource: ``cluster_name`` of a ClusterLoadAssignment, else ``name``."""
    if message.DESCRIPTOR.full_name == _CLA_FULL_NAME:
        return str(message.cluster_name)
    return str(message.name)


def eds_name(message: Any) -> str:
    """The ClusterLoadAssignment an EDS-over-ADS Cluster subscribes to; "" for other messages."""
    if message.DESCRIPTOR.full_name != _CLUSTER_FULL_NAME:
        return ""
    if message.type != cluster_pb2.Cluster.EDS:
        return ""
    eds = message.eds_cluster_config
    if not eds.eds_config.HasField("ads"):
        return ""
    return str(eds.service_name or message.name)


@dataclass(frozen=True, slots=True)
class Resource:
    """One encoded resource; ``eds_name`` is set for Clusters whose endpoints come over ADS."""

    name: str
    type_url: str
    chunk: bytes
    digest: str
    eds_name: str = ""
    # What ``content_version`` hashes for this resource, computed once.
    version_line: bytes = field(default=b"", repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.version_line:
            object.__setattr__(self, "version_line", f"{self.name}\0{self.digest}\n".encode())


def content_version(resources: Iterable[Resource]) -> str:
    """The version of a set of resources: a hash of its sorted (name, digest) pairs."""
    hasher = hashlib.sha256()
    for name, digest in sorted((r.name, r.digest) for r in resources):
        hasher.update(f"{name}\0{digest}\n".encode())
    return hasher.hexdigest()[:16]


def _sorted_version(ordered: tuple[Resource, ...]) -> str:
    """``content_version`` of resources sorted by name, names unique (the same hash, faster)."""
    return hashlib.sha256(b"".join([r.version_line for r in ordered])).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class TypeSet:
    """An immutable set of resources of one type, sorted by name, with its content version."""

    type_url: str
    version: str
    resources: tuple[Resource, ...]
    by_name: Mapping[str, Resource] = field(repr=False, compare=False)

    @classmethod
    def of(cls, type_url: str, resources: Iterable[Resource]) -> TypeSet:
        """The set of ``resources`` (at most one per name) and its version."""
        ordered = tuple(sorted(resources, key=lambda r: r.name))
        by_name = {r.name: r for r in ordered}
        if len(by_name) != len(ordered):
            raise ValueError(f"duplicate resource names in {type_url}")
        return cls(type_url, _sorted_version(ordered), ordered, MappingProxyType(by_name))

    def replaced(self, resources: Iterable[Resource]) -> TypeSet:
        """This set with ``resources`` in place of those of the same names (all present)."""
        ordered = list(self.resources)
        by_name = dict(self.by_name)
        for resource in resources:
            index = bisect.bisect_left(ordered, resource.name, key=_name)
            if by_name.get(resource.name) is None or ordered[index].name != resource.name:
                raise ValueError(f"{resource.name} is not in this {self.type_url} set")
            ordered[index] = by_name[resource.name] = resource
        result = tuple(ordered)
        return TypeSet(self.type_url, _sorted_version(result), result, MappingProxyType(by_name))

    def select(self, names: frozenset[str]) -> TypeSet:
        """The subset of resources named in ``names`` (names that do not exist are skipped)."""
        if self.by_name.keys() <= names:
            return self
        return TypeSet.of(self.type_url, (r for r in self.resources if r.name in names))


def _name(resource: Resource) -> str:
    return resource.name


@dataclass(frozen=True, slots=True)
class GatewaySnapshot:
    """The resources of one Gateway: a TypeSet for every type of ``TYPE_ORDER``."""

    gateway: str
    types: Mapping[str, TypeSet]

    @property
    def versions(self) -> tuple[str, ...]:
        """The version of every type, in ``TYPE_ORDER``: equal tuples mean equal content."""
        return tuple(self.types[t].version for t in TYPE_ORDER)


@dataclass(frozen=True, slots=True, eq=False)
class Watch:
    """A subscription to changes of one Gateway's content; ``notify`` must be thread-safe."""

    gateway: str
    notify: Callable[[], None]


@dataclass(frozen=True, slots=True)
class _Encoded:
    """One Gateway's messages of one type as last given, and the Resources they became."""

    messages: tuple[Any, ...]
    resources: tuple[Resource, ...]  # in the order of ``messages``
    type_set: TypeSet


class _Encoder:
    """Encodes messages for one ``set_snapshot``, reusing what the previous one encoded."""

    def __init__(self, previous: Mapping[str, Resource]) -> None:
        self.previous = previous
        self.interned: dict[str, Resource] = {}
        self._by_id: dict[tuple[int, str], Resource] = {}
        self.added: list[Resource] = []  # Resources now held that were not (or once more)
        self.removed: list[Resource] = []  # and those no longer held (once less)

    def encode(self, type_url: str, message: Any) -> Resource:
        """The Resource of ``message`` (serialized once per call; identical content shared)."""
        key = (id(message), type_url)
        found = self._by_id.get(key)
        if found is not None:
            return found
        if _TYPE_PREFIX + message.DESCRIPTOR.full_name != type_url:
            raise TypeError(f"{message.DESCRIPTOR.full_name} given as {type_url}")
        value = message.SerializeToString(deterministic=True)
        digest = hashlib.sha256(type_url.encode() + b"\0" + value).hexdigest()[:32]
        resource = self.interned.get(digest) or self.previous.get(digest)
        if resource is None:
            chunk = wire.any_chunk(type_url, value)
            resource = Resource(resource_name(message), type_url, chunk, digest, eds_name(message))
            xds_metrics.RESOURCES_ENCODED.labels(xds_metrics.type_label(type_url)).inc()
        self.interned[digest] = resource
        self._by_id[key] = resource
        return resource

    def encoded(self, type_url: str, messages: tuple[Any, ...], last: _Encoded | None) -> _Encoded:
        """``messages`` encoded: ``last`` itself if the same tuple, else only what is new."""
        if last is not None and last.messages is messages:
            return last
        if last is not None and len(last.messages) == len(messages):
            changed = list(
                itertools.compress(
                    range(len(messages)), map(operator.is_not, messages, last.messages)
                )
            )
            if len(changed) <= len(messages) // 4:
                return self._patched(type_url, messages, last, changed)
        known = (
            {} if last is None else dict(zip(map(id, last.messages), last.resources, strict=True))
        )
        resources = tuple(known.get(id(m)) or self.encode(type_url, m) for m in messages)
        self.added += resources
        self.removed += last.resources if last is not None else ()
        return _Encoded(messages, resources, TypeSet.of(type_url, resources))

    def _patched(
        self, type_url: str, messages: tuple[Any, ...], last: _Encoded, changed: list[int]
    ) -> _Encoded:
        """``last`` with the messages at ``changed`` positions encoded anew."""
        resources = list(last.resources)
        for index in changed:
            resources[index] = self.encode(type_url, messages[index])
        old = [last.resources[i] for i in changed]
        new = [resources[i] for i in changed]
        same_names = all(a.name == b.name for a, b in zip(old, new, strict=True))
        result = tuple(resources)
        type_set = last.type_set.replaced(new) if same_names else TypeSet.of(type_url, result)
        self.added += new
        self.removed += old
        return _Encoded(messages, result, type_set)

    def gateway(
        self, resources: GatewayResources, last: Mapping[str, _Encoded]
    ) -> dict[str, _Encoded]:
        """What each type of one Gateway's resources encodes to."""
        by_type = resources.by_type()
        return {t: self.encoded(t, tuple(by_type.get(t, ())), last.get(t)) for t in TYPE_ORDER}


class SnapshotCache:
    """Per-Gateway snapshots of encoded resources, and watches on their changes."""

    def __init__(self) -> None:
        self._gateways: Mapping[str, GatewaySnapshot] = _EMPTY
        self._encoded: Mapping[str, Mapping[str, _Encoded]] = _EMPTY  # Gateway -> type -> ...
        self._interned: dict[str, Resource] = {}  # every Resource held, by digest
        self._holders: dict[str, int] = {}  # how many places hold each digest
        self._ready = False
        self._set_lock = threading.Lock()
        self._watch_lock = threading.Lock()
        self._watches: dict[str, set[Watch]] = {}

    @property
    def ready(self) -> bool:
        """True once the first snapshot was set: before it nothing is sent to any proxy."""
        return self._ready

    @property
    def gateways(self) -> Mapping[str, GatewaySnapshot]:
        """Every Gateway's current snapshot (empty until ready)."""
        return self._gateways

    def get(self, gateway: str | None) -> GatewaySnapshot | None:
        """The current snapshot of ``gateway``; None if not ready or the Gateway is unknown."""
        if gateway is None or not self._ready:
            return None
        return self._gateways.get(gateway)

    def set_snapshot(self, gateways: Mapping[str, GatewayResources]) -> None:
        """Replace every Gateway's resources; notify watches of the Gateways that changed.

        Raises ValueError (duplicate names) or TypeError (a message under the wrong type)
        before anything changes: both are translator bugs.
        """
        started = time.perf_counter()
        with self._set_lock:
            encoder = _Encoder(self._interned)
            old = self._gateways
            new: dict[str, GatewaySnapshot] = {}
            encoded: dict[str, Mapping[str, _Encoded]] = {}
            for key in sorted(gateways):
                encoded[key] = encoder.gateway(gateways[key], self._encoded.get(key, _EMPTY))
                types = {t: e.type_set for t, e in encoded[key].items()}
                snapshot = GatewaySnapshot(key, MappingProxyType(types))
                previous = old.get(key)
                unchanged = previous is not None and previous.versions == snapshot.versions
                new[key] = previous if unchanged and previous is not None else snapshot
            for key in self._encoded.keys() - encoded.keys():
                encoder.removed += (r for e in self._encoded[key].values() for r in e.resources)
            changed = {k for k in old.keys() | new.keys() if old.get(k) is not new.get(k)}
            self._hold(encoder.added, encoder.removed)
            self._gateways = MappingProxyType(new)
            self._encoded = encoded
            self._ready = True
        self._notify(changed)
        xds_metrics.SNAPSHOTS.inc()
        xds_metrics.SNAPSHOT_SECONDS.observe(time.perf_counter() - started)

    def _hold(self, added: Iterable[Resource], removed: Iterable[Resource]) -> None:
        """Count who holds each Resource: the interned ones are exactly those held."""
        interned, holders = self._interned, self._holders
        for resource in added:
            interned.setdefault(resource.digest, resource)
            holders[resource.digest] = holders.get(resource.digest, 0) + 1
        for resource in removed:
            count = holders[resource.digest] - 1
            if count:
                holders[resource.digest] = count
            else:
                del holders[resource.digest], interned[resource.digest]

    def watch(self, gateway: str, notify: Callable[[], None]) -> Watch:
        """Call ``notify`` whenever ``gateway``'s content changes (or it appears/disappears)."""
        watch = Watch(gateway, notify)
        with self._watch_lock:
            self._watches.setdefault(gateway, set()).add(watch)
        return watch

    def cancel(self, watch: Watch) -> None:
        """Stop a watch (idempotent)."""
        with self._watch_lock:
            watches = self._watches.get(watch.gateway)
            if watches is not None:
                watches.discard(watch)
                if not watches:
                    del self._watches[watch.gateway]

    def _notify(self, gateways: Iterable[str]) -> None:
        with self._watch_lock:
            due = [w for g in gateways for w in self._watches.get(g, ())]
        for watch in due:
            watch.notify()
