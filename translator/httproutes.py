"""HTTPRoutes -> IR routes per listener and hostname, plus each route's status.

Second step of ``translate``, after Gateways. Attachment, backend resolution and status are
shared by every route kind (``translator.routeflow``); this module only knows HTTP rules and
matches, and the Gateway API's precedence between them.
"""

from __future__ import annotations

from translator import names
from translator.ir import Route, WeightedCluster
from translator.model import HTTPMatch, HTTPRoute, HTTPRule
from translator.routeflow import RouteContext, RouteOutcome, translate_route

_PATH_RANK = {"Exact": 0, "RegularExpression": 1, "PathPrefix": 2}


def translate_http_route(route: HTTPRoute, ctx: RouteContext) -> RouteOutcome:
    def build(rule: HTTPRule, backends: tuple[WeightedCluster, ...]) -> list[Route]:
        return _routes(route, rule, backends)

    return translate_route(route, route.rules, build, ctx)


def _routes(route: HTTPRoute, rule: HTTPRule, backends: tuple[WeightedCluster, ...]) -> list[Route]:
    meta = route.meta
    return [
        Route(
            name=names.route(route.kind, meta.namespace, meta.name, rule.index, index),
            match=match,
            backends=backends,
            precedence=precedence(match, meta.created, meta.key, rule.index, index),
        )
        for index, match in enumerate(rule.matches)
    ]


def precedence(
    match: HTTPMatch, created: str, key: str, rule: int, index: int
) -> tuple[object, ...]:
    """Sort key of the Gateway API's matching precedence (smaller wins).

    Exact path, then the longest prefix (regular expressions, whose precedence the
    specification leaves to implementations, sit between exact and prefix matches), then a
    method match, more header matches, more query matches, the oldest route, the route first
    by namespace/name, and the first rule and match in the route.
    """
    path = match.path
    length = len(prefix_value(path.value)) if path.type == "PathPrefix" else len(path.value)
    return (
        _PATH_RANK[path.type],
        -length,
        match.method is None,
        -len(match.headers),
        -len(match.query),
        created,
        key,
        rule,
        index,
    )


def prefix_value(value: str) -> str:
    """A PathPrefix without its trailing slashes ("/" stays "/"): "/a/" and "/a" are equal."""
    return value.rstrip("/") or "/"
