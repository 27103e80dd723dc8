"""The RouteConfiguration of one plain HTTP port of one Gateway, kept up to date route by route.

``translator.gateway_build`` feeds it the entries (IR routes per listener and hostname) of
each route that changed; ``build`` then recomputes only the virtual hosts whose domain one
of those hostnames covers, with the very functions ``translator.virtualhosts`` uses
(``owner``, ``routes_for``), so each virtual host is the one a full translation builds.

Each virtual host is kept serialized (deterministically, as the snapshot cache serializes);
the RouteConfiguration is the concatenation of its name and those records, parsed once: far
cheaper than building a message of thousands of virtual hosts again. The bytes a full
translation gives are the same: a message serializes field by field, in field order.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any

from envoy.config.route.v3 import route_pb2

from translator import hostnames, names, xds
from translator.gateways import ListenerState
from translator.ir import VirtualHost
from translator.routeflow import RouteEntry
from translator.virtualhosts import owner, routes_for

# Routes are kept in the order a full translation lists them: HTTPRoutes before GRPCRoutes,
# each by namespace/name: (kind rank, namespace, name).
RouteOrder = tuple[int, str, str]
HostKey = tuple[str, str]  # (Gateway listener name, hostname)

_FEW = 64  # more hostnames changed than this: rebuild every virtual host
_VIRTUAL_HOSTS_TAG = b"\x12"  # RouteConfiguration.virtual_hosts: field 2, length-delimited


class PortRoutes:
    """Virtual hosts of one port's valid HTTP listeners, by domain, and their RouteConfiguration."""

    def __init__(self, port: int, listeners: list[ListenerState]) -> None:
        self.port = port
        self._listeners = listeners
        self._listener_hosts = {ls.listener.hostname for ls in listeners if ls.listener.hostname}
        self._head = route_pb2.RouteConfiguration(name=names.route_config(port)).SerializeToString(
            deterministic=True
        )
        self._by_host: dict[HostKey, dict[RouteOrder, tuple[RouteEntry, ...]]] = {}
        self._flat: dict[HostKey, list[RouteEntry]] = {}  # by_host in route order
        self._host_routes: dict[str, int] = {}  # hostname -> (route, listener) groups using it
        self._domains: list[str] = []  # sorted
        self._records: list[bytes] = []  # the serialized virtual host of each domain
        self._dirty: set[str] = set(self._listener_hosts)
        self._config: Any = None
        self.virtual_hosts_built = 0  # how many virtual hosts were (re)built: a test's counter

    def set_route(
        self, order: RouteOrder, old: Iterable[RouteEntry], new: Iterable[RouteEntry]
    ) -> None:
        """Replace the entries one route has on this port (``new`` empty: it has none)."""
        before, after = _grouped(old), _grouped(new)
        for key in before.keys() | after.keys():
            group = self._by_host.setdefault(key, {})
            if key in before:
                del group[order]
                self._host_routes[key[1]] -= 1
            if key in after:
                group[order] = after[key]
                self._host_routes[key[1]] = self._host_routes.get(key[1], 0) + 1
            if group:
                self._flat[key] = [e for o in sorted(group) for e in group[o]]
            else:
                del self._by_host[key], self._flat[key]
            self._dirty.add(key[1])

    def build(self) -> Any:
        """The port's RouteConfiguration: the same message as last time if nothing changed."""
        if self._config is not None and not self._dirty:
            return self._config
        if len(self._dirty) > _FEW:
            self._rebuild_all()
        else:
            affected: set[str] = set()
            for host in self._dirty:
                self._update_domain(host)
                affected.update(self._covered(host))
            for domain in affected:
                index = bisect.bisect_left(self._domains, domain)
                if index < len(self._domains) and self._domains[index] == domain:
                    self._records[index] = self._record(domain)
        self._dirty.clear()
        self._config = route_pb2.RouteConfiguration.FromString(
            b"".join([self._head, *self._records])
        )
        return self._config

    def _rebuild_all(self) -> None:
        """Every domain and virtual host anew (the first build, or most hosts changed)."""
        self._host_routes = {host: n for host, n in self._host_routes.items() if n > 0}
        self._domains = sorted(self._host_routes.keys() | self._listener_hosts)
        self._records = [self._record(domain) for domain in self._domains]

    def _update_domain(self, host: str) -> None:
        """Add or drop ``host`` as a domain: every entry hostname and listener hostname is one."""
        wanted = self._host_routes.get(host, 0) > 0 or host in self._listener_hosts
        if not wanted:
            self._host_routes.pop(host, None)
        index = bisect.bisect_left(self._domains, host)
        present = index < len(self._domains) and self._domains[index] == host
        if wanted and not present:
            self._domains.insert(index, host)
            self._records.insert(index, b"")
        elif present and not wanted:
            del self._domains[index], self._records[index]

    def _covered(self, host: str) -> list[str]:
        """The domains whose virtual host reads routes of ``host`` (``routes_for``'s patterns)."""
        if host == hostnames.ANY:
            return list(self._domains)
        if host.startswith("*."):
            suffix = host[1:]
            return [
                d
                for d in self._domains
                if d.endswith(suffix) and host in hostnames.patterns_covering(d)
            ]
        return [host]

    def _record(self, domain: str) -> bytes:
        """The virtual host of ``domain`` as a serialized RouteConfiguration field (or nothing)."""
        owner_ = owner(domain, self._listeners)
        if owner_ is None:
            return b""
        routes = routes_for(domain, owner_, self._flat)
        vhost = VirtualHost(names.virtual_host(self.port, domain), (domain,), routes)
        self.virtual_hosts_built += 1
        value: bytes = xds.virtual_host(vhost).SerializeToString(deterministic=True)
        return _VIRTUAL_HOSTS_TAG + _varint(len(value)) + value


def _grouped(entries: Iterable[RouteEntry]) -> dict[HostKey, tuple[RouteEntry, ...]]:
    grouped: dict[HostKey, list[RouteEntry]] = {}
    for entry in entries:
        grouped.setdefault((entry.listener.listener.name, entry.hostname), []).append(entry)
    return {key: tuple(group) for key, group in grouped.items()}


def _varint(value: int) -> bytes:
    """A protobuf base-128 varint."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
