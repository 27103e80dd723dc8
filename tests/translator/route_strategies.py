"""Hypothesis strategies for the spec of every route kind: HTTP, GRPC, TLS, TCP and UDP.

Used by ``strategies.worlds`` (no tests here). Routes name Gateways, listeners and Services
of the shared name pools, with or without sectionName and port; rules carry matches of every
type (valid, invalid, huge), filters of every type with random fields (sometimes the field
of another type), and backendRefs of random kinds, namespaces, ports and weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypothesis import strategies as st
from strategy_values import (
    BACKEND_PORT,
    DURATION,
    GARBAGE,
    GATEWAY_NAMES,
    HEADER_NAME,
    HEADER_VALUE,
    HOSTNAME,
    LISTENER_NAMES,
    METHOD,
    NAMESPACE,
    PATH,
    PORT,
    QUERY_MATCH,
    REGEX,
    SERVICE_NAMES,
    SERVICE_PORTS,
    STATUS_CODE,
    STRING_MATCH,
    VALUE_TYPE,
    WEIGHT,
    Body,
    S,
    pick,
    record,
    some,
    usually,
    values,
)

from translator.kube import CONTROLLER_NAME, GATEWAY_GROUP

_PERCENT = st.integers(min_value=0, max_value=99)

PARENT_REF_FULL = st.fixed_dictionaries(
    {"name": pick(*GATEWAY_NAMES, "missing")},
    optional={
        "namespace": NAMESPACE,
        "sectionName": pick("web", *LISTENER_NAMES, "nope", 7),
        "port": PORT,
        "group": pick(GATEWAY_GROUP, "", "example.com"),
        "kind": pick("Gateway", "Service", "Mesh"),
    },
)
# Usually a Gateway by name alone, in the route's namespace or one named.
PARENT_REF = usually(
    st.fixed_dictionaries({"name": usually(pick("gw"), pick(*GATEWAY_NAMES))}),
    usually(
        st.fixed_dictionaries({"name": pick(*GATEWAY_NAMES)}, optional={"namespace": NAMESPACE}),
        PARENT_REF_FULL,
        50,
    ),
    60,
)
_BACKEND_FIELDS: Mapping[str, S[Any]] = {
    "namespace": NAMESPACE,
    "port": BACKEND_PORT,
    "weight": WEIGHT,
    "group": pick("", "core", "example.com", "multicluster.x-k8s.io"),
    "kind": pick("Service", "ServiceImport", "Secret", ""),
}
_BACKEND_NAME = {"name": pick(*SERVICE_NAMES, "missing")}
BACKEND_REF = usually(
    st.fixed_dictionaries(
        {
            "name": usually(pick("svc-a"), pick(*SERVICE_NAMES), 70),
            "port": usually(pick(80), pick(*SERVICE_PORTS), 70),
        },
        optional={"weight": WEIGHT},
    ),
    st.fixed_dictionaries(_BACKEND_NAME, optional=_BACKEND_FIELDS),
    60,
)

# Status entries left by other controllers (to be kept) or by us before (to be replaced).
_PARENT_STATUS = st.fixed_dictionaries(
    {
        "parentRef": st.fixed_dictionaries({"name": pick(*GATEWAY_NAMES)}),
        "controllerName": pick("example.com/other", CONTROLLER_NAME),
        "conditions": st.just([{"type": "Accepted", "status": "True", "reason": "Accepted"}]),
    }
)
OTHER_STATUS = st.fixed_dictionaries(
    {"parents": some(usually(_PARENT_STATUS, st.one_of(pick("junk", None, 3), GARBAGE), 85))}
)

# --- filters ---------------------------------------------------------------------------------

# Modified headers: usually distinct names other than Host (which only URLRewrite may set).
_MODIFIED = usually(pick("x-set", "x-add", "x-remove", "X-Other"), HEADER_NAME, 70)
_PAIR = st.fixed_dictionaries(
    {"name": _MODIFIED, "value": usually(pick("v", "a b", "1"), HEADER_VALUE, 70)}
)
HEADER_MODIFIER = record(
    {},
    often={"set": some(_PAIR)},
    sometimes={"add": some(_PAIR), "remove": some(_MODIFIED)},
)
_PATH_TYPES = usually(pick("ReplaceFullPath", "ReplacePrefixMatch"), pick("Replace", ""), 90)
_PATH_FIELDS = {"ReplaceFullPath": "replaceFullPath", "ReplacePrefixMatch": "replacePrefixMatch"}


@st.composite
def _path_modifier(draw: st.DrawFn) -> Body:
    """A path modifier, usually with the field its type names, sometimes with the other."""
    result: Body = {"type": draw(_PATH_TYPES)}
    field = _PATH_FIELDS.get(result["type"], "replaceFullPath")
    if draw(_PERCENT) >= 85:
        field = "replacePrefixMatch" if field == "replaceFullPath" else "replaceFullPath"
    if draw(_PERCENT) < 90:
        result[field] = draw(PATH)
    return result


PATH_MODIFIER = _path_modifier()
REDIRECT = record(
    {},
    sometimes={
        "scheme": values("scheme"),
        "hostname": HOSTNAME,
        "path": PATH_MODIFIER,
        "port": PORT,
        "statusCode": STATUS_CODE,
    },
)
MIRROR = record(
    {"backendRef": BACKEND_REF},
    sometimes={
        "percent": values("percent"),
        "fraction": record(
            {"numerator": values("percent")}, sometimes={"denominator": values("denominator")}
        ),
    },
)
CORS = st.fixed_dictionaries(
    {},
    optional={
        "allowOrigins": some(pick("*", "https://example.com", "https://*.example.com", "bad")),
        "allowMethods": some(pick("GET", "*", "FOO")),
        "allowHeaders": some(HEADER_NAME),
        "exposeHeaders": some(HEADER_NAME),
        "allowCredentials": pick(True, False, "yes"),
        "maxAge": pick(5, 0, -1, 86400, "5"),
    },
)
# Each filter type: the field that holds its settings, and a strategy for them.
FILTERS: Mapping[str, tuple[str, S[Any]]] = {
    "RequestHeaderModifier": ("requestHeaderModifier", HEADER_MODIFIER),
    "ResponseHeaderModifier": ("responseHeaderModifier", HEADER_MODIFIER),
    "RequestRedirect": ("requestRedirect", REDIRECT),
    "URLRewrite": (
        "urlRewrite",
        st.fixed_dictionaries({}, optional={"hostname": HOSTNAME, "path": PATH_MODIFIER}),
    ),
    "RequestMirror": ("requestMirror", MIRROR),
    "CORS": ("cors", CORS),
    "ExtensionRef": (
        "extensionRef",
        st.fixed_dictionaries(
            {"group": pick("example.com", ""), "kind": pick("Thing"), "name": pick("x")}
        ),
    ),
    "ExternalAuth": (
        "externalAuth",
        st.fixed_dictionaries(
            {"protocol": pick("HTTP", "GRPC")}, optional={"backendRef": BACKEND_REF}
        ),
    ),
}


def filter_of(usual: tuple[str, ...], others: tuple[str, ...]) -> S[Body]:
    """A filter, usually of a ``usual`` type with its own settings; else of another type, or
    an unknown one, or with the settings field of another type, or with none."""
    type_strategy = usually(pick(*usual), pick(*others, "Unknown"))
    field_strategy = pick(*usual, *others)

    @st.composite
    def build(draw: st.DrawFn) -> Body:
        type_ = draw(type_strategy)
        own = type_ in FILTERS and draw(_PERCENT) < 90
        field, settings = FILTERS[type_ if own else draw(field_strategy)]
        result: Body = {"type": type_}
        if draw(_PERCENT) < 95:
            result[field] = draw(settings)
        return result

    return build()


IMPLEMENTED_FILTERS = (
    "RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect", "URLRewrite",
    "RequestMirror",
)  # fmt: skip
HTTP_FILTER = filter_of(IMPLEMENTED_FILTERS, ("ExtensionRef", "CORS", "ExternalAuth"))
GRPC_FILTER = filter_of(
    ("RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror"),
    ("ExtensionRef", "RequestRedirect"),
)
BACKEND_REF_WITH_FILTERS = usually(
    BACKEND_REF,
    st.fixed_dictionaries(
        _BACKEND_NAME, optional={**_BACKEND_FIELDS, "filters": some(HTTP_FILTER, 1)}
    ),
)

# --- rules -----------------------------------------------------------------------------------


PATH_TYPE = usually(pick("PathPrefix", "Exact", "RegularExpression"), pick("Prefix", ""), 90)


@st.composite
def _path_match(draw: st.DrawFn) -> Body:
    path: Body = {}
    if draw(st.booleans()):
        path["type"] = draw(PATH_TYPE)
    if draw(st.booleans()):
        path["value"] = draw(REGEX if path.get("type") == "RegularExpression" else PATH)
    return path


BACKEND_REFS = usually(
    st.lists(BACKEND_REF_WITH_FILTERS, min_size=1, max_size=3), some(BACKEND_REF_WITH_FILTERS, 3)
)
HTTP_MATCH = record(
    {},
    often={"path": _path_match()},
    sometimes={"headers": some(STRING_MATCH), "queryParams": some(QUERY_MATCH), "method": METHOD},
)
HTTP_RULE = record(
    {},
    often={"matches": some(HTTP_MATCH, 3), "backendRefs": BACKEND_REFS},
    sometimes={
        "name": pick("rule-a", "rule-b", "Bad Name"),
        "filters": usually(
            st.lists(HTTP_FILTER, max_size=2, unique_by=lambda f: str(f["type"])),
            some(HTTP_FILTER),
        ),
        "timeouts": st.fixed_dictionaries(
            {}, optional={"request": DURATION, "backendRequest": DURATION}
        ),
    },
)
# A rule that is all about its filters: one route to svc-a, one or two filters.
FILTER_RULE = record(
    {"filters": st.lists(HTTP_FILTER, min_size=1, max_size=2, unique_by=lambda f: str(f["type"]))},
    often={"backendRefs": st.just([{"name": "svc-a", "port": 80}])},
    sometimes={"matches": st.just([{"path": {"value": "/api"}}])},
)
GRPC_METHOD = st.fixed_dictionaries(
    {},
    optional={
        "type": VALUE_TYPE,
        "service": pick("pkg.Svc", "helloworld.Greeter", "bad service", "", ".*", "("),
        "method": pick("Get", "SayHello", "bad/method", "", ".*", "["),
    },
)
GRPC_RULE = record(
    {},
    often={
        "matches": some(
            record({}, often={"method": GRPC_METHOD}, sometimes={"headers": some(STRING_MATCH)})
        ),
        "backendRefs": some(BACKEND_REF_WITH_FILTERS),
    },
    sometimes={"name": pick("rule-a", "Bad Name"), "filters": some(GRPC_FILTER)},
)
# The rule of a TLSRoute, TCPRoute or UDPRoute: backendRefs only.
BACKENDS_RULE = record(
    {}, often={"backendRefs": some(BACKEND_REF)}, sometimes={"name": pick("rule-a", "Bad Name")}
)


def route_spec(rule: S[Body], hostnames: bool) -> S[Body]:
    often: dict[str, S[Any]] = {
        "parentRefs": usually(st.lists(PARENT_REF, min_size=1, max_size=2), some(PARENT_REF, 3)),
        "rules": usually(st.lists(rule, min_size=1, max_size=3), some(rule, 3)),
    }
    return record({}, often=often, sometimes={"hostnames": some(HOSTNAME, 3)} if hostnames else {})


# Per route kind: the API versions it is served at and a strategy for its spec.
ROUTES: Mapping[str, tuple[tuple[str, ...], S[Body]]] = {
    "HTTPRoute": (("v1", "v1beta1"), route_spec(HTTP_RULE, hostnames=True)),
    "GRPCRoute": (("v1",), route_spec(GRPC_RULE, hostnames=True)),
    "TLSRoute": (("v1alpha2", "v1alpha3"), route_spec(BACKENDS_RULE, hostnames=True)),
    "TCPRoute": (("v1alpha2",), route_spec(BACKENDS_RULE, hostnames=False)),
    "UDPRoute": (("v1alpha2",), route_spec(BACKENDS_RULE, hostnames=False)),
}
_VERSIONS = {kind: pick(*versions) for kind, (versions, _) in ROUTES.items()}
_HAS_STATUS = st.integers(0, 3)


def route(draw: st.DrawFn, kind: str, meta: Body) -> Body:
    """A route of ``kind`` with metadata ``meta``, sometimes with others' status entries."""
    body: Body = {
        "apiVersion": f"{GATEWAY_GROUP}/{draw(_VERSIONS[kind])}",
        "kind": kind,
        "metadata": meta,
        "spec": draw(ROUTES[kind][1]),
    }
    if draw(_HAS_STATUS) == 0:
        body["status"] = draw(OTHER_STATUS)
    return body
