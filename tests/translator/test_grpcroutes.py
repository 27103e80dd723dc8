"""GRPCRoute in tables: method match validation, the path a match compiles to, precedence,
upstream protocols, and cross serving with HTTPRoutes (see also the grpcroute-* golden cases).
"""

from __future__ import annotations

from typing import Any

import pytest

from translator import TranslateOptions, translate
from translator.backends import upstream_protocol
from translator.conditions import Problem
from translator.grpcroutes import precedence
from translator.model import GRPCMatch, GRPCMethodMatch, GRPCMethodType, PathMatch, ValueMatch
from translator.parse_grpc import method_path, parse_method_match

OLD = "2024-01-01T00:00:00Z"


def method(type_: GRPCMethodType, service: str | None, name: str | None) -> GRPCMethodMatch:
    return GRPCMethodMatch(type_, service, name)


PATHS = [
    (method("Exact", "echo.Echo", "Ping"), PathMatch("Exact", "/echo.Echo/Ping"), "exact"),
    (method("Exact", "echo.Echo", None), PathMatch("PathPrefix", "/echo.Echo/"), "service"),
    (method("Exact", None, "Ping"), PathMatch("RegularExpression", "/[^/]+/Ping"), "method"),
    (
        method("RegularExpression", "a|b", "Get.*"),
        PathMatch("RegularExpression", "/(?:a|b)/(?:Get.*)"),
        "regex-grouped",
    ),
    (
        method("RegularExpression", None, "Get.*"),
        PathMatch("RegularExpression", "/[^/]+/(?:Get.*)"),
        "regex-method-only",
    ),
]


@pytest.mark.parametrize(("match", "path"), [p[:2] for p in PATHS], ids=[p[2] for p in PATHS])
def test_method_path(match: GRPCMethodMatch, path: PathMatch) -> None:
    """Each kind of method match compiles to the :path match the module docstring lists."""
    assert method_path(match) == path


VALID = [
    ({"service": "echo.Echo", "method": "Ping"}, method("Exact", "echo.Echo", "Ping")),
    ({"service": ".echo.Echo"}, method("Exact", "echo.Echo", None)),
    ({"method": "Ping", "service": ""}, method("Exact", None, "Ping")),
    ({"type": "RegularExpression", "service": "e.*"}, method("RegularExpression", "e.*", None)),
]


@pytest.mark.parametrize(("raw", "parsed"), VALID, ids=[str(v[0]) for v in VALID])
def test_valid_method_matches(raw: dict[str, Any], parsed: GRPCMethodMatch) -> None:
    """Valid method matches parse without problems (a leading "." of a service is dropped)."""
    problems: list[Problem] = []
    assert parse_method_match(raw, problems) == parsed
    assert problems == []


INVALID = [
    ({}, "needs a service, a method or both"),
    ({"type": "Exact", "service": "", "method": ""}, "needs a service, a method or both"),
    ({"service": "echo/Echo"}, "not a valid gRPC service name"),
    ({"service": "echo..Echo"}, "not a valid gRPC service name"),
    ({"method": "Ping/Pong"}, "not a valid gRPC method name"),
    ({"method": "1Ping"}, "not a valid gRPC method name"),
    ({"method": "Ping\n"}, "not a valid gRPC method name"),
    ({"service": "echo.Echo\n"}, "not a valid gRPC service name"),
    ({"type": "Prefix", "service": "echo"}, "method match type 'Prefix' is not supported"),
    ({"type": "RegularExpression", "method": "("}, "not valid RE2"),
    ({"service": "a" * 1025}, "longer than 1024 characters"),
    ({"method": "M" * 90}, "too complex"),  # the /[^/]+/M... expression is over Envoy's limit
]


@pytest.mark.parametrize(("raw", "message"), INVALID, ids=[m for _, m in INVALID])
def test_invalid_method_matches(raw: dict[str, Any], message: str) -> None:
    """Invalid method matches give an UnsupportedValue problem and match nothing."""
    problems: list[Problem] = []
    assert parse_method_match(raw, problems) is None
    assert [p.reason for p in problems] == ["UnsupportedValue"]
    assert message in problems[0].message


def key(
    service: str | None = None,
    name: str | None = None,
    *,
    headers: int = 0,
    type_: GRPCMethodType = "Exact",
    created: str = OLD,
    route: str = "default/r",
    rule: int = 0,
) -> tuple[object, ...]:
    match_method = method(type_, service, name) if service or name else None
    values = tuple(ValueMatch("Exact", f"h{i}", "v") for i in range(headers))
    return precedence(GRPCMatch(match_method, values), created, route, rule, 0)


