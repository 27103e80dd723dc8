"""Route attachment, written once for every route kind.

For each parentRef of a route: is the parent one of our Gateways, which of its listeners
match sectionName and port, which of those allow the route (namespace and kind), and which
hostnames the route serves on each (intersection with the listener's hostname). The result
says either where the route attaches or why it does not, with the Gateway API's reasons.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from translator import conditions as c
from translator import hostnames
from translator.conditions import Problem
from translator.gateways import GatewayState, ListenerState
from translator.kube import GATEWAY_GROUP
from translator.model import Namespace, ObjectName, ParentRef, RouteKind, object_name


@dataclass(frozen=True, slots=True)
class Attachment:
    listener: ListenerState
    hostnames: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ParentResult:
    """One parentRef of ours: where the route attached, or why not."""

    ref: ParentRef
    attachments: tuple[Attachment, ...]
    problem: Problem | None


@dataclass(frozen=True, slots=True)
class RouteIdentity:
    kind: str
    namespace: str
    hostnames: tuple[str, ...]


def attach(
    route: RouteIdentity,
    parents: tuple[ParentRef, ...],
    gateways: Mapping[ObjectName, GatewayState],
    namespaces: Mapping[str, Namespace],
) -> tuple[ParentResult, ...]:
    """Results for the parentRefs that name Gateways of ours (others are not ours to judge)."""
    results = []
    for ref in parents:
        if ref.group != GATEWAY_GROUP or ref.kind != "Gateway":
            continue
        state = gateways.get(object_name(ref.namespace, ref.name))
        if state is None:
            continue
        results.append(_attach_one(route, ref, state, namespaces))
    return tuple(results)


def _attach_one(
    route: RouteIdentity,
    ref: ParentRef,
    state: GatewayState,
    namespaces: Mapping[str, Namespace],
) -> ParentResult:
    if not state.accepted:
        problem = Problem(
            c.R_NO_MATCHING_PARENT, f"Gateway {ref.namespace}/{ref.name} is not accepted"
        )
        return ParentResult(ref, (), problem)
    candidates = [
        ls
        for ls in state.listeners
        if (ref.section_name is None or ls.listener.name == ref.section_name)
        and (ref.port is None or ls.listener.port == ref.port)
    ]
    if not candidates:
        return ParentResult(ref, (), Problem(c.R_NO_MATCHING_PARENT, _no_parent_message(ref)))
    allowed = [ls for ls in candidates if ls.valid and _allows(ls, route, namespaces)]
    if not allowed:
        message = f"no listener of Gateway {ref.namespace}/{ref.name} allows this route"
        return ParentResult(ref, (), Problem(c.R_NOT_ALLOWED_BY_LISTENERS, message))
    attachments = []
    for ls in allowed:
        served = hostnames.intersect(ls.listener.hostname, route.hostnames)
        if served:
            attachments.append(Attachment(ls, served))
    if not attachments:
        message = "no hostname of the route matches a listener hostname"
        return ParentResult(ref, (), Problem(c.R_NO_MATCHING_LISTENER_HOSTNAME, message))
    return ParentResult(ref, tuple(attachments), None)


def _no_parent_message(ref: ParentRef) -> str:
    wanted = []
    if ref.section_name is not None:
        wanted.append(f"sectionName {ref.section_name!r}")
    if ref.port is not None:
        wanted.append(f"port {ref.port}")
    return f"Gateway {ref.namespace}/{ref.name} has no listener with " + " and ".join(wanted)


def _allows(ls: ListenerState, route: RouteIdentity, namespaces: Mapping[str, Namespace]) -> bool:
    if RouteKind(GATEWAY_GROUP, route.kind) not in ls.supported_kinds:
        return False
    listener = ls.listener
    if listener.namespaces_from == "All":
        return True
    if listener.namespaces_from == "Same":
        return route.namespace == ls.gateway_namespace
    if listener.selector is None:
        return False
    namespace = namespaces.get(route.namespace)
    labels = dict(namespace.labels) if namespace else {}
    labels.setdefault("kubernetes.io/metadata.name", route.namespace)
    return listener.selector.matches(labels)
