"""What the Kubernetes provider watches, and at which API version: a table and pure helpers.

``watcher.kubernetes`` reads ``WATCHED`` to start one list+watch per kind, and calls
``choose_version`` with what API discovery says is served, so that a cluster serving an
older Gateway API release (TLSRoute only at v1alpha2, say) is still read. ``Resource`` turns
a kind and a version into the REST path ``watcher.kube_watch`` lists and watches.

Kinds of the ``gateway.networking.k8s.io`` group are optional: their CRDs may be missing
(experimental route kinds often are); such a kind is skipped and picked up when discovery
shows it. Core kinds (Service, Namespace, Secret) and EndpointSlice are always served.
Secrets are not in ``WATCHED``: only the Secrets Gateways reference are read, one by name
(see ``watcher.kube_store.referenced_secrets``).

What it must not do: any I/O. Discovery is fetched by the caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

GATEWAY_GROUP = "gateway.networking.k8s.io"

# Newest first: the first version discovery serves the resource at is the one we read.
GATEWAY_VERSIONS = ("v1", "v1beta1", "v1alpha3", "v1alpha2")


@dataclass(frozen=True, slots=True)
class WatchedKind:
    """One kind we list and watch: its group, plural resource name, candidate versions."""

    kind: str
    group: str
    plural: str
    versions: tuple[str, ...]

    @property
    def optional(self) -> bool:
        """True when the kind comes from a CRD that a cluster may not have installed."""
        return self.group == GATEWAY_GROUP


def _gateway(kind: str, plural: str) -> WatchedKind:
    return WatchedKind(kind, GATEWAY_GROUP, plural, GATEWAY_VERSIONS)


WATCHED: tuple[WatchedKind, ...] = (
    _gateway("GatewayClass", "gatewayclasses"),
    _gateway("Gateway", "gateways"),
    _gateway("HTTPRoute", "httproutes"),
    _gateway("GRPCRoute", "grpcroutes"),
    _gateway("TLSRoute", "tlsroutes"),
    _gateway("TCPRoute", "tcproutes"),
    _gateway("UDPRoute", "udproutes"),
    _gateway("ReferenceGrant", "referencegrants"),
    WatchedKind("Service", "", "services", ("v1",)),
    WatchedKind("EndpointSlice", "discovery.k8s.io", "endpointslices", ("v1",)),
    WatchedKind("Namespace", "", "namespaces", ("v1",)),
)

SECRET = WatchedKind("Secret", "", "secrets", ("v1",))


def choose_version(kind: WatchedKind, served: Mapping[str, frozenset[str]]) -> str | None:
    """The newest of ``kind.versions`` serving its resource, or None when none does.

    ``served`` maps a version of ``kind.group`` to the plural resource names discovery lists
    for it (``{"v1": {"gateways", "httproutes", ...}}``).
    """
    for version in kind.versions:
        if kind.plural in served.get(version, frozenset()):
            return version
    return None


@dataclass(frozen=True, slots=True)
class Resource:
    """A collection to list and watch: a kind at one version, in one namespace or all."""

    kind: str
    api_version: str  # "v1" for the core group, else "group/version"
    plural: str
    namespace: str = ""  # "" means every namespace
    field_selector: str = ""

    @classmethod
    def of(cls, kind: WatchedKind, version: str, **extra: str) -> Resource:
        api_version = f"{kind.group}/{version}" if kind.group else version
        return cls(kind.kind, api_version, kind.plural, **extra)

    @property
    def path(self) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        scope = f"/namespaces/{self.namespace}" if self.namespace else ""
        return f"{base}{scope}/{self.plural}"

    def __str__(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        selected = f" ({self.field_selector})" if self.field_selector else ""
        return f"{self.kind} {self.api_version}{where}{selected}"