WINS = [
    (key("a.B", "Ping"), key("a.B"), "service-and-method-beat-service"),
    (key("a.B"), key(None, "LongMethodName"), "service-characters-first"),
    (key("a.Bc"), key("a.B", "Ping"), "longer-service-beats-method"),
    (key("a.B", "Ping2"), key("a.B", "Ping"), "longer-method-wins"),
    (key(None, "Ping"), key(headers=5), "method-beats-headers"),
    (key(headers=2), key(headers=1), "more-headers-win"),
    (key("a.B"), key("a.B", type_="RegularExpression"), "exact-before-same-length-regex"),
    (key(created=OLD, route="b/b"), key(created="2025", route="a/a"), "oldest-route"),
    (key(route="a/b"), key(route="b/a"), "namespace-name"),
    (key(rule=0), key(rule=1), "first-rule"),
]


@pytest.mark.parametrize(("winner", "loser"), [w[:2] for w in WINS], ids=[w[2] for w in WINS])
def test_precedence(winner: tuple[object, ...], loser: tuple[object, ...]) -> None:
    """The GRPCRoute specification's precedence, after hostnames."""
    assert winner < loser


PROTOCOLS = [
    ("GRPCRoute", None, "h2c"),
    ("GRPCRoute", "kubernetes.io/h2c", "h2c"),
    ("HTTPRoute", "kubernetes.io/h2c", "h2c"),
    ("HTTPRoute", None, "http1"),
    ("HTTPRoute", "http", "http1"),
]


@pytest.mark.parametrize(("kind", "app_protocol", "expected"), PROTOCOLS)
def test_upstream_protocol(kind: str, app_protocol: str | None, expected: str) -> None:
    """gRPC and appProtocol kubernetes.io/h2c use HTTP/2 cleartext; the rest HTTP/1.1."""
    assert upstream_protocol(kind, app_protocol) == expected


def objects(*routes: tuple[str, str, str, str]) -> list[dict[str, Any]]:
    """Our GatewayClass, one HTTP listener, and routes (kind, name, created, hostname)."""
    found: list[dict[str, Any]] = [
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": "gc"},
            "spec": {"controllerName": "gateway-xds.io/gatewayclass-controller"},
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": "default"},
            "spec": {
                "gatewayClassName": "gc",
                "listeners": [{"name": "http", "protocol": "HTTP", "port": 8080}],
            },
        },
    ]
    for kind, name, created, hostname in routes:
        meta = {"name": name, "namespace": "default", "creationTimestamp": created}
        spec = {"parentRefs": [{"name": "gw"}], "hostnames": [hostname], "rules": [{}]}
        found.append(
            {"apiVersion": "gateway.networking.k8s.io/v1", "kind": kind, "metadata": meta}
            | {"spec": spec}
        )
    return found


def accepted(objs: list[dict[str, Any]]) -> dict[str, str]:
    """Accepted reason of each route's first parent, by "Kind name"."""
    result = translate(objs, TranslateOptions())
    return {
        f"{s['kind']} {s['metadata']['name']}": s["status"]["parents"][0]["conditions"][0]["reason"]
        for s in result.statuses
        if s["kind"].endswith("Route")
    }


def test_cross_serving_loser_does_not_block() -> None:
    """A route that lost its listener does not keep a newer route of the other kind out."""
    objs = objects(
        ("HTTPRoute", "h1", "2024-01-01T00:00:00Z", "a.test"),
        ("GRPCRoute", "g1", "2024-01-02T00:00:00Z", "*.test"),  # loses to h1
        ("HTTPRoute", "h2", "2024-01-03T00:00:00Z", "b.test"),  # only meets g1, which lost
        ("GRPCRoute", "g2", "2024-01-04T00:00:00Z", "c.test"),
        ("HTTPRoute", "h3", "2024-01-05T00:00:00Z", "*.test"),  # meets g2
    )
    assert accepted(objs) == {
        "HTTPRoute h1": "Accepted",
        "HTTPRoute h2": "Accepted",
        "HTTPRoute h3": "NotAllowedByListeners",
        "GRPCRoute g1": "NotAllowedByListeners",
        "GRPCRoute g2": "Accepted",
    }


def test_cross_serving_same_kind_never_conflicts() -> None:
    """Routes of one kind share hostnames freely (precedence decides between them)."""
    objs = objects(
        ("GRPCRoute", "g1", "2024-01-01T00:00:00Z", "a.test"),
        ("GRPCRoute", "g2", "2024-01-02T00:00:00Z", "a.test"),
        ("HTTPRoute", "h1", "2024-01-03T00:00:00Z", "b.test"),
    )
    assert set(accepted(objs).values()) == {"Accepted"}
