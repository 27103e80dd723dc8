"""Facts about snapshot content that every delta stream asks for, computed once and shared.

Who calls it: the delta state machine (``xds_server.delta_state``), for every stream.

- ``changes(old, new)``: the names a type's resources added or changed, and removed,
  between two ``TypeSet``s. A new snapshot is compared with the previous one once, not
  once per connected proxy, so a one-resource change costs each stream O(1), not O(n).
- ``route_names(listener)``: the RouteConfigurations a Listener loads over RDS, decoded
  once per listener digest.

Both caches are bounded and keyed by content (TypeSet identity, resource digest), so a
stale entry is never wrong, only unused. No I/O, no clock, no gRPC.
"""

from __future__ import annotations

from dataclasses import dataclass

from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.service.discovery.v3 import discovery_pb2

from xds_server.cache import Resource, TypeSet

_HCM_TYPE = "type.googleapis.com/" + hcm_pb2.HttpConnectionManager.DESCRIPTOR.full_name
_CHANGES_LIMIT = 256  # (old, new) pairs remembered
_ROUTE_NAMES_LIMIT = 4096  # listeners whose RDS names are remembered (by digest)


@dataclass(frozen=True, slots=True)
class Changes:
    """From one TypeSet to another: names added or changed, and names removed (sorted)."""

    changed: tuple[str, ...]
    removed: tuple[str, ...]


_changes: dict[tuple[int, int], tuple[TypeSet, TypeSet, Changes]] = {}


def changes(old: TypeSet, new: TypeSet) -> Changes:
    """What changed from ``old`` to ``new`` (computed once per pair, shared by all streams)."""
    key = (id(old), id(new))
    found = _changes.get(key)
    if found is not None and found[0] is old and found[1] is new:
        return found[2]
    before, after = old.by_name, new.by_name
    changed = tuple(
        name
        for name, resource in after.items()
        if (was := before.get(name)) is not resource
        and (was is None or was.digest != resource.digest)
    )
    removed = tuple(name for name in before if name not in after)
    result = Changes(changed, removed)
    if len(_changes) >= _CHANGES_LIMIT:
        _changes.clear()
    _changes[key] = (old, new, result)  # holding both keeps their ids from being reused
    return result


_route_names: dict[str, frozenset[str]] = {}


def route_names(listener: Resource) -> frozenset[str]:
    """The RouteConfigurations a Listener's HTTP connection managers load over RDS."""
    found = _route_names.get(listener.digest)
    if found is None:
        [packed] = discovery_pb2.DiscoveryResponse.FromString(listener.chunk).resources
        message = listener_pb2.Listener.FromString(packed.value)
        names = set()
        for chain in (*message.filter_chains, message.default_filter_chain):
            for network_filter in chain.filters:
                if network_filter.typed_config.type_url == _HCM_TYPE:
                    manager = hcm_pb2.HttpConnectionManager.FromString(
                        network_filter.typed_config.value
                    )
                    if manager.HasField("rds"):
                        names.add(manager.rds.route_config_name)
        if len(_route_names) >= _ROUTE_NAMES_LIMIT:
            _route_names.clear()
        found = _route_names[listener.digest] = frozenset(names)
    return found
