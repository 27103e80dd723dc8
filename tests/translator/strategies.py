"""Hypothesis strategies: random, malformed and structurally broken Gateway API worlds.

Used by ``test_properties.py`` (no tests here). A world is a list of Kubernetes JSON bodies
as a provider hands them to ``translate()``: at most one object per (kind, namespace, name),
as an API server and the file provider guarantee; everything else is free::

    worlds()              GatewayClasses, Gateways, HTTP/GRPC/TLS/TCP/UDP routes
      |                   (route_strategies), Services, EndpointSlices, ReferenceGrants,
      |                   Namespaces, Secrets, bodies of unknown kinds
      +- strategy_values  ports, hostnames, paths, regexes, headers, methods, weights:
      |                   valid, invalid, and of the wrong JSON type
      +- corrupted()      a few subtrees of a body replaced by garbage JSON (null, numbers,
                          a string where a list is expected, nested junk), at any depth

Values that trigger a translator bug still open (``known_bugs.KNOWN_BUGS``) are masked out
unless ``bugs=True``: the properties guard everything else meanwhile.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st
from known_bugs import masked
from route_strategies import FILTER_RULE, GRPC_RULE, HTTP_RULE, route
from strategy_values import (
    CERT,
    CLASS_NAMES,
    GARBAGE,
    GATEWAY_NAMES,
    HOSTNAME,
    INDEX,
    KEY,
    LABELS,
    LISTENER_NAMES,
    META,
    NAMESPACE,
    NAMESPACES,
    PORT,
    ROUTE_GROUP_KIND,
    ROUTE_KINDS,
    ROUTE_NAMES,
    SECRET_NAMES,
    SERVICE_NAMES,
    SERVICE_PORTS,
    SLICE_NAMES,
    Body,
    S,
    b64,
    metadata,
    pick,
    record,
    some,
    usually,
)

from translator.kube import CONTROLLER_NAME, GATEWAY_GROUP

Key = tuple[str, str, str]
Draw = st.DrawFn
_PERCENT = st.integers(0, 99)

# --- GatewayClass, Gateway ---------------------------------------------------------------

CONTROLLERS = {
    "ours": CONTROLLER_NAME,
    "ours-params": CONTROLLER_NAME,
    "theirs": "example.com/other-controller",
}
SELECTOR = st.fixed_dictionaries(
    {},
    optional={
        "matchLabels": LABELS,
        "matchExpressions": some(
            st.fixed_dictionaries(
                {"key": pick("team", "kubernetes.io/metadata.name", "env")},
                optional={
                    "operator": pick("In", "NotIn", "Exists", "DoesNotExist", "Bogus"),
                    "values": some(pick("a", "b", *NAMESPACES)),
                },
            )
        ),
    },
)
ALLOWED_ROUTES = st.fixed_dictionaries(
    {},
    optional={
        "namespaces": st.fixed_dictionaries(
            {},
            optional={
                "from": pick("Same", "All", "Selector", "None", "all"),
                "selector": SELECTOR,
            },
        ),
        "kinds": some(ROUTE_GROUP_KIND),
    },
)
CERTIFICATE_REF = st.fixed_dictionaries(
    {"name": pick(*SECRET_NAMES, "missing")},
    optional={
        "namespace": NAMESPACE,
        "kind": pick("Secret", "ConfigMap"),
        "group": pick("", "core", "example.com"),
    },
)
TLS = record(
    {},
    often={"certificateRefs": usually(st.just([{"name": "cert"}]), some(CERTIFICATE_REF), 70)},
    sometimes={
        "mode": usually(pick("Terminate", "Passthrough"), pick("Both", "")),
        "options": st.dictionaries(pick("example.com/x"), pick("y"), max_size=1),
    },
)
PROTOCOL = usually(pick("HTTP"), usually(pick("HTTPS", "TLS", "TCP", "UDP"), pick("http", "")), 50)
LISTENER_FIELDS = record(
    {"name": pick(*LISTENER_NAMES), "port": PORT, "protocol": PROTOCOL},
    sometimes={"hostname": HOSTNAME, "allowedRoutes": ALLOWED_ROUTES},
)


@st.composite
def _listener(draw: Draw) -> Body:
    """A listener; with TLS settings when its protocol wants them (and now and then not)."""
    listener: Body = draw(LISTENER_FIELDS)
    wants_tls = listener["protocol"] in {"HTTPS", "TLS"}
    if draw(_PERCENT) < (90 if wants_tls else 10):
        listener["tls"] = draw(TLS)
    return listener


LISTENER = _listener()
LISTENERS = usually(
    st.lists(LISTENER, min_size=1, max_size=4, unique_by=lambda listener: str(listener["name"])),
    some(LISTENER, 4),
)
GATEWAY_SPEC = st.fixed_dictionaries(
    {
        "gatewayClassName": usually(pick("ours"), pick(*CLASS_NAMES, "unknown")),
        "listeners": LISTENERS,
    }
)
GATEWAY_ADDRESSES = usually(
    st.just(None), st.just([{"type": "IPAddress", "value": "10.1.1.1"}]), 90
)


def gateway(draw: Draw, meta: Body) -> Body:
    spec = draw(GATEWAY_SPEC)
    if (addresses := draw(GATEWAY_ADDRESSES)) is not None:
        spec["addresses"] = addresses
    return {"apiVersion": f"{GATEWAY_GROUP}/v1", "kind": "Gateway", "metadata": meta, "spec": spec}


def gateway_class(meta: Body) -> Body:
    spec: Body = {"controllerName": CONTROLLERS[meta["name"]]}
    if meta["name"] == "ours-params":
        spec["parametersRef"] = {"group": "example.com", "kind": "Config", "name": "p"}
    return {
        "apiVersion": f"{GATEWAY_GROUP}/v1",
        "kind": "GatewayClass",
        "metadata": meta,
        "spec": spec,
    }


# --- Service, EndpointSlice, ReferenceGrant, Secret ---------------------------------------

SERVICE_PORT = st.fixed_dictionaries(
    {"port": usually(pick(*SERVICE_PORTS), PORT)},
    optional={
        "name": pick("http", "grpc", "", "metrics"),
        "protocol": pick("TCP", "UDP", "SCTP"),
        "appProtocol": pick("http", "kubernetes.io/h2c", "grpc", "https", "x"),
        "targetPort": pick(8080, "http", 0),
    },
)
SERVICE_FIELDS = st.fixed_dictionaries(
    {
        "spec": st.fixed_dictionaries(
            {"ports": usually(st.lists(SERVICE_PORT, min_size=1, max_size=3), some(SERVICE_PORT))}
        )
    }
)
VALID_ADDRESSES = pick("10.0.0.1", "10.0.0.2", "192.168.1.10", "fd00::1", "::1")
INVALID_ADDRESSES = pick("not-an-ip", "999.0.0.1", "10.0.0.1/24", "", "10.0.0", "fd00::zz")
ADDRESS = usually(VALID_ADDRESSES, INVALID_ADDRESSES, 85)


def slice_fields(address: S[str]) -> S[Body]:
    """addressType, ports and endpoints of an EndpointSlice."""
    conditions = st.fixed_dictionaries(
        {}, optional={"ready": pick(True, False, None, "false"), "serving": st.booleans()}
    )
    endpoint = st.fixed_dictionaries(
        {"addresses": st.lists(address, min_size=1, max_size=2)},
        optional={"conditions": conditions},
    )
    port = st.fixed_dictionaries(
        {"port": st.one_of(pick(8080, 9090, 50051), PORT)},
        optional={"name": pick("http", "grpc", ""), "protocol": pick("TCP", "UDP")},
    )
    return st.fixed_dictionaries(
        {
            "addressType": pick("IPv4", "IPv6", "FQDN", "ipv4"),
            "ports": some(port),
            "endpoints": some(endpoint, 3),
        }
    )


SLICE = slice_fields(ADDRESS)
GRANT_SPEC = st.fixed_dictionaries(
    {
        "from": some(
            st.fixed_dictionaries(
                {
                    "group": pick(GATEWAY_GROUP, ""),
                    "kind": pick(*ROUTE_KINDS, "Gateway"),
                    "namespace": NAMESPACE,
                }
            )
        ),
        "to": some(
            st.fixed_dictionaries(
                {"group": pick("", "core"), "kind": pick("Service", "Secret")},
                optional={"name": pick(*SERVICE_NAMES, *SECRET_NAMES)},
            )
        ),
    }
)
GRANT_FIELDS = st.fixed_dictionaries({"spec": GRANT_SPEC})
_JUNK_PEM = pick("not base64!", b64(b"not a certificate"), "", b64(CERT + b"garbage"))
SECRET_FIELDS = st.fixed_dictionaries(
    {
        "type": pick("kubernetes.io/tls", "Opaque"),
        "data": st.fixed_dictionaries(
            {},
            optional={
                "tls.crt": st.one_of(st.just(b64(CERT)), _JUNK_PEM),
                "tls.key": st.one_of(st.just(b64(KEY)), _JUNK_PEM),
            },
        ),
    }
)

# --- corruption: wrong JSON types at any depth ----------------------------------------------

Path = tuple[str | int, ...]


def paths(value: Any, prefix: Path = ()) -> list[Path]:
    """Every position below ``value`` (keys of mappings, indexes of lists)."""
    found: list[Path] = []
    children = value.items() if isinstance(value, dict) else enumerate(value)
    for key, child in children:
        found.append((*prefix, key))
        if isinstance(child, dict | list):
            found.extend(paths(child, (*prefix, key)))
    return found


def replaced(value: Any, path: Path, new: Any) -> Any:
    """A copy of ``value`` with the position ``path`` set to ``new`` (the input is untouched)."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {k: replaced(v, rest, new) if k == head else v for k, v in value.items()}
    return [replaced(v, rest, new) if i == head else v for i, v in enumerate(value)]


