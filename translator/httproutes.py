"""HTTPRoutes -> IR routes per listener and hostname, plus each route's status.

Second step of ``translate``, after Gateways. Attachment and backend resolution are the
shared ``attach`` and ``backends`` modules; this module only knows HTTP rules and matches,
and the Gateway API's precedence between them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from translator import conditions as c
from translator import names
from translator.attach import ParentResult, RouteIdentity, attach
from translator.backends import resolve
from translator.conditions import Condition, Problem
from translator.gateways import GatewayState, ListenerState
from translator.ir import Cluster, Route, WeightedCluster
from translator.kube import CONTROLLER_NAME
from translator.model import HTTPMatch, HTTPRoute, HTTPRule, ObjectName
from translator.parse import Inventory

PARTIALLY_INVALID = "PartiallyInvalid"
_PATH_RANK = {"Exact": 0, "RegularExpression": 1, "PathPrefix": 2}


@dataclass(frozen=True, slots=True)
class RouteEntry:
    """An IR route served on one listener for one hostname."""

    listener: ListenerState
    hostname: str
    route: Route


@dataclass(frozen=True, slots=True)
class RouteOutcome:
    entries: tuple[RouteEntry, ...]
    clusters: tuple[Cluster, ...]
    parents: tuple[ParentResult, ...]
    status: Mapping[str, Any] | None  # None: no parent of ours, nothing to write


def translate_http_route(
    route: HTTPRoute, gateways: Mapping[ObjectName, GatewayState], inv: Inventory
) -> RouteOutcome:
    identity = RouteIdentity(route.kind, route.meta.namespace, route.hostnames)
    parents = attach(identity, route.parent_refs, gateways, inv.namespaces)
    if not parents:
        return RouteOutcome((), (), (), None)
    valid_rules = [rule for rule in route.rules if not rule.problems]
    clusters: dict[str, Cluster] = {}
    ref_problems: list[Problem] = []
    routes: list[Route] = []
    for rule in valid_rules:
        backends = _backends(route, rule, inv, clusters, ref_problems)
        routes.extend(_routes(route, rule, backends))
    accepted_everywhere = not route.problems and bool(valid_rules)
    entries = tuple(
        RouteEntry(attachment.listener, hostname, ir_route)
        for parent in parents
        if parent.problem is None and accepted_everywhere
        for attachment in parent.attachments
        for hostname in attachment.hostnames
        for ir_route in routes
    )
    status = _status(route, parents, valid_rules, ref_problems)
    used = tuple(clusters.values()) if entries else ()
    return RouteOutcome(entries, used, parents, status)


def _backends(
    route: HTTPRoute,
    rule: HTTPRule,
    inv: Inventory,
    clusters: dict[str, Cluster],
    problems: list[Problem],
) -> tuple[WeightedCluster, ...]:
    shares = []
    for ref in rule.backends:
        resolved = resolve(ref, route.kind, route.meta.namespace, inv)
        if resolved.problem is not None:
            problems.append(resolved.problem)
        if resolved.cluster is not None:
            clusters[resolved.cluster.name] = resolved.cluster
        if ref.weight > 0:
            name = resolved.cluster.name if resolved.cluster else None
            shares.append(WeightedCluster(name, ref.weight))
    return tuple(shares)


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


def _status(
    route: HTTPRoute,
    parents: tuple[ParentResult, ...],
    valid_rules: list[HTTPRule],
    ref_problems: list[Problem],
) -> dict[str, Any]:
    generation = route.meta.generation
    rule_problems = [p for rule in route.rules for p in rule.problems]
    shared: list[Condition] = []
    if ref_problems:
        shared.append(c.failed(c.RESOLVED_REFS, c.join_problems(ref_problems)))
    else:
        shared.append(c.ok(c.RESOLVED_REFS, c.R_RESOLVED_REFS, "All references are resolved"))
    if rule_problems and valid_rules and not route.problems:
        dropped = c.join_problems(rule_problems)
        shown = ", ".join(_rule_label(rule) for rule in route.rules if rule.problems)
        message = f"Dropped Rule(s) {shown}: {dropped.message}"
        shared.append(Condition(PARTIALLY_INVALID, True, dropped.reason, message))
    entries = []
    for parent in parents:
        accepted = _accepted(parent, route, valid_rules, rule_problems)
        conditions = [accepted, *shared]
        entries.append(
            {
                "parentRef": dict(parent.ref.as_written),
                "controllerName": CONTROLLER_NAME,
                "conditions": [cond.as_json(generation) for cond in conditions],
            }
        )
    return {"parents": [*entries, *(dict(p) for p in route.other_parents)]}


def _rule_label(rule: HTTPRule) -> str:
    return f"{rule.index} ({rule.name})" if rule.name else str(rule.index)


def _accepted(
    parent: ParentResult,
    route: HTTPRoute,
    valid_rules: list[HTTPRule],
    rule_problems: list[Problem],
) -> Condition:
    if parent.problem is not None:
        return c.failed(c.ACCEPTED, parent.problem)
    if route.problems:
        return c.failed(c.ACCEPTED, c.join_problems(route.problems))
    if not valid_rules:
        problem = c.join_problems(rule_problems)
        return c.failed(c.ACCEPTED, Problem(problem.reason, f"No valid rule: {problem.message}"))
    return c.ok(c.ACCEPTED, c.R_ACCEPTED, "Route is accepted")
