"""Cross serving: an HTTPRoute and a GRPCRoute never share a hostname on one listener.

The GRPCRoute specification (spec.hostnames): when a route of one of the two kinds attaches
to a listener that has a route of the other kind attached, and their hostnames intersect,
exactly one of them is accepted there: the oldest (creationTimestamp), then the first by
"{namespace}/{name}". The other one loses that listener; a parentRef left with no listener
gets Accepted False, reason NotAllowedByListeners (the specification names no reason for
this; of the route reasons it lists, that one says what happened: the listener refuses the
route), with a message naming the route that kept the hostname.

Hostnames are compared as served on the listener (after intersection with the listener's
hostname); two intersect when one covers the other. Only routes that would be accepted
(no route-wide problem, at least one valid rule) take part. Routes are settled in age order,
so a route that lost never keeps a newer one out.

``lost_listeners`` runs once per translation, before any route is translated;
``without_lost`` is applied to each route's attachment by ``translator.routeflow``. Its two
halves, ``route_claims`` and ``settle``, are what ``translator.crossserving_memo`` redoes
route by route for the incremental translator.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from translator import hostnames
from translator.attach import Attachment, ParentResult, RouteIdentity, attach
from translator.conditions import R_NOT_ALLOWED_BY_LISTENERS, Problem
from translator.gateways import GatewayState
from translator.model import Meta, Namespace, ObjectName, ParentRef
from translator.parse import Inventory

CROSS_KINDS = frozenset({"HTTPRoute", "GRPCRoute"})

# (Gateway, listener name) -> "Kind namespace/name" of the route that kept the hostname.
Lost = Mapping[tuple[ObjectName, str], str]


class _HasProblems(Protocol):
    @property
    def problems(self) -> tuple[Problem, ...]: ...


class RouteFields(Protocol):
    """What every step reads of a route of any kind (HTTPRoute, GRPCRoute)."""

    @property
    def kind(self) -> str: ...
    @property
    def meta(self) -> Meta: ...
    @property
    def parent_refs(self) -> tuple[ParentRef, ...]: ...
    @property
    def hostnames(self) -> tuple[str, ...]: ...
    @property
    def problems(self) -> tuple[Problem, ...]: ...


class ClaimingRoute(RouteFields, Protocol):
    @property
    def rules(self) -> Sequence[_HasProblems]: ...


@dataclass(frozen=True, slots=True)
class Claim:
    created: str
    key: ObjectName
    kind: str
    hostnames: tuple[str, ...]

    @property
    def shown(self) -> str:
        return f"{self.kind} {self.key}"


def lost_listeners(
    inv: Inventory, gateways: Mapping[ObjectName, GatewayState]
) -> dict[tuple[str, ObjectName], Lost]:
    """Per route (kind, namespace/name): the listeners it lost, and to which route."""
    if not inv.http_routes or not inv.grpc_routes:
        return {}
    routes: list[ClaimingRoute] = [*inv.http_routes, *inv.grpc_routes]
    claims = _claims(routes, gateways, inv.namespaces)
    lost: dict[tuple[str, ObjectName], dict[tuple[ObjectName, str], str]] = {}
    for where, group in claims.items():
        if len({claim.kind for claim in group}) < 2:
            continue
        for loser, winner in settle(group):
            lost.setdefault((loser.kind, loser.key), {})[where] = winner.shown
    return dict(lost)


def _claims(
    routes: Iterable[ClaimingRoute],
    gateways: Mapping[ObjectName, GatewayState],
    namespaces: Mapping[str, Namespace],
) -> dict[tuple[ObjectName, str], list[Claim]]:
    """The hostnames each route that would be accepted serves, per listener."""
    claims: dict[tuple[ObjectName, str], list[Claim]] = {}
    for route in routes:
        for where, claim in route_claims(route, gateways, namespaces):
            claims.setdefault(where, []).append(claim)
    return claims


def route_claims(
    route: ClaimingRoute,
    gateways: Mapping[ObjectName, GatewayState],
    namespaces: Mapping[str, Namespace],
) -> list[tuple[tuple[ObjectName, str], Claim]]:
    """The hostnames one route serves per listener, if it would be accepted (else none)."""
    if route.kind not in CROSS_KINDS or route.problems:
        return []
    if all(rule.problems for rule in route.rules):
        return []
    identity = RouteIdentity(route.kind, route.meta.namespace, route.hostnames)
    return [
        (_where(found), Claim(route.meta.created, route.meta.key, route.kind, found.hostnames))
        for parent in attach(identity, route.parent_refs, gateways, namespaces)
        for found in (parent.attachments if parent.problem is None else ())
    ]


def settle(group: list[Claim]) -> list[tuple[Claim, Claim]]:
    """(loser, winner) pairs of one listener, deciding the claims oldest first."""
    kept: dict[str, dict[str, Claim]] = {}  # kind -> hostname -> first claim keeping it
    pairs = []
    for claim in sorted(group, key=lambda c: (c.created, c.key, c.kind)):
        others = [hosts for kind, hosts in kept.items() if kind != claim.kind]
        winner = next((w for hosts in others if (w := _intersecting(claim, hosts))), None)
        if winner is not None:
            pairs.append((claim, winner))
            continue
        mine = kept.setdefault(claim.kind, {})
        for host in claim.hostnames:
            mine.setdefault(host, claim)
    return pairs


def _intersecting(claim: Claim, kept: Mapping[str, Claim]) -> Claim | None:
    """A kept claim with a hostname that covers one of ``claim``'s, or is covered by one."""
    for host in claim.hostnames:
        for pattern in hostnames.patterns_covering(host):
            if (found := kept.get(pattern)) is not None:
                return found
        if host == hostnames.ANY or host.startswith("*."):
            for other, found in kept.items():
                if hostnames.covers(host, other):
                    return found
    return None


def without_lost(parents: tuple[ParentResult, ...], lost: Lost) -> tuple[ParentResult, ...]:
    """``parents`` without the listeners in ``lost``; a parent left with none is refused."""
    result = []
    for parent in parents:
        if parent.problem is not None:
            result.append(parent)
            continue
        kept = tuple(a for a in parent.attachments if _where(a) not in lost)
        if kept:
            result.append(replace(parent, attachments=kept))
            continue
        messages = [
            f"listener {a.listener.listener.name} of Gateway {a.listener.gateway} already "
            f"serves an intersecting hostname for {lost[_where(a)]} (older, or first by "
            "namespace/name)"
            for a in parent.attachments
        ]
        problem = Problem(R_NOT_ALLOWED_BY_LISTENERS, "; ".join(dict.fromkeys(messages)))
        result.append(ParentResult(parent.ref, (), problem))
    return tuple(result)


def _where(attachment: Attachment) -> tuple[ObjectName, str]:
    return (attachment.listener.gateway, attachment.listener.listener.name)