_CORRUPTIONS = usually(st.just(0), pick(1, 2), 90)


def corrupted(draw: Draw, body: Body) -> Body:
    """``body``, usually intact, else with one or two subtrees replaced by garbage JSON."""
    for _ in range(draw(_CORRUPTIONS)):
        positions = paths(body)
        body = replaced(body, positions[draw(INDEX) % len(positions)], draw(GARBAGE))
    return body


BROKEN_BODY = st.fixed_dictionaries(
    {
        "apiVersion": pick(f"{GATEWAY_GROUP}/v1", "v1", "discovery.k8s.io/v1", 5),
        "kind": pick(*ROUTE_KINDS, "Gateway", "GatewayClass", "Service", "ConfigMap", "Secret"),
        "metadata": st.one_of(
            GARBAGE, st.fixed_dictionaries({"name": pick("junk"), "namespace": NAMESPACE})
        ),
    },
    optional={"spec": GARBAGE, "status": GARBAGE, "endpoints": GARBAGE, "data": GARBAGE},
)

# --- worlds ---------------------------------------------------------------------------------


def identity(body: Any) -> Key | None:
    """(kind, namespace, name) as the translator reads them; None when it ignores the body."""
    if not isinstance(body, dict):
        return None
    kind, meta = body.get("kind"), body.get("metadata")
    if not isinstance(meta, dict):
        return None
    name, namespace = meta.get("name"), meta.get("namespace")
    if not isinstance(kind, str) or not isinstance(name, str) or not name:
        return None
    return kind, namespace if isinstance(namespace, str) else "", name


