"""Typed, validated views of the Kubernetes objects the translator reads.

``translator.parse`` builds these from raw JSON; every later step works on them only. Values
that failed validation are kept out and reported as ``Problem`` values on the object that
held them, so one bad field invalidates the least it can (a match, a rule, a listener).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, NewType

from translator.conditions import Problem
from translator.filters import NO_FILTERS, Filters, Timeouts

# "namespace/name" of a namespaced object.
ObjectName = NewType("ObjectName", str)

PathType = Literal["Exact", "PathPrefix", "RegularExpression"]
ValueType = Literal["Exact", "RegularExpression"]
FromNamespaces = Literal["Same", "All", "Selector"]


def object_name(namespace: str, name: str) -> ObjectName:
    return ObjectName(f"{namespace}/{name}")


@dataclass(frozen=True, slots=True)
class Meta:
    """Identity and bookkeeping every object carries."""

    namespace: str
    name: str
    generation: int
    created: str  # metadata.creationTimestamp (RFC 3339, so it sorts as text)

    @property
    def key(self) -> ObjectName:
        return object_name(self.namespace, self.name)


@dataclass(frozen=True, slots=True)
class GatewayClass:
    meta: Meta
    controller: str
    parameters_ref: bool


@dataclass(frozen=True, slots=True)
class LabelRequirement:
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: frozenset[str]


@dataclass(frozen=True, slots=True)
class LabelSelector:
    match_labels: tuple[tuple[str, str], ...]
    requirements: tuple[LabelRequirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.match_labels):
            return False
        return all(_requirement_holds(r, labels) for r in self.requirements)


def _requirement_holds(req: LabelRequirement, labels: Mapping[str, str]) -> bool:
    present = req.key in labels
    if req.operator == "Exists":
        return present
    if req.operator == "DoesNotExist":
        return not present
    if req.operator == "In":
        return present and labels[req.key] in req.values
    return not present or labels[req.key] not in req.values


@dataclass(frozen=True, slots=True)
class RouteKind:
    group: str
    kind: str

    def as_json(self) -> dict[str, str]:
        return {"group": self.group, "kind": self.kind}


@dataclass(frozen=True, slots=True)
class Listener:
    name: str
    port: int
    protocol: str
    hostname: str | None
    namespaces_from: FromNamespaces
    selector: LabelSelector | None
    kinds: tuple[RouteKind, ...] | None  # None: the protocol's default kinds
    problems: tuple[Problem, ...]
    tls: ListenerTLS | None = None  # HTTPS and TLS listeners (translator.tls parses it)


@dataclass(frozen=True, slots=True)
class Gateway:
    meta: Meta
    class_name: str
    listeners: tuple[Listener, ...]
    has_addresses: bool
    has_tls_settings: bool = False  # spec.tls (client certificate validation): not applied yet


@dataclass(frozen=True, slots=True)
class ParentRef:
    group: str
    kind: str
    namespace: str
    name: str
    section_name: str | None
    port: int | None
    as_written: Mapping[str, Any]  # with API defaults filled, as status echoes it


@dataclass(frozen=True, slots=True)
class ValueMatch:
    type: ValueType
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class PathMatch:
    type: PathType
    value: str


@dataclass(frozen=True, slots=True)
class HTTPMatch:
    path: PathMatch
    headers: tuple[ValueMatch, ...]
    query: tuple[ValueMatch, ...]
    method: str | None


@dataclass(frozen=True, slots=True)
class BackendRef:
    group: str
    kind: str
    namespace: str
    name: str
    port: int | None
    weight: int
    filters: Filters = NO_FILTERS  # HTTPRoute backendRefs[].filters


@dataclass(frozen=True, slots=True)
class HTTPRule:
    index: int
    name: str | None
    matches: tuple[HTTPMatch, ...]
    backends: tuple[BackendRef, ...]
    problems: tuple[Problem, ...]  # any problem drops the whole rule
    filters: Filters = NO_FILTERS
    timeouts: Timeouts | None = None


@dataclass(frozen=True, slots=True)
class HTTPRoute:
    meta: Meta
    parent_refs: tuple[ParentRef, ...]
    hostnames: tuple[str, ...]
    rules: tuple[HTTPRule, ...]
    problems: tuple[Problem, ...]  # route-wide problems: nothing of it is accepted
    other_parents: tuple[Mapping[str, Any], ...]  # status entries of other controllers

    kind = "HTTPRoute"


GRPCMethodType = Literal["Exact", "RegularExpression"]


@dataclass(frozen=True, slots=True)
class GRPCMethodMatch:
    """A gRPC service and/or method (at least one); None matches any."""

    type: GRPCMethodType
    service: str | None
    method: str | None


@dataclass(frozen=True, slots=True)
class GRPCMatch:
    method: GRPCMethodMatch | None  # None: every service and method
    headers: tuple[ValueMatch, ...]


@dataclass(frozen=True, slots=True)
class GRPCRule:
    index: int
    name: str | None
    matches: tuple[GRPCMatch, ...]
    backends: tuple[BackendRef, ...]
    problems: tuple[Problem, ...]  # any problem drops the whole rule
    filters: Filters = NO_FILTERS


@dataclass(frozen=True, slots=True)
class GRPCRoute:
    meta: Meta
    parent_refs: tuple[ParentRef, ...]
    hostnames: tuple[str, ...]
    rules: tuple[GRPCRule, ...]
    problems: tuple[Problem, ...]  # route-wide problems: nothing of it is accepted
    other_parents: tuple[Mapping[str, Any], ...]  # status entries of other controllers

    kind = "GRPCRoute"


@dataclass(frozen=True, slots=True)
class ServicePort:
    name: str
    port: int
    protocol: str
    app_protocol: str | None = None  # e.g. kubernetes.io/h2c


@dataclass(frozen=True, slots=True)
class Service:
    meta: Meta
    ports: tuple[ServicePort, ...]


@dataclass(frozen=True, slots=True)
class SlicePort:
    name: str
    port: int


@dataclass(frozen=True, slots=True)
class EndpointSlice:
    meta: Meta
    service: str
    ports: tuple[SlicePort, ...]
    addresses: tuple[str, ...]  # of ready endpoints, in the order the slice lists them


@dataclass(frozen=True, slots=True)
class GrantFrom:
    group: str
    kind: str
    namespace: str


@dataclass(frozen=True, slots=True)
class GrantTo:
    group: str
    kind: str
    name: str | None


@dataclass(frozen=True, slots=True)
class ReferenceGrant:
    meta: Meta
    sources: tuple[GrantFrom, ...]
    targets: tuple[GrantTo, ...]


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    labels: Mapping[str, str]


TLSMode = Literal["Terminate", "Passthrough"]


@dataclass(frozen=True, slots=True)
class SecretRef:
    """A listener's tls.certificateRefs entry, with the API's defaults filled in."""

    group: str
    kind: str
    namespace: str | None  # None: the Gateway's
    name: str


@dataclass(frozen=True, slots=True)
class ListenerTLS:
    mode: TLSMode
    certificate_refs: tuple[SecretRef, ...]  # ignored in Passthrough mode


@dataclass(frozen=True, slots=True)
class Secret:
    """A core Secret: its type and its data, base64-decoded (stringData merged over it)."""

    meta: Meta
    type: str
    data: Mapping[str, bytes]
    problems: tuple[str, ...]  # keys whose data is not valid base64


@dataclass(frozen=True, slots=True)
class L4Rule:
    index: int
    name: str | None
    backends: tuple[BackendRef, ...]
    problems: tuple[Problem, ...]  # any problem drops the whole rule


@dataclass(frozen=True, slots=True)
class L4Route:
    """A TLSRoute, TCPRoute or UDPRoute: no matches, only backends (and SNI hostnames for TLS)."""

    kind: str
    api_version: str  # as written (v1alpha2 or v1): status is reported in the same version
    meta: Meta
    parent_refs: tuple[ParentRef, ...]
    hostnames: tuple[str, ...]
    rules: tuple[L4Rule, ...]
    problems: tuple[Problem, ...]  # route-wide problems: nothing of it is accepted
    other_parents: tuple[Mapping[str, Any], ...]  # status entries of other controllers
