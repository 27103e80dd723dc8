"""GatewayClasses and Gateways: which are ours, which listeners are valid, and their status.

First step of ``translate``: everything later attaches routes to the ``ListenerState``
values built here. Listener problems (unsupported protocol, bad hostname, conflicts,
unsupported route kinds) are values that become conditions; a bad listener never stops the
other listeners of its Gateway.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from translator import conditions as c
from translator import features
from translator.conditions import Condition, Problem
from translator.ir import TLSCertificate
from translator.kube import CONTROLLER_NAME, GATEWAY_GROUP
from translator.model import Gateway, GatewayClass, Listener, ObjectName, RouteKind

# Route kinds each listener protocol accepts.
KINDS_BY_PROTOCOL: Mapping[str, tuple[RouteKind, ...]] = {
    "HTTP": (RouteKind(GATEWAY_GROUP, "HTTPRoute"), RouteKind(GATEWAY_GROUP, "GRPCRoute")),
    "HTTPS": (RouteKind(GATEWAY_GROUP, "HTTPRoute"), RouteKind(GATEWAY_GROUP, "GRPCRoute")),
    "TLS": (RouteKind(GATEWAY_GROUP, "TLSRoute"),),
    "TCP": (RouteKind(GATEWAY_GROUP, "TCPRoute"),),
    "UDP": (RouteKind(GATEWAY_GROUP, "UDPRoute"),),
}

# Listeners of different protocols may share a port only within one of these families: one
# Envoy listener serves the port (HTTPS and TLS both choose a filter chain by SNI), and a
# UDP port is another socket than the TCP port of the same number.
PORT_FAMILIES: Mapping[str, str] = {
    "HTTP": "HTTP",
    "HTTPS": "TLS",
    "TLS": "TLS",
    "TCP": "TCP",
    "UDP": "UDP",
}


@dataclass(frozen=True, slots=True)
class ListenerState:
    gateway: ObjectName
    gateway_namespace: str
    listener: Listener
    supported_kinds: tuple[RouteKind, ...]
    accepted: Problem | None  # why the listener is not accepted
    conflict: Problem | None
    refs: Problem | None  # why ResolvedRefs is False
    # TLS termination (translator.tls): the usable certificateRefs, and what is wrong with
    # the others; a listener that must terminate TLS and has no usable certificate is invalid.
    certificates: tuple[TLSCertificate, ...] = ()
    certificate_problem: Problem | None = None
    extra: tuple[Condition, ...] = ()  # conditions only some listeners have (OverlappingTLSConfig)

    @property
    def valid(self) -> bool:
        """Routes can attach and the listener is programmed.

        Unsupported route kinds (ResolvedRefs False) do not stop the supported ones: the
        specification says the valid kinds are used when both are given.
        """
        no_certificate = self.certificate_problem is not None and not self.certificates
        return (
            self.accepted is None
            and self.conflict is None
            and bool(self.supported_kinds)
            and not no_certificate
        )

    def conditions(self) -> tuple[Condition, ...]:
        accepted = (
            c.failed(c.ACCEPTED, self.accepted)
            if self.accepted
            else c.ok(c.ACCEPTED, c.R_ACCEPTED, "Listener is accepted")
        )
        programmed = (
            c.ok(c.PROGRAMMED, c.R_PROGRAMMED, "Listener is programmed")
            if self.valid
            else c.failed(c.PROGRAMMED, Problem(c.R_INVALID, "Listener is invalid"))
        )
        unresolved = [p for p in (self.certificate_problem, self.refs) if p is not None]
        refs = (
            c.failed(c.RESOLVED_REFS, c.join_problems(unresolved))
            if unresolved
            else c.ok(c.RESOLVED_REFS, c.R_RESOLVED_REFS, "All references are resolved")
        )
        conflict = (
            Condition(c.CONFLICTED, True, self.conflict.reason, self.conflict.message)
            if self.conflict
            else Condition(c.CONFLICTED, False, c.R_NO_CONFLICTS, "No conflicts")
        )
        return (accepted, programmed, refs, conflict, *self.extra)


@dataclass(frozen=True, slots=True)
class GatewayState:
    gateway: Gateway
    listeners: tuple[ListenerState, ...]
    problem: Problem | None  # why the whole Gateway is not accepted

    @property
    def accepted(self) -> bool:
        return self.problem is None and any(ls.valid for ls in self.listeners)


def our_classes(classes: tuple[GatewayClass, ...]) -> dict[str, GatewayClass]:
    return {gc.meta.name: gc for gc in classes if gc.controller == CONTROLLER_NAME}


def class_status(gc: GatewayClass) -> dict[str, Any]:
    """Accepted, SupportedVersion and the features we support, as the class's status."""
    if gc.parameters_ref:
        problem = Problem(c.R_INVALID_PARAMETERS, "parametersRef is not supported")
        accepted = c.failed(c.ACCEPTED, problem)
    else:
        accepted = c.ok(c.ACCEPTED, c.R_ACCEPTED, "GatewayClass is accepted")
    version = c.ok(
        c.SUPPORTED_VERSION,
        c.R_SUPPORTED_VERSION,
        f"gateway-xds implements Gateway API {features.GATEWAY_API_VERSION}",
    )
    generation = gc.meta.generation
    return {
        "conditions": [cond.as_json(generation) for cond in (accepted, version)],
        "supportedFeatures": [{"name": name} for name in features.SUPPORTED_FEATURES],
    }


