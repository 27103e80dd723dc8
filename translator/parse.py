"""Raw Kubernetes JSON -> the typed model of ``translator.model``, with validation.

Called once per translation by ``translator.translate``. It never raises on bad input: a
field of the wrong type reads as missing, and values that fail the Gateway API's validation
become ``Problem`` values on the listener, rule or route that holds them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from translator import kube, validate
from translator.conditions import R_UNSUPPORTED_PROTOCOL, R_UNSUPPORTED_VALUE, Problem
from translator.model import (
    BackendRef,
    EndpointSlice,
    FromNamespaces,
    Gateway,
    GatewayClass,
    GrantFrom,
    GrantTo,
    GRPCRoute,
    HTTPMatch,
    HTTPRoute,
    HTTPRule,
    L4Route,
    LabelRequirement,
    LabelSelector,
    Listener,
    Meta,
    Namespace,
    ObjectName,
    ParentRef,
    PathMatch,
    ReferenceGrant,
    RouteKind,
    Secret,
    Service,
    ServicePort,
    SlicePort,
    ValueMatch,
    object_name,
)
from translator.parse_filters import parse_rule_extras
from translator.tls import parse_listener_tls, parse_secret

SUPPORTED_PROTOCOLS = frozenset({"HTTP", "HTTPS", "TLS", "TCP", "UDP"})
_KNOWN_PROTOCOLS = frozenset({"HTTP", "HTTPS", "TLS", "TCP", "UDP"})
PARENT_REF_FIELDS: Mapping[str, type] = {
    "group": str,
    "kind": str,
    "namespace": str,
    "name": str,
    "sectionName": str,
    "port": int,
}
MAX_MATCH_NAME = 256  # the CRDs' limit on header and query parameter names
DEFAULT_MATCH = HTTPMatch(PathMatch("PathPrefix", "/"), (), (), None)


@dataclass(frozen=True, slots=True)
class Inventory:
    """Every object the translator reads, parsed, in a stable order."""

    classes: tuple[GatewayClass, ...]
    gateways: tuple[Gateway, ...]
    http_routes: tuple[HTTPRoute, ...]
    grpc_routes: tuple[GRPCRoute, ...]
    services: Mapping[ObjectName, Service]
    slices: Mapping[ObjectName, tuple[EndpointSlice, ...]]  # by Service
    grants: Mapping[str, tuple[ReferenceGrant, ...]]  # by namespace
    namespaces: Mapping[str, Namespace]
    secrets: Mapping[ObjectName, Secret]
    l4_routes: tuple[L4Route, ...]  # TLSRoutes, TCPRoutes and UDPRoutes (translator.l4routes)


def parse_inventory(bodies: Iterable[Mapping[str, Any]]) -> Inventory:
    """Parse every body we understand; others are ignored (the watcher only sends ours)."""
    by_kind: dict[str, list[Mapping[str, Any]]] = {}
    for body in bodies:
        if kube.name_of(body):
            by_kind.setdefault(kube.kind_of(body), []).append(body)

    def of(kind: str, group: str) -> list[Mapping[str, Any]]:
        found = []
        for body in by_kind.get(kind, []):
            if kube.group_of(body) == group:
                namespace, name = kube.namespace_of(body), kube.name_of(body)
                if valid_identity(namespace, name):
                    found.append((namespace, name, body))
        found.sort(key=lambda t: (t[0], t[1]))
        return [body for _, _, body in found]

    from translator.l4routes import L4_KINDS, parse_l4_route  # it builds on these helpers
    from translator.parse_grpc import parse_grpc_route  # it builds on this module's helpers

    gw = kube.GATEWAY_GROUP
    slices: dict[ObjectName, list[EndpointSlice]] = {}
    for body in of("EndpointSlice", "discovery.k8s.io"):
        parsed = parse_endpoint_slice(body)
        if parsed.service:
            key = object_name(parsed.meta.namespace, parsed.service)
            slices.setdefault(key, []).append(parsed)
    grants: dict[str, list[ReferenceGrant]] = {}
    for body in of("ReferenceGrant", gw):
        grant = parse_reference_grant(body)
        grants.setdefault(grant.meta.namespace, []).append(grant)
    services = (parse_service(b) for b in of("Service", ""))
    namespaces = (Namespace(kube.name_of(b), kube.labels_of(b)) for b in of("Namespace", ""))
    return Inventory(
        classes=tuple(parse_gateway_class(b) for b in of("GatewayClass", gw)),
        gateways=tuple(parse_gateway(b) for b in of("Gateway", gw)),
        http_routes=tuple(parse_http_route(b) for b in of("HTTPRoute", gw)),
        grpc_routes=tuple(parse_grpc_route(b) for b in of("GRPCRoute", gw)),
        services={s.meta.key: s for s in services},
        slices={k: tuple(v) for k, v in slices.items()},
        grants={k: tuple(v) for k, v in grants.items()},
        namespaces={n.name: n for n in namespaces},
        secrets={s.meta.key: s for s in (parse_secret(b, parse_meta(b)) for b in of("Secret", ""))},
        l4_routes=tuple(parse_l4_route(b) for kind in L4_KINDS for b in of(kind, gw)),
    )


def parse_meta(body: Mapping[str, Any]) -> Meta:
    metadata = kube.mapping(body.get("metadata"))
    namespace, name = metadata.get("namespace"), metadata.get("name")
    created = metadata.get("creationTimestamp")
    return Meta(  # direct reads: this runs for every object (type checks as kube.string's)
        namespace=namespace if isinstance(namespace, str) else "",
        name=name if isinstance(name, str) else "",
        generation=kube.integer(metadata, "generation") or 0,
        created=created if isinstance(created, str) else "",
    )


def parse_gateway_class(body: Mapping[str, Any]) -> GatewayClass:
    return GatewayClass(
        meta=parse_meta(body),
        controller=kube.string(body, "spec", "controllerName"),
        parameters_ref=kube.field(body, "spec", "parametersRef") is not None,
    )


def parse_gateway(body: Mapping[str, Any]) -> Gateway:
    listeners = tuple(
        parse_listener(kube.mapping(raw)) for raw in kube.items(body, "spec", "listeners")
    )
    return Gateway(
        meta=parse_meta(body),
        class_name=kube.string(body, "spec", "gatewayClassName"),
        listeners=listeners,
        has_addresses=bool(kube.items(body, "spec", "addresses")),
        has_tls_settings=bool(kube.field(body, "spec", "tls")),
    )


def parse_listener(raw: Mapping[str, Any]) -> Listener:
    problems: list[Problem] = []
    port = kube.field(raw, "port")
    if (message := validate.port_problem(port)) is not None:
        problems.append(Problem(R_UNSUPPORTED_VALUE, message))
    protocol = kube.string(raw, "protocol")
    if protocol not in SUPPORTED_PROTOCOLS:
        known = "is not supported yet" if protocol in _KNOWN_PROTOCOLS else "is not known"
        problems.append(Problem(R_UNSUPPORTED_PROTOCOL, f"protocol {protocol!r} {known}"))
    hostname = kube.optional_string(raw, "hostname")
    if (message := kube.wrong_type(raw, "hostname", str, "listener hostname")) is not None:
        problems.append(Problem(R_UNSUPPORTED_VALUE, message))
    if hostname is not None and (message := validate.hostname_problem(hostname)) is not None:
        problems.append(Problem(R_UNSUPPORTED_VALUE, message))
    if hostname is not None and protocol in {"TCP", "UDP"}:
        message = f"hostname must not be specified for protocol {protocol}"
        problems.append(Problem(R_UNSUPPORTED_VALUE, message))
    tls, tls_problems = parse_listener_tls(raw, protocol)
    if protocol in SUPPORTED_PROTOCOLS:
        problems.extend(tls_problems)
    namespaces = kube.mapping(kube.field(raw, "allowedRoutes", "namespaces"))
    from_ = kube.string(namespaces, "from", default="Same")
    selector = None
    if from_ == "Selector":
        selector, message = parse_selector(namespaces.get("selector"))
        if message:
            problems.append(Problem(R_UNSUPPORTED_VALUE, message))
    elif from_ not in {"Same", "All"}:
        problems.append(Problem(R_UNSUPPORTED_VALUE, f"allowedRoutes.namespaces.from {from_!r}"))
        from_ = "Same"
    kinds_raw = kube.field(raw, "allowedRoutes", "kinds")
    kinds = None
    if isinstance(kinds_raw, list) and kinds_raw:  # empty: the protocol's defaults
        kinds = tuple(
            RouteKind(kube.string(k, "group", default=kube.GATEWAY_GROUP), kube.string(k, "kind"))
            for k in kinds_raw
        )
    return Listener(
        name=kube.string(raw, "name"),
        port=port if isinstance(port, int) else 0,
        protocol=protocol,
        hostname=hostname,
        namespaces_from=cast(FromNamespaces, from_),
        selector=selector,
        kinds=kinds,
        problems=tuple(problems),
        tls=tls,
    )


def parse_selector(raw: object) -> tuple[LabelSelector | None, str | None]:
    """A metav1.LabelSelector; an absent selector selects nothing."""
    if not isinstance(raw, Mapping):
        return None, "allowedRoutes.namespaces.selector is required when from is Selector"
    for key, expected in (("matchLabels", dict), ("matchExpressions", list)):
        if (message := kube.wrong_type(raw, key, expected, f"selector {key}")) is not None:
            return None, message
    labels = kube.mapping(raw.get("matchLabels"))
    requirements = []
    for expr in kube.items(raw, "matchExpressions"):
        operator = kube.string(expr, "operator")
        if operator not in {"In", "NotIn", "Exists", "DoesNotExist"}:
            return None, f"label selector operator {operator!r} is not valid"
        values = frozenset(v for v in kube.items(expr, "values") if isinstance(v, str))
        requirements.append(LabelRequirement(kube.string(expr, "key"), operator, values))  # type: ignore[arg-type]
    pairs = tuple(sorted((str(k), str(v)) for k, v in labels.items()))
    return LabelSelector(pairs, tuple(requirements)), None


def parse_parent_ref(raw: Mapping[str, Any], route_namespace: str) -> ParentRef:
    group = kube.string(raw, "group", default=kube.GATEWAY_GROUP)
    kind = kube.string(raw, "kind", default="Gateway")
    written: dict[str, Any] = {"group": group, "kind": kind}
    written.update(
        {
            k: raw[k]
            for k in ("namespace", "name", "sectionName", "port")
            if k in raw and kube.wrong_type(raw, k, PARENT_REF_FIELDS[k], k) is None
        }
    )
    return ParentRef(
        group=group,
        kind=kind,
        namespace=kube.string(raw, "namespace", default=route_namespace),
        name=kube.string(raw, "name"),
        section_name=kube.optional_string(raw, "sectionName"),
        port=kube.integer(raw, "port"),
        as_written=written,
    )


@dataclass(frozen=True, slots=True)
class RouteHead:
    """What every route kind has besides its rules."""

    meta: Meta
    parent_refs: tuple[ParentRef, ...]
    hostnames: tuple[str, ...]
    problems: tuple[Problem, ...]  # of the hostnames
    other_parents: tuple[Mapping[str, Any], ...]  # status entries of other controllers


def parse_route_head(body: Mapping[str, Any]) -> RouteHead:
    meta = parse_meta(body)
    spec = kube.mapping(body.get("spec"))
    raw_hostnames = kube.items(spec, "hostnames")
    hostnames = tuple(h for h in raw_hostnames if isinstance(h, str))
    messages = [kube.wrong_type(spec, "hostnames", list, "spec.hostnames")]
    messages += [f"hostname {h!r} is not a string" for h in raw_hostnames if not isinstance(h, str)]
    messages += map(validate.hostname_problem, hostnames)
    parents = []
    for raw in kube.items(spec, "parentRefs"):
        ref = kube.mapping(raw)
        messages += (
            kube.wrong_type(ref, key, PARENT_REF_FIELDS[key], f"parentRef {key}")
            for key in ref.keys() & PARENT_REF_FIELDS.keys()  # only the fields present
        )
        parents.append(parse_parent_ref(ref, meta.namespace))
    problems = tuple(Problem(R_UNSUPPORTED_VALUE, m) for m in messages if m is not None)
    others = tuple(
        p
        for p in kube.items(body, "status", "parents")
        if isinstance(p, Mapping)
        and isinstance(p.get("controllerName"), str)
        and p["controllerName"] != kube.CONTROLLER_NAME
    )
    return RouteHead(meta, tuple(parents), hostnames, problems, others)


def parse_http_route(body: Mapping[str, Any]) -> HTTPRoute:
    head = parse_route_head(body)
    raw_rules = kube.items(body, "spec", "rules") or ({},)
    rules = tuple(
        parse_http_rule(index, kube.mapping(raw), head.meta.namespace)
        for index, raw in enumerate(raw_rules)
    )
    return HTTPRoute(
        head.meta, head.parent_refs, head.hostnames, rules, head.problems, head.other_parents
    )


def parse_http_rule(index: int, raw: Mapping[str, Any], namespace: str) -> HTTPRule:
    problems: list[Problem] = []
    matches = []
    if (message := kube.wrong_type(raw, "matches", list, "rule matches")) is not None:
        problems.append(Problem(R_UNSUPPORTED_VALUE, message))
    for raw_match in kube.items(raw, "matches") or ({},):
        match, match_problems = parse_http_match(kube.mapping(raw_match))
        matches.append(match)
        problems.extend(match_problems)
    backends = []
    for raw_ref in kube.items(raw, "backendRefs"):
        ref, ref_problems = parse_backend_ref(kube.mapping(raw_ref), namespace)
        backends.append(ref)
        problems.extend(ref_problems)
    extras = parse_rule_extras(raw, namespace, tuple(matches), tuple(backends))
    return HTTPRule(
        index=index,
        name=kube.optional_string(raw, "name"),
        matches=tuple(matches),
        backends=extras.backends,
        problems=(*problems, *extras.problems),
        filters=extras.filters,
        timeouts=extras.timeouts,
    )


def parse_http_match(raw: Mapping[str, Any]) -> tuple[HTTPMatch, list[Problem]]:
    problems: list[Problem] = []
    for key, expected in (("path", dict), ("headers", list), ("queryParams", list)):
        if (message := kube.wrong_type(raw, key, expected, f"match {key}")) is not None:
            problems.append(Problem(R_UNSUPPORTED_VALUE, message))
    path_raw = kube.mapping(raw.get("path"))
    path_type = kube.string(path_raw, "type", default="PathPrefix")
    path_value = kube.string(path_raw, "value", default="/")
    if path_type == "RegularExpression":
        message = validate.regex_problem(path_value)
    elif path_type in {"Exact", "PathPrefix"}:
        message = validate.path_problem(path_value)
    else:
        message = f"path match type {path_type!r} is not supported"
    if message:
        problems.append(Problem(R_UNSUPPORTED_VALUE, message))
    headers = _value_matches(kube.items(raw, "headers"), "header", problems)
    query = _value_matches(kube.items(raw, "queryParams"), "query parameter", problems)
    method = kube.optional_string(raw, "method")
    if method is not None and method not in validate.METHODS:
        problems.append(Problem(R_UNSUPPORTED_VALUE, f"method {method!r} is not supported"))
    path = PathMatch(path_type, path_value)  # type: ignore[arg-type]
    return HTTPMatch(path, headers, query, method), problems


def _value_matches(
    raws: tuple[Any, ...], what: str, problems: list[Problem]
) -> tuple[ValueMatch, ...]:
    """Header or query matches; of several on one name only the first counts (as the spec says)."""
    seen: set[str] = set()
    found = []
    for raw in raws:
        type_ = kube.string(raw, "type", default="Exact")
        name = kube.string(raw, "name")
        value = kube.string(raw, "value")
        message = validate.header_name_problem(name) if what == "header" else None
        if not name or not isinstance(raw, Mapping):
            message = f"{what} match has no name"
        elif len(name) > MAX_MATCH_NAME:
            message = f"{what} name is longer than {MAX_MATCH_NAME} characters"
        message = message or validate.text_problem(name, f"{what} name")
        message = message or validate.text_problem(value, f"{what} value")
        if type_ == "RegularExpression":
            message = message or validate.regex_problem(value)
        elif type_ != "Exact":
            message = f"{what} match type {type_!r} is not supported"
        if message:
            problems.append(Problem(R_UNSUPPORTED_VALUE, message))
            continue
        folded = name.lower() if what == "header" else name
        if folded not in seen:
            seen.add(folded)
            found.append(ValueMatch(type_, folded, value))  # type: ignore[arg-type]
    return tuple(found)


def parse_backend_ref(raw: Mapping[str, Any], namespace: str) -> tuple[BackendRef, list[Problem]]:
    problems = []
    port = kube.field(raw, "port")
    if port is not None and (message := validate.port_problem(port)) is not None:
        problems.append(Problem(R_UNSUPPORTED_VALUE, f"backendRef {message}"))
    weight = kube.field(raw, "weight")
    if weight is None:
        weight = 1
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 1_000_000:
        problems.append(
            Problem(R_UNSUPPORTED_VALUE, f"backendRef weight {weight!r} is not 0-1000000")
        )
        weight = 0
    ref = BackendRef(
        group=kube.string(raw, "group"),
        kind=kube.string(raw, "kind", default="Service"),
        namespace=kube.string(raw, "namespace", default=namespace),
        name=kube.string(raw, "name"),
        port=port if isinstance(port, int) and not problems else None,
        weight=weight,
    )
    return ref, problems


def parse_service(body: Mapping[str, Any]) -> Service:
    ports = tuple(
        ServicePort(
            name=kube.string(p, "name"),
            port=kube.integer(p, "port") or 0,
            protocol=kube.string(p, "protocol", default="TCP"),
            app_protocol=kube.optional_string(p, "appProtocol"),
        )
        for p in kube.items(body, "spec", "ports")
    )
    return Service(parse_meta(body), ports)


def parse_endpoint_slice(body: Mapping[str, Any]) -> EndpointSlice:
    ports = tuple(
        SlicePort(kube.string(p, "name"), kube.integer(p, "port") or 0)
        for p in kube.items(body, "ports")
    )
    addresses: list[str] = []
    if kube.string(body, "addressType", default="IPv4") in {"IPv4", "IPv6"}:
        for endpoint in kube.items(body, "endpoints"):
            ready = kube.field(endpoint, "conditions", "ready")
            if ready is False:
                continue
            addresses.extend(a for a in kube.items(endpoint, "addresses") if _is_ip(a))
    service = kube.string(body, "metadata", "labels", "kubernetes.io/service-name")
    return EndpointSlice(parse_meta(body), service, ports, tuple(addresses))


def parse_reference_grant(body: Mapping[str, Any]) -> ReferenceGrant:
    sources = tuple(
        GrantFrom(kube.string(f, "group"), kube.string(f, "kind"), kube.string(f, "namespace"))
        for f in kube.items(body, "spec", "from")
    )
    targets = tuple(
        GrantTo(kube.string(t, "group"), kube.string(t, "kind"), kube.optional_string(t, "name"))
        for t in kube.items(body, "spec", "to")
    )
    return ReferenceGrant(parse_meta(body), sources, targets)


def _is_ip(address: object) -> bool:
    """Only IP addresses become endpoints (Envoy rejects anything else in a socket address)."""
    if not isinstance(address, str):
        return False
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def valid_identity(namespace: str, name: str) -> bool:
    """Names no API server would store (a "/", invalid Unicode) are skipped, not translated.

    Keys like "namespace/name" must identify one object: "a/b" in "c" would be c/a/b.
    """
    if "/" in namespace or "/" in name:
        return False
    if namespace.isascii() and name.isascii():
        return True
    return all(validate.text_problem(part, "name") is None for part in (namespace, name))