_KEY_NAMESPACE = usually(pick("default"), pick("apps", "other", None), 70)


def _keys(names: tuple[str, ...], most: int, least: int) -> S[list[tuple[str | None, str]]]:
    """Unique (namespace, name) pairs; a namespace of None is left out of the body."""
    pairs = st.tuples(_KEY_NAMESPACE, pick(*names))
    return st.lists(pairs, unique=True, min_size=least, max_size=most)


def _namespaced(kind: str, api_version: str, fields: S[Body]) -> Callable[[Draw, Body], Body]:
    def build(draw: Draw, meta: Body) -> Body:
        return {"apiVersion": api_version, "kind": kind, "metadata": meta, **draw(fields)}

    return build


def _route(kind: str) -> Callable[[Draw, Body], Body]:
    return lambda draw, meta: route(draw, kind, meta)


_SLICE_SERVICE = usually(pick("svc-a"), pick(*SERVICE_NAMES), 50)


def _endpoint_slice(draw: Draw, meta: Body) -> Body:
    meta = {**meta, "labels": {"kubernetes.io/service-name": draw(_SLICE_SERVICE)}}
    fields = draw(SLICE)
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": meta,
        **fields,
    }


# Namespaced kinds a world holds: the names they take, how many at least and at most, and
# how to build one.
NAMESPACED: tuple[tuple[tuple[str, ...], int, int, Callable[[Draw, Body], Body]], ...] = (
    (GATEWAY_NAMES, 1, 2, gateway),
    (ROUTE_NAMES, 1, 3, _route("HTTPRoute")),
    (ROUTE_NAMES, 0, 2, _route("GRPCRoute")),
    (ROUTE_NAMES, 0, 1, _route("TLSRoute")),
    (ROUTE_NAMES, 0, 1, _route("TCPRoute")),
    (ROUTE_NAMES, 0, 1, _route("UDPRoute")),
    (SERVICE_NAMES, 1, 3, _namespaced("Service", "v1", SERVICE_FIELDS)),
    (("grant",), 0, 2, _namespaced("ReferenceGrant", f"{GATEWAY_GROUP}/v1beta1", GRANT_FIELDS)),
    (SECRET_NAMES, 0, 2, _namespaced("Secret", "v1", SECRET_FIELDS)),
)
_KEYS = [_keys(names, most, least) for names, least, most, _ in NAMESPACED]
_SLICE_KEYS = _keys(SLICE_NAMES, 3, 1)
_CLASS_PRESENT = st.integers(0, 4)
_NAMESPACE_NAMES = st.lists(pick(*NAMESPACES), unique=True, max_size=3)
_BROKEN = some(BROKEN_BODY)