def gateway_states(
    gateways: tuple[Gateway, ...], classes: Mapping[str, GatewayClass]
) -> tuple[GatewayState, ...]:
    """The state of every Gateway whose class is ours, in namespace/name order."""
    states = []
    for gateway in gateways:
        gc = classes.get(gateway.class_name)
        if gc is None:
            continue
        problem = None
        if gc.parameters_ref:
            problem = Problem(c.R_PENDING, f"GatewayClass {gc.meta.name} is not accepted")
        elif gateway.has_addresses:
            problem = Problem(c.R_UNSUPPORTED_ADDRESS, "spec.addresses is not supported")
        states.append(GatewayState(gateway, listener_states(gateway), problem))
    return tuple(states)


def listener_states(gateway: Gateway) -> tuple[ListenerState, ...]:
    names = Counter(listener.name for listener in gateway.listeners)
    conflicts = _conflicts(tuple(ls for ls in gateway.listeners if not ls.problems))
    states = []
    for listener in gateway.listeners:
        accepted = _accepted_problem(listener, names) or _unenforced_tls(gateway, listener)
        kinds, refs = _kinds(listener)
        states.append(
            ListenerState(
                gateway=gateway.meta.key,
                gateway_namespace=gateway.meta.namespace,
                listener=listener,
                supported_kinds=kinds,
                accepted=accepted,
                conflict=conflicts.get(listener.name),
                refs=refs,
            )
        )
    return tuple(states)


def _accepted_problem(listener: Listener, names: Counter[str]) -> Problem | None:
    if not listener.name:
        return Problem(c.R_UNSUPPORTED_VALUE, "listener has no name")
    if names[listener.name] > 1:
        return Problem(c.R_UNSUPPORTED_VALUE, f"listener name {listener.name!r} is not unique")
    if listener.problems:
        return c.join_problems(listener.problems)
    return None


def _unenforced_tls(gateway: Gateway, listener: Listener) -> Problem | None:
    """Fail closed: a listener terminating TLS is not served while spec.tls is ignored.

    Gateway spec.tls asks for client certificate validation (and backend client
    certificates); serving TLS without it would silently accept clients it should refuse.
    """
    if not gateway.has_tls_settings or listener.tls is None or listener.tls.mode != "Terminate":
        return None
    message = "Gateway spec.tls (client certificate validation) is not supported yet"
    return Problem(c.R_UNSUPPORTED_VALUE, message)


