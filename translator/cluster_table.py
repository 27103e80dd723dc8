"""Every cluster a translation uses: its current IR, its Envoy messages, who provides it.

Held by ``translator.incremental``. Routes (and the TLS/TCP/UDP routes together) ``provide``
the clusters their backends resolved to and ``withdraw`` them when they change; the table
keeps the IR last provided for each name (always computed from the newest objects) and
builds its Cluster and ClusterLoadAssignment messages once (``translator.xds``).

A Cluster message depends only on the cluster's name (which holds its protocol); only the
load assignment follows the endpoints. ``refresh_endpoints`` is the EDS fast path: after
EndpointSlices changed, it re-reads the endpoints of the clusters of those Services alone.
``changed`` names the clusters whose load assignment changed since ``clear_changed``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from translator import xds
from translator.backends import ready_endpoints
from translator.ir import Cluster
from translator.model import EndpointSlice, ObjectName


class ClusterTable:
    """Clusters by name, with how many providers each has and their messages."""

    def __init__(self) -> None:
        self._irs: dict[str, Cluster] = {}
        self._providers: dict[str, int] = {}
        self._by_service: dict[str, set[str]] = {}
        self._clusters: dict[str, Any] = {}
        self._assignments: dict[str, Any] = {}
        self.changed: set[str] = set()
        self.assignments_built = 0  # load assignments built: a test's counter

    def provide(self, clusters: Iterable[Cluster]) -> None:
        """One more provider of each of ``clusters`` (their IR is the newest)."""
        for cluster in clusters:
            self._providers[cluster.name] = self._providers.get(cluster.name, 0) + 1
            self._put(cluster)

    def withdraw(self, names: Iterable[str]) -> None:
        """One provider fewer of each of ``names``; a cluster nobody provides is forgotten."""
        for name in names:
            count = self._providers[name] - 1
            if count:
                self._providers[name] = count
                continue
            del self._providers[name]
            cluster = self._irs.pop(name)
            self._clusters.pop(name, None)
            self._assignments.pop(name, None)
            self.changed.discard(name)
            service = self._by_service.get(cluster.service)
            if service is not None:
                service.discard(name)
                if not service:
                    del self._by_service[cluster.service]

    def cluster(self, name: str) -> Any:
        message = self._clusters.get(name)
        if message is None:
            message = self._clusters[name] = xds.cluster(self._irs[name])
        return message

    def load_assignment(self, name: str) -> Any:
        message = self._assignments.get(name)
        if message is None:
            self.assignments_built += 1
            message = self._assignments[name] = xds.load_assignment(self._irs[name])
        return message

    def refresh_endpoints(
        self, services: Iterable[str], slices: Mapping[ObjectName, tuple[EndpointSlice, ...]]
    ) -> None:
        """Re-read the endpoints of the clusters of ``services`` ("namespace/name")."""
        for service in services:
            for name in sorted(self._by_service.get(service, ())):
                cluster = self._irs[name]
                endpoints = ready_endpoints(cluster.port_name, slices.get(ObjectName(service), ()))
                if endpoints != cluster.endpoints:
                    self._put(dataclasses.replace(cluster, endpoints=endpoints))

    def clear_changed(self) -> None:
        self.changed = set()

    def _put(self, cluster: Cluster) -> None:
        name = cluster.name
        old = self._irs.get(name)
        if old is cluster:
            return
        self._irs[name] = cluster
        if old is not None and old == cluster:
            return
        self._assignments.pop(name, None)
        self.changed.add(name)  # new, or its endpoints changed
        self._by_service.setdefault(cluster.service, set()).add(name)
