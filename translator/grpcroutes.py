"""GRPCRoutes -> IR routes per listener and hostname, plus each route's status.

A step of ``translate`` beside ``translator.httproutes``: attachment, backends and status
are the shared ``translator.routeflow``; this module only compiles gRPC matches into the
HTTP/2 request matches of the IR (the same IR routes, virtual hosts and Envoy code as
HTTPRoutes), and orders them by the GRPCRoute specification's precedence.

A gRPC call is ``POST /service/method`` with ``content-type: application/grpc[+...]``:

    method match                       IR path match
    Exact, service and method          Exact /service/method
    Exact, service only                PathPrefix /service/
    Exact, method only                 RegularExpression /[^/]+/method
    RegularExpression                  RegularExpression /(?:service)/(?:method)
    none                               PathPrefix /

and every match also requires a gRPC content-type, so that other requests to a gRPC
hostname get a 404 instead of reaching a gRPC server. Unresolved backends answer 503, which
Envoy's gRPC local reply turns into status UNAVAILABLE, as the specification requires. The
backends themselves are reached over HTTP/2 cleartext (``translator.backends``). Filters
(RequestHeaderModifier, ResponseHeaderModifier, RequestMirror, ExtensionRef) are HTTPRoute's
filters, applied by ``translator.route_filters`` through ``translator.routeflow``.
"""

from __future__ import annotations

from translator import names
from translator.ir import Route, WeightedCluster
from translator.model import GRPCMatch, GRPCRoute, GRPCRule, HTTPMatch, PathMatch, ValueMatch
from translator.parse_grpc import method_path
from translator.routeflow import RouteContext, RouteOutcome, translate_route

GRPC_CONTENT_TYPE = ValueMatch("RegularExpression", "content-type", r"application/grpc(\+.*)?")
UNAVAILABLE = 503  # Envoy's gRPC local replies map HTTP 503 to grpc-status UNAVAILABLE
_ANY_CALL = PathMatch("PathPrefix", "/")


def translate_grpc_route(route: GRPCRoute, ctx: RouteContext) -> RouteOutcome:
    def build(rule: GRPCRule, backends: tuple[WeightedCluster, ...]) -> list[Route]:
        return _routes(route, rule, backends)

    return translate_route(route, route.rules, build, ctx)


def _routes(route: GRPCRoute, rule: GRPCRule, backends: tuple[WeightedCluster, ...]) -> list[Route]:
    meta = route.meta
    return [
        Route(
            name=names.route(route.kind, meta.namespace, meta.name, rule.index, index),
            match=http_match(match),
            backends=backends,
            precedence=precedence(match, meta.created, meta.key, rule.index, index),
            invalid_backend_status=UNAVAILABLE,
        )
        for index, match in enumerate(rule.matches)
    ]


def http_match(match: GRPCMatch) -> HTTPMatch:
    """The HTTP/2 request match a gRPC match stands for."""
    path = method_path(match.method) if match.method is not None else _ANY_CALL
    return HTTPMatch(path, (*match.headers, GRPC_CONTENT_TYPE), (), None)


def precedence(
    match: GRPCMatch, created: str, key: str, rule: int, index: int
) -> tuple[object, ...]:
    """Sort key of the GRPCRoute specification's precedence (smaller wins).

    Hostnames come first, and are the virtual hosts' business (``translator.virtualhosts``);
    then the most characters in the service, then in the method, more header matches, (an
    exact match before a regular expression of the same length: implementation-specific),
    the oldest route, the route first by namespace/name, and the first rule and match in the
    route. The key has the shape of ``httproutes.precedence`` (same types at each position),
    so keys of both kinds always compare, although cross serving keeps them on separate
    hostnames.
    """
    method = match.method
    service_length = len(method.service or "") if method is not None else 0
    method_length = len(method.method or "") if method is not None else 0
    regex = method is not None and method.type == "RegularExpression"
    return (
        -service_length,
        -method_length,
        -len(match.headers),
        regex,
        0,
        created,
        key,
        rule,
        index,
    )