def _conflicts(listeners: tuple[Listener, ...]) -> dict[str, Problem]:
    """Listeners that share a port with an incompatible protocol or the same hostname."""
    found: dict[str, Problem] = {}
    by_port: dict[tuple[int, bool], list[Listener]] = {}
    for listener in listeners:
        udp = PORT_FAMILIES.get(listener.protocol) == "UDP"
        by_port.setdefault((listener.port, udp), []).append(listener)
    for (port, _udp), group in by_port.items():
        if len({PORT_FAMILIES.get(ls.protocol, ls.protocol) for ls in group}) > 1:
            for ls in group:
                message = f"port {port} is used by listeners of different protocols"
                found[ls.name] = Problem(c.R_PROTOCOL_CONFLICT, message)
            continue
        hostnames = Counter(ls.hostname for ls in group)
        for ls in group:
            if hostnames[ls.hostname] > 1:
                shown = ls.hostname or "(no hostname)"
                message = f"port {port} has more than one listener for hostname {shown}"
                found[ls.name] = Problem(c.R_HOSTNAME_CONFLICT, message)
    return found


def _kinds(listener: Listener) -> tuple[tuple[RouteKind, ...], Problem | None]:
    allowed = KINDS_BY_PROTOCOL.get(listener.protocol, ())
    if listener.kinds is None:
        return allowed, None
    supported = tuple(dict.fromkeys(k for k in listener.kinds if k in allowed))
    invalid = [k for k in listener.kinds if k not in allowed]
    if not invalid:
        return supported, None
    shown = ", ".join(f"{k.group}/{k.kind}" for k in invalid)
    message = f"route kinds not supported on a {listener.protocol} listener: {shown}"
    return supported, Problem(c.R_INVALID_ROUTE_KINDS, message)


def gateway_status(state: GatewayState, attached: Mapping[tuple[str, str], int]) -> dict[str, Any]:
    """The Gateway's status; ``attached`` counts routes by (gateway key, listener name)."""
    generation = state.gateway.meta.generation
    listeners = [
        {
            "name": ls.listener.name,
            "supportedKinds": [k.as_json() for k in ls.supported_kinds],
            "attachedRoutes": attached.get((ls.gateway, ls.listener.name), 0),
            "conditions": [cond.as_json(generation) for cond in ls.conditions()],
        }
        for ls in state.listeners
    ]
    return {
        "conditions": [cond.as_json(generation) for cond in _gateway_conditions(state)],
        "listeners": listeners,
    }


def _gateway_conditions(state: GatewayState) -> tuple[Condition, Condition]:
    if state.problem is not None:
        not_programmed = Problem(c.R_INVALID, state.problem.message)
        return c.failed(c.ACCEPTED, state.problem), c.failed(c.PROGRAMMED, not_programmed)
    valid = sum(ls.valid for ls in state.listeners)
    if not valid:
        names = ", ".join(ls.listener.name for ls in state.listeners) or "(none)"
        problem = Problem(c.R_LISTENERS_NOT_VALID, f"no listener can be programmed: {names}")
        invalid = Problem(c.R_INVALID, f"no listener can be programmed: {names}")
        return c.failed(c.ACCEPTED, problem), c.failed(c.PROGRAMMED, invalid)
    if valid < len(state.listeners):
        names = ", ".join(ls.listener.name for ls in state.listeners if not ls.valid)
        accepted = Condition(
            c.ACCEPTED, True, c.R_LISTENERS_NOT_VALID, f"listeners not valid: {names}"
        )
    else:
        accepted = c.ok(c.ACCEPTED, c.R_ACCEPTED, "Gateway is accepted")
    return accepted, c.ok(c.PROGRAMMED, c.R_PROGRAMMED, "Gateway is programmed")
