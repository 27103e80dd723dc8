"""The steps every HTTP-like route kind (HTTPRoute, GRPCRoute) shares, written once.

For one route: attach it to listeners (``translator.attach``), give up the listeners where
it lost a hostname to a route of the other kind (``translator.crossserving``), resolve the
backendRefs of its valid rules (``translator.backends``), let the route kind turn each rule
into IR routes, give them the rule's filters and timeouts (``translator.route_filters``), and
build the route's status (Accepted, ResolvedRefs, PartiallyInvalid).

Called by ``translator.httproutes`` and ``translator.grpcroutes``, which only know their own
rules and matches. Pure, like the rest of the translator.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from translator import conditions as c
from translator import crossserving
from translator import route_filters as rf
from translator.attach import ParentResult, RouteIdentity, attach
from translator.backends import resolve
from translator.conditions import Condition, Problem
from translator.crossserving import Lost
from translator.gateways import GatewayState, ListenerState
from translator.ir import Cluster, Route, WeightedCluster
from translator.kube import CONTROLLER_NAME
from translator.model import BackendRef, ObjectName
from translator.parse import Inventory

PARTIALLY_INVALID = "PartiallyInvalid"


class RuleLike(Protocol):
    """What the shared steps read of a rule of any route kind."""

    @property
    def index(self) -> int: ...
    @property
    def name(self) -> str | None: ...
    @property
    def backends(self) -> tuple[BackendRef, ...]: ...
    @property
    def problems(self) -> tuple[Problem, ...]: ...


class RouteLike(crossserving.RouteFields, Protocol):
    """What the shared steps read of a route of any kind (its rules are passed apart)."""

    @property
    def other_parents(self) -> tuple[Mapping[str, Any], ...]: ...


RuleT = TypeVar("RuleT", bound=RuleLike)


@dataclass(frozen=True, slots=True)
class RouteContext:
    """What every route is translated against: Gateways, the objects read, listeners lost."""

    gateways: Mapping[ObjectName, GatewayState]
    inv: Inventory
    lost: Mapping[tuple[str, ObjectName], Lost] = field(default_factory=dict)


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


def translate_route(
    route: RouteLike,
    rules: Sequence[RuleT],
    build: Callable[[RuleT, tuple[WeightedCluster, ...]], list[Route]],
    ctx: RouteContext,
) -> RouteOutcome:
    """Attach ``route``, resolve its backends, build its IR routes with ``build``, and status."""
    identity = RouteIdentity(route.kind, route.meta.namespace, route.hostnames)
    parents = attach(identity, route.parent_refs, ctx.gateways, ctx.inv.namespaces)
    if not parents:
        return RouteOutcome((), (), (), None)
    lost = ctx.lost.get((route.kind, route.meta.key))
    if lost:
        parents = crossserving.without_lost(parents, lost)
    valid_rules = [rule for rule in rules if not rule.problems]
    clusters: dict[str, Cluster] = {}
    ref_problems: list[Problem] = []
    routes: list[Route] = []
    for rule in valid_rules:
        backends = _backends(route, rule, ctx.inv, clusters, ref_problems)
        mirrors = rf.resolve_mirrors(route, rule, ctx.inv, clusters, ref_problems)
        filters, backends = rf.rule_filters(rule, backends, mirrors, ref_problems)
        routes.extend(rf.with_filters(build(rule, backends), filters))
    accepted_everywhere = not route.problems and bool(valid_rules)
    entries = tuple(
        RouteEntry(attachment.listener, hostname, rf.on_listener(ir_route, attachment.listener))
        for parent in parents
        if parent.problem is None and accepted_everywhere
        for attachment in parent.attachments
        for hostname in attachment.hostnames
        for ir_route in routes
    )
    status = route_status(route, rules, parents, valid_rules, ref_problems)
    used = tuple(clusters.values()) if entries else ()
    return RouteOutcome(entries, used, parents, status)


def _backends(
    route: RouteLike,
    rule: RuleLike,
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
            shares.append(rf.backend_share(ref, name, problems))
    return tuple(shares)


def route_status(
    route: RouteLike,
    rules: Sequence[RuleLike],
    parents: tuple[ParentResult, ...],
    valid_rules: Sequence[RuleLike],
    ref_problems: list[Problem],
) -> dict[str, Any]:
    """The route's status: one entry per parentRef of ours, other controllers' entries kept."""
    generation = route.meta.generation
    rule_problems = [p for rule in rules for p in rule.problems]
    shared: list[Condition] = []
    if ref_problems:
        shared.append(c.failed(c.RESOLVED_REFS, c.join_problems(ref_problems)))
    else:
        shared.append(c.ok(c.RESOLVED_REFS, c.R_RESOLVED_REFS, "All references are resolved"))
    if rule_problems and valid_rules and not route.problems:
        dropped = c.join_problems(rule_problems)
        shown = ", ".join(_rule_label(rule) for rule in rules if rule.problems)
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


def _rule_label(rule: RuleLike) -> str:
    return f"{rule.index} ({rule.name})" if rule.name else str(rule.index)


def _accepted(
    parent: ParentResult,
    route: RouteLike,
    valid_rules: Sequence[RuleLike],
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
