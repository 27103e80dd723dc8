"""The snapshot a provider publishes: frozen Kubernetes objects plus the errors met loading them.

Providers build one ``ObjectSnapshot`` per change and never mutate it afterwards; the
translator reads ``bodies()`` (plain Kubernetes JSON, as an API server would return it) and
xds_server shows ``errors`` through the admin API. Bodies are typed as read-only mappings:
nothing downstream may write to them, so nobody needs a defensive copy.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

# Kinds a snapshot holds, by kind, with the API groups they may come from. Anything else in
# a file is skipped (and reported), as an API server watch would never deliver it to us.
KINDS: Mapping[str, frozenset[str]] = {
    "GatewayClass": frozenset({"gateway.networking.k8s.io"}),
    "Gateway": frozenset({"gateway.networking.k8s.io"}),
    "HTTPRoute": frozenset({"gateway.networking.k8s.io"}),
    "GRPCRoute": frozenset({"gateway.networking.k8s.io"}),
    "TLSRoute": frozenset({"gateway.networking.k8s.io"}),
    "TCPRoute": frozenset({"gateway.networking.k8s.io"}),
    "UDPRoute": frozenset({"gateway.networking.k8s.io"}),
    "ReferenceGrant": frozenset({"gateway.networking.k8s.io"}),
    "Service": frozenset({""}),
    "EndpointSlice": frozenset({"discovery.k8s.io"}),
    "Secret": frozenset({""}),
    "Namespace": frozenset({""}),
}

CLUSTER_SCOPED = frozenset({"GatewayClass", "Namespace"})


class ObjectKey(NamedTuple):
    """Identity of an object: kind, namespace ("" when cluster-scoped) and name."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return (
            f"{self.kind} {self.namespace}/{self.name}"
            if self.namespace
            else (f"{self.kind} {self.name}")
        )


@dataclass(frozen=True, slots=True)
class LoadError:
    """An input that could not be turned into an object: where it was and why."""

    source: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"source": self.source, "message": self.message}


@dataclass(frozen=True, slots=True)
class ObjectSnapshot:
    """Every object a provider knows at one moment, with a version that only grows."""

    version: int
    objects: Mapping[ObjectKey, Mapping[str, Any]] = field(default_factory=dict)
    errors: tuple[LoadError, ...] = ()

    def bodies(self) -> Iterator[Mapping[str, Any]]:
        """The objects as Kubernetes JSON, in a stable order (by kind, namespace, name)."""
        for key in sorted(self.objects):
            yield self.objects[key]

    def get(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.objects.get(ObjectKey(kind, namespace, name))
