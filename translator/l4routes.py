"""TLSRoutes, TCPRoutes and UDPRoutes: parse, attach, resolve backends, bind, status.

Called by ``translator.parse`` (``parse_l4_route`` for each route of these kinds, in
gateway.networking.k8s.io v1alpha2 or v1) and by ``translator.translate``
(``translate_l4_routes``). Attachment, backendRefs and the route status are the shared
steps of ``translator.routeflow`` (``attach``, ``backends``): these kinds only differ in
having no matches, so each rule becomes one catch-all IR route that carries its backends.

Binding: a TCP or UDP listener forwards to one route, and a TLS listener forwards each SNI
name to one route. When several routes attach to the same listener (and name), the oldest
wins (then namespace/name), as the Gateway API's conflict rules say; the others stay
Accepted (they are attached: the listener counts them) with a message saying they get no
traffic there. The binding is what ``translator.l4listeners`` turns into filter chains.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from translator import kube, names
from translator.attach import ParentResult
from translator.conditions import R_UNSUPPORTED_VALUE, Problem
from translator.ir import Cluster, Route, WeightedCluster
from translator.model import L4Route, L4Rule, ObjectName
from translator.parse import DEFAULT_MATCH, parse_backend_ref, parse_route_head
from translator.result import StatusEntry
from translator.routeflow import RouteContext, RouteEntry, RouteOutcome, translate_route

L4_KINDS = ("TLSRoute", "TCPRoute", "UDPRoute")
ANY_HOST = "*"


@dataclass(frozen=True, slots=True)
class L4Entry:
    """A route bound to a listener: all its traffic (TCP, UDP) or one SNI name (TLS)."""

    route: L4Route
    entry: RouteEntry  # listener, hostname ("*": any) and the rule's backends

    @property
    def backends(self) -> tuple[WeightedCluster, ...]:
        return self.entry.route.backends


@dataclass(frozen=True, slots=True)
class L4Routes:
    """Every TLS, TCP and UDP route translated: what is bound where, and their status."""

    bound: tuple[L4Entry, ...]
    clusters: Mapping[str, Cluster]
    outcomes: tuple[RouteOutcome, ...]  # every attachment, bound or not (attachedRoutes)
    statuses: tuple[StatusEntry, ...]


def parse_l4_route(body: Mapping[str, Any]) -> L4Route:
    head = parse_route_head(body)
    kind = kube.kind_of(body)
    tls = kind == "TLSRoute"
    raw_rules = kube.items(body, "spec", "rules")
    problems = list(head.problems) if tls else []
    if not raw_rules:
        problems.append(Problem(R_UNSUPPORTED_VALUE, f"a {kind} needs one rule"))
    rules = tuple(
        _parse_rule(index, kube.mapping(raw), head.meta.namespace, kind)
        for index, raw in enumerate(raw_rules)
    )
    return L4Route(
        kind=kind,
        api_version=kube.string(body, "apiVersion"),
        meta=head.meta,
        parent_refs=head.parent_refs,
        hostnames=head.hostnames if tls else (),
        rules=rules,
        problems=tuple(problems),
        other_parents=head.other_parents,
    )


def _parse_rule(index: int, raw: Mapping[str, Any], namespace: str, kind: str) -> L4Rule:
    problems: list[Problem] = []
    backends = []
    for raw_ref in kube.items(raw, "backendRefs"):
        ref, ref_problems = parse_backend_ref(kube.mapping(raw_ref), namespace)
        backends.append(ref)
        problems.extend(ref_problems)
    if kind == "UDPRoute" and len(backends) > 1:
        message = "a UDPRoute rule with more than one backendRef is not supported"
        problems.append(Problem(R_UNSUPPORTED_VALUE, message))
    if index > 0:  # v1 allows one rule; v1alpha2 allowed more, but nothing chooses between them
        message = f"only the first rule of a {kind} is used (rules have no matches)"
        problems.append(Problem(R_UNSUPPORTED_VALUE, message))
    return L4Rule(index, kube.optional_string(raw, "name"), tuple(backends), tuple(problems))


def translate_l4_routes(routes: tuple[L4Route, ...], ctx: RouteContext) -> L4Routes:
    """Attach every route, bind the oldest per listener and SNI name, and build statuses."""
    outcomes = tuple(translate_route(route, route.rules, _builder(route), ctx) for route in routes)
    attached = [
        L4Entry(route, entry)
        for route, outcome in zip(routes, outcomes, strict=True)
        for entry in outcome.entries
    ]
    bound = _bind(attached)
    winners = {
        (e.entry.listener.gateway, e.entry.listener.listener.name, e.route.meta.key) for e in bound
    }
    statuses = tuple(
        _status_entry(route, outcome, winners)
        for route, outcome in zip(routes, outcomes, strict=True)
        if outcome.status is not None
    )
    clusters = {c.name: c for outcome in outcomes for c in outcome.clusters}
    return L4Routes(bound, clusters, outcomes, statuses)


def _builder(route: L4Route) -> Callable[[L4Rule, tuple[WeightedCluster, ...]], list[Route]]:
    """The IR of a rule: one catch-all route carrying its backends (no backends: refused)."""
    meta = route.meta

    def build(rule: L4Rule, backends: tuple[WeightedCluster, ...]) -> list[Route]:
        name = names.route(route.kind, meta.namespace, meta.name, rule.index, 0)
        return [Route(name, DEFAULT_MATCH, backends, (meta.created, meta.key, rule.index))]

    return build


def _bind(attached: list[L4Entry]) -> tuple[L4Entry, ...]:
    """The oldest route (then namespace/name) of each listener and hostname."""
    winners: dict[tuple[str, str, str], L4Entry] = {}
    for entry in sorted(attached, key=lambda e: e.entry.route.precedence):
        listener = entry.entry.listener
        key = (listener.gateway, listener.listener.name, entry.entry.hostname)
        winners.setdefault(key, entry)
    return tuple(winners[key] for key in sorted(winners))


def _status_entry(
    route: L4Route, outcome: RouteOutcome, winners: set[tuple[ObjectName, str, ObjectName]]
) -> StatusEntry:
    status = dict(outcome.status or {})
    parents = list(status.get("parents", []))
    for index, parent in enumerate(outcome.parents):
        unbound = _unbound_listeners(route, parent, winners)
        if unbound:
            parents[index] = _with_note(parents[index], unbound)
    status["parents"] = parents
    meta = route.meta
    return {
        "apiVersion": route.api_version,
        "kind": route.kind,
        "metadata": {"namespace": meta.namespace, "name": meta.name},
        "status": status,
    }


def _unbound_listeners(
    route: L4Route, parent: ParentResult, winners: set[tuple[ObjectName, str, ObjectName]]
) -> list[str]:
    if parent.problem is not None:
        return []
    return [
        a.listener.listener.name
        for a in parent.attachments
        if (a.listener.gateway, a.listener.listener.name, route.meta.key) not in winners
    ]


def _with_note(parent: Mapping[str, Any], listeners: list[str]) -> dict[str, Any]:
    """The Accepted condition (still True: the route is attached) says it gets no traffic."""
    shown = ", ".join(listeners)
    note = f"; an older route is bound to listener(s) {shown}: this route gets no traffic there"
    conditions = [
        {**cond, "message": cond["message"] + note}
        if cond.get("type") == "Accepted" and cond.get("status") == "True"
        else cond
        for cond in parent.get("conditions", [])
    ]
    return {**parent, "conditions": conditions}