# What most worlds hold, so that routes attach and backends resolve: a Gateway default/gw with
# an HTTP listener "web" on 8080 (before its drawn listeners), Service default/svc-a with
# port 80 and a ready endpoint, and a valid certificate in Secret default/cert. Drawn objects
# of the same identity are dropped.
WEB_LISTENER = {"name": "web", "port": 8080, "protocol": "HTTP"}
SVC_A = {"ports": [{"name": "http", "port": 80}]}
SVC_A_SLICE = {"addressType": "IPv4", "ports": [{"name": "http", "port": 8080}]}


def core(draw: Draw) -> list[Body]:
    gw = gateway(draw, metadata(draw(META), "default", "gw"))
    gw["spec"]["gatewayClassName"] = "ours"
    gw["spec"]["listeners"] = [dict(WEB_LISTENER), *gw["spec"]["listeners"]]
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(draw(META), "default", "svc-a"),
    }
    labels = {"kubernetes.io/service-name": "svc-a"}
    meta = {**metadata(draw(META), "default", "svc-a-web"), "labels": labels}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(draw(META), "default", "cert"),
    }
    return [
        {
            **secret,
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": b64(CERT), "tls.key": b64(KEY)},
        },
        gateway_class(metadata(draw(META), None, "ours")),
        gw,
        {**svc, "spec": copy.deepcopy(SVC_A)},
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": meta,
            **copy.deepcopy(SVC_A_SLICE),
            "endpoints": [{"addresses": ["10.0.0.1", draw(ADDRESS)]}],
        },
    ]


@st.composite
def worlds(draw: st.DrawFn, *, broken: bool = True, bugs: bool = False) -> list[Body]:
    """Bodies with unique identities; ``broken`` adds garbage, ``bugs`` unmasks KNOWN_BUGS."""
    objects = core(draw) if draw(_PERCENT) < 85 else []
    objects += [
        gateway_class(metadata(draw(META), None, name))
        for name in CLASS_NAMES
        if draw(_CLASS_PRESENT) > 0
    ]
    for (_, _, _, build), keys in zip(NAMESPACED, _KEYS, strict=True):
        objects += [build(draw, metadata(draw(META), ns, name)) for ns, name in draw(keys)]
    objects += [
        _endpoint_slice(draw, metadata(draw(META), ns, name)) for ns, name in draw(_SLICE_KEYS)
    ]
    objects += [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": draw(LABELS)},
        }
        for name in draw(_NAMESPACE_NAMES)
    ]
    if broken:
        objects = [corrupted(draw, body) for body in objects]
        objects += draw(_BROKEN)
    return unique(objects if bugs else masked(objects))


def unique(objects: list[Body]) -> list[Body]:
    """The first body of each identity (a provider never holds two), in the given order."""
    seen: set[Key] = set()
    result = []
    for body in objects:
        key = identity(body)
        if key is not None and key in seen:
            continue
        if key is not None:
            seen.add(key)
        result.append(body)
    return result


def some_bodies() -> S[list[Any]]:
    """Lists of bodies of any shape: random keys, and kind/metadata of any JSON type."""
    body = st.fixed_dictionaries(
        {},
        optional={
            "kind": st.one_of(pick("Gateway", "HTTPRoute", "Service"), GARBAGE),
            "apiVersion": st.one_of(pick(f"{GATEWAY_GROUP}/v1", "v1"), GARBAGE),
            "metadata": st.one_of(
                st.fixed_dictionaries({"name": st.one_of(pick("x"), GARBAGE)}), GARBAGE
            ),
            "spec": GARBAGE,
        },
    )
    return st.lists(st.one_of(body, st.dictionaries(st.text(max_size=6), GARBAGE)), max_size=5)


_FOCUS_KIND = usually(pick("HTTPRoute"), pick("GRPCRoute"), 70)
_FOCUS_RULES = {
    "HTTPRoute": st.lists(usually(HTTP_RULE, FILTER_RULE, 50), min_size=1, max_size=3),
    "GRPCRoute": st.lists(GRPC_RULE, min_size=1, max_size=3),
}
_FOCUS_HOSTNAMES = usually(st.just(None), some(HOSTNAME), 60)


@st.composite
def focused_worlds(draw: st.DrawFn, *, bugs: bool = False) -> list[Body]:
    """The core world (intact) and up to three routes to its Gateway, without garbage: every
    drawn value meets the translator's validation and, if let through, Envoy's."""
    objects = core(draw)
    for index in range(draw(st.integers(1, 3))):
        kind = draw(_FOCUS_KIND)
        spec: Body = {"parentRefs": [{"name": "gw"}], "rules": draw(_FOCUS_RULES[kind])}
        if (hostnames := draw(_FOCUS_HOSTNAMES)) is not None:
            spec["hostnames"] = hostnames
        meta = metadata(draw(META), "default", f"focus-{index}")
        api = f"{GATEWAY_GROUP}/v1"
        objects.append({"apiVersion": api, "kind": kind, "metadata": meta, "spec": spec})
    return objects if bugs else masked(objects)
