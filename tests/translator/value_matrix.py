"""Every value of ``strategy_values.VALUES`` in every field that takes it: one world each.

Used by test_properties.py (no tests here). Random worlds meet a rare value in a rare field
seldom; this matrix meets each (field, value) pair once, deterministically. Each world is a
Gateway default/gw (listener "web", HTTP on 8080) with Service default/svc-a behind one
HTTPRoute (or GRPCRoute) rule; the field under test holds the value (route, match, filter
and listener fields, and metadata names). ``listener_matrix`` adds every listener protocol
(HTTP, HTTPS, TLS passthrough and terminate, TCP, UDP) with every route kind or none, with
and without hostnames. Whatever the translator lets through must be config Envoy accepts.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from typing import Any

from route_strategies import FILTERS
from strategy_values import CERT, KEY, VALUES, Body, b64

from translator import CONTROLLER_NAME
from translator.kube import GATEWAY_GROUP

BASE: list[Body] = [
    {
        "apiVersion": f"{GATEWAY_GROUP}/v1",
        "kind": "GatewayClass",
        "metadata": {"name": "ours"},
        "spec": {"controllerName": CONTROLLER_NAME},
    },
    {
        "apiVersion": f"{GATEWAY_GROUP}/v1",
        "kind": "Gateway",
        "metadata": {"name": "gw", "namespace": "default"},
        "spec": {
            "gatewayClassName": "ours",
            "listeners": [{"name": "web", "port": 8080, "protocol": "HTTP"}],
        },
    },
    {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "svc-a", "namespace": "default"},
        "spec": {"ports": [{"name": "http", "port": 80}]},
    },
    {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "svc-a-1",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": "svc-a"},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080}],
        "endpoints": [{"addresses": ["10.0.0.1"]}],
    },
]
BACKEND = {"name": "svc-a", "port": 80}
V = object()  # where the value goes in a template


def fill(template: Any, value: Any) -> Any:
    """``template`` with every V replaced by ``value``."""
    if template is V:
        return value
    if isinstance(template, dict):
        return {k: fill(v, value) for k, v in template.items()}
    if isinstance(template, list):
        return [fill(v, value) for v in template]
    return template


def world(kind: str, spec: Body, listener: Body | None = None) -> list[Body]:
    """BASE (its listener updated with ``listener``) and a route of ``kind`` to it."""
    objects = copy.deepcopy(BASE)
    objects[1]["spec"]["listeners"][0].update(listener or {})
    rules = spec.get("rules", [{}])
    spec = copy.deepcopy({**spec, "rules": [{"backendRefs": [BACKEND], **r} for r in rules]})
    meta = {"name": "r", "namespace": "default"}
    api = f"{GATEWAY_GROUP}/v1"
    parent = {"parentRefs": [{"name": "gw"}]}
    return [
        *objects,
        {"apiVersion": api, "kind": kind, "metadata": meta, "spec": {**parent, **spec}},
    ]


def rule(**fields: Any) -> Body:
    return {"rules": [fields]}


def filter_of(type_: str, settings: Any) -> Body:
    return {"type": type_, FILTERS[type_][0]: settings}


def filter_(type_: str, settings: Any) -> Body:
    return rule(filters=[filter_of(type_, settings)])


def header_modifiers(type_: str) -> list[tuple[str, str, Body]]:
    return [
        (f"{type_}.set.name", "header_name", filter_(type_, {"set": [{"name": V, "value": "v"}]})),
        (
            f"{type_}.add.value",
            "header_value",
            filter_(type_, {"add": [{"name": "x", "value": V}]}),
        ),
        (f"{type_}.remove", "header_name", filter_(type_, {"remove": [V]})),
    ]


def regex(name: str) -> Body:
    return {"name": name, "type": "RegularExpression", "value": V}


# (field, kind of value, template of the HTTPRoute spec with V where the value goes)
FIELDS: list[tuple[str, str, Body]] = [
    ("route.hostnames", "hostname", {"hostnames": [V]}),
    ("path.Exact", "path", rule(matches=[{"path": {"type": "Exact", "value": V}}])),
    ("path.PathPrefix", "path", rule(matches=[{"path": {"type": "PathPrefix", "value": V}}])),
    ("path.Regex", "regex", rule(matches=[{"path": {"type": "RegularExpression", "value": V}}])),
    ("headers.name", "header_name", rule(matches=[{"headers": [{"name": V, "value": "v"}]}])),
    ("headers.value", "header_value", rule(matches=[{"headers": [{"name": "x", "value": V}]}])),
    ("headers.regex", "regex", rule(matches=[{"headers": [regex("x")]}])),
    ("query.name", "query_name", rule(matches=[{"queryParams": [{"name": V, "value": "v"}]}])),
    ("query.value", "header_value", rule(matches=[{"queryParams": [{"name": "q", "value": V}]}])),
    ("query.regex", "regex", rule(matches=[{"queryParams": [regex("q")]}])),
    ("method", "method", rule(matches=[{"method": V}])),
    ("backendRefs.weight", "weight", rule(backendRefs=[{**BACKEND, "weight": V}, BACKEND])),
    ("backendRefs.port", "port", rule(backendRefs=[{**BACKEND, "port": V}])),
    ("timeouts.request", "duration", rule(timeouts={"request": V})),
    *header_modifiers("RequestHeaderModifier"),
    *header_modifiers("ResponseHeaderModifier"),
    ("redirect.hostname", "hostname", filter_("RequestRedirect", {"hostname": V})),
    ("redirect.port", "port", filter_("RequestRedirect", {"port": V})),
    ("redirect.statusCode", "status_code", filter_("RequestRedirect", {"statusCode": V})),
    (
        "redirect.ReplaceFullPath",
        "path",
        filter_("RequestRedirect", {"path": {"type": "ReplaceFullPath", "replaceFullPath": V}}),
    ),
    ("rewrite.hostname", "hostname", filter_("URLRewrite", {"hostname": V})),
    (
        "rewrite.ReplacePrefixMatch",
        "path",
        {
            "rules": [
                {
                    "matches": [{"path": {"value": "/api"}}],
                    "filters": [
                        {
                            "type": "URLRewrite",
                            "urlRewrite": {
                                "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": V}
                            },
                        }
                    ],
                }
            ]
        },
    ),
    ("mirror.port", "port", filter_("RequestMirror", {"backendRef": {**BACKEND, "port": V}})),
    ("mirror.percent", "percent", filter_("RequestMirror", {"backendRef": BACKEND, "percent": V})),
    (
        "mirror.numerator",
        "percent",
        filter_("RequestMirror", {"backendRef": BACKEND, "fraction": {"numerator": V}}),
    ),
    (
        "mirror.denominator",
        "denominator",
        filter_(
            "RequestMirror",
            {"backendRef": BACKEND, "fraction": {"numerator": 1, "denominator": V}},
        ),
    ),
    ("redirect.scheme", "scheme", filter_("RequestRedirect", {"scheme": V})),
    (
        "rewrite.ReplaceFullPath",
        "path",
        filter_("URLRewrite", {"path": {"type": "ReplaceFullPath", "replaceFullPath": V}}),
    ),
    ("timeouts.backendRequest", "duration", rule(timeouts={"backendRequest": V})),
    (
        "backendRefs.filters.value",
        "header_value",
        rule(
            backendRefs=[
                {
                    **BACKEND,
                    "filters": [
                        filter_of("RequestHeaderModifier", {"set": [{"name": "x", "value": V}]})
                    ],
                }
            ]
        ),
    ),
]
# The same for a GRPCRoute and for the listener.
GRPC_FIELDS: list[tuple[str, str, Body]] = [
    ("grpc.service", "header_name", rule(matches=[{"method": {"service": V, "method": "Get"}}])),
    (
        "grpc.regex",
        "regex",
        rule(matches=[{"method": {"type": "RegularExpression", "service": V}}]),
    ),
    ("grpc.method", "header_name", rule(matches=[{"method": {"service": "pkg.Svc", "method": V}}])),
    ("grpc.headers.name", "header_name", rule(matches=[{"headers": [{"name": V, "value": "v"}]}])),
]


def renamed(what: str, value: str) -> list[Body]:
    """The world of one route, with the namespace of everything, or one name, set to ``value``."""
    objects = world("HTTPRoute", {})
    gateway, service, slice_, route_ = objects[1], objects[2], objects[3], objects[-1]
    if what == "namespace":
        for body in (gateway, service, slice_, route_):
            body["metadata"]["namespace"] = value
    elif what == "service":
        service["metadata"]["name"] = value
        slice_["metadata"]["labels"]["kubernetes.io/service-name"] = value
        route_["spec"]["rules"][0]["backendRefs"][0]["name"] = value
    else:
        route_["metadata"]["name"] = value
    return objects


def matrix() -> Iterator[tuple[str, list[Body]]]:
    """(label, world) for every value of every field (listener_matrix follows)."""
    tables = (("HTTPRoute", FIELDS), ("GRPCRoute", GRPC_FIELDS))
    for kind, table in tables:
        for field, values_of, template in table:
            valid, invalid = VALUES[values_of]
            for value in (*valid, *invalid):
                yield f"{field}={value!r:.40}", world(kind, fill(template, value))
    valid, invalid = VALUES["hostname"]
    for value in (*valid, *invalid):
        yield f"listener.hostname={value!r:.40}", world("HTTPRoute", {}, {"hostname": value})
    valid, invalid = VALUES["name"]
    for what, value in itertools.product(("namespace", "service", "route"), (*valid, *invalid)):
        yield f"{what} named {value!r:.40}", renamed(what, value)
    yield from listener_matrix()


# Every listener protocol with every route kind (or none), with and without a hostname.
SECRET = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "cert", "namespace": "default"},
    "type": "kubernetes.io/tls",
    "data": {"tls.crt": b64(CERT), "tls.key": b64(KEY)},
}
PROTOCOLS: dict[str, Body] = {
    "HTTP": {"protocol": "HTTP"},
    "HTTPS": {"protocol": "HTTPS", "tls": {"certificateRefs": [{"name": "cert"}]}},
    "TLS-Passthrough": {"protocol": "TLS", "tls": {"mode": "Passthrough"}},
    "TLS-Terminate": {
        "protocol": "TLS",
        "tls": {"mode": "Terminate", "certificateRefs": [{"name": "cert"}]},
    },
    "TCP": {"protocol": "TCP"},
    "UDP": {"protocol": "UDP"},
}
VERSION = {"TLSRoute": "v1alpha2", "TCPRoute": "v1alpha2", "UDPRoute": "v1alpha2"}


def listener_world(
    protocol: Body, kind: str | None, hostname: str | None, route_hostnames: bool = True
) -> list[Body]:
    """BASE plus listener "l" on 8443 of ``protocol`` and a route of ``kind`` to it."""
    objects = [*copy.deepcopy(BASE), SECRET]
    listener = {"name": "l", "port": 8443, **protocol}
    if hostname is not None:
        listener["hostname"] = hostname
    objects[1]["spec"]["listeners"].append(listener)
    if kind is not None:
        spec: Body = {
            "parentRefs": [{"name": "gw", "sectionName": "l"}],
            "rules": [{"backendRefs": [BACKEND]}],
        }
        if route_hostnames and kind in {"HTTPRoute", "GRPCRoute", "TLSRoute"}:
            spec["hostnames"] = ["a.example.com"]
        api = f"{GATEWAY_GROUP}/{VERSION.get(kind, 'v1')}"
        meta = {"name": "r", "namespace": "default"}
        objects.append({"apiVersion": api, "kind": kind, "metadata": meta, "spec": spec})
    return objects


def listener_matrix() -> Iterator[tuple[str, list[Body]]]:
    """(label, world) for every protocol, route kind and hostname."""
    kinds = (None, "HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute", "UDPRoute")
    for name, protocol in PROTOCOLS.items():
        for kind, hostname, route_hostnames in itertools.product(
            kinds, (None, "a.example.com", "*.example.com"), (True, False)
        ):
            label = f"listener {name} hostname={hostname} route={kind} {route_hostnames=}"
            yield label, listener_world(protocol, kind, hostname, route_hostnames)
