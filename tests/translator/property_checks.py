"""What every translation must satisfy, as plain checks: the oracle of test_properties.py.

``status_problems(objects, result, kinds)`` compares the status entries with what the raw
objects call for: which objects are ours, one parent entry per parentRef naming a Gateway of
ours, condition types, reasons and observedGeneration, and whether Programmed and
attachedRoutes agree with the resources and the routes. It returns a list of messages
(empty: all good), so a test shows every problem of one example. ``resource_checks`` does
the same for the Envoy resources.

Raw objects are read the way the translator documents it: a field of the wrong JSON type
reads as missing. The allowed reasons are the Gateway API's own, listed in
apis/v1/shared_types.go (routes), gateway_types.go and gatewayclass_types.go.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

from translator import TranslationResult
from translator.kube import CONTROLLER_NAME, GATEWAY_GROUP


def reasons(words: str) -> frozenset[str]:
    return frozenset(words.split())


ROUTE_REASONS: Mapping[str, frozenset[str]] = {
    "Accepted": reasons(
        "Accepted NotAllowedByListeners NoMatchingListenerHostname NoMatchingParent"
        " UnsupportedValue Pending IncompatibleFilters"
    ),
    "ResolvedRefs": reasons(
        "ResolvedRefs RefNotPermitted InvalidKind BackendNotFound UnsupportedProtocol"
    ),
}
# PartiallyInvalid names no reasons of its own: those of why the rules were dropped.
ROUTE_REASONS = {**ROUTE_REASONS, "PartiallyInvalid": frozenset().union(*ROUTE_REASONS.values())}
GATEWAY_REASONS: Mapping[str, frozenset[str]] = {
    "Accepted": reasons(
        "Accepted ListenersNotValid Invalid InvalidParameters NotReconciled UnsupportedAddress"
        " Pending"
    ),
    "Programmed": reasons(
        "Programmed Invalid Pending NoResources AddressNotAssigned AddressNotUsable"
    ),
    "ResolvedRefs": reasons(
        "ResolvedRefs RefNotPermitted InvalidClientCertificateRef ListenersNotResolved"
    ),
}
LISTENER_REASONS: Mapping[str, frozenset[str]] = {
    "Accepted": reasons(
        "Accepted PortUnavailable UnsupportedProtocol NoValidCACertificate UnsupportedValue Pending"
    ),
    "Programmed": reasons("Programmed Invalid Pending"),
    "ResolvedRefs": reasons(
        "ResolvedRefs InvalidCertificateRef InvalidRouteKinds RefNotPermitted"
        " InvalidCACertificateRef InvalidCACertificateKind"
    ),
    "Conflicted": reasons("HostnameConflict ProtocolConflict NoConflicts"),
    "OverlappingTLSConfig": reasons("OverlappingHostnames OverlappingCertificates"),
}
CLASS_REASONS: Mapping[str, frozenset[str]] = {
    "Accepted": reasons("Accepted InvalidParameters Pending Unsupported Waiting"),
    "SupportedVersion": reasons("SupportedVersion UnsupportedVersion"),
}
RESERVED_TYPES = frozenset({"Ready", "Scheduled", "Detached"})  # reserved or deprecated
_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")  # metav1.Condition's
MAX_MESSAGE = 32768

# --- raw objects, read as the translator does ------------------------------------------------


def get(body: Any, *path: str) -> Any:
    for key in path:
        body = body.get(key) if isinstance(body, dict) else None
    return body


def text(body: Any, *path: str, default: str = "") -> str:
    value = get(body, *path)
    return value if isinstance(value, str) else default


def items(body: Any, *path: str) -> list[Any]:
    value = get(body, *path)
    return value if isinstance(value, list) else []


def generation(body: Any) -> int:
    value = get(body, "metadata", "generation")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def key_of(body: Any) -> tuple[str, str, str] | None:
    """(kind, namespace, name) of a Gateway API or core object, None if it is not one."""
    api, kind, name = text(body, "apiVersion"), text(body, "kind"), text(body, "metadata", "name")
    if not kind or not name:
        return None
    group = api.rpartition("/")[0]
    if group != (GATEWAY_GROUP if kind not in {"Service", "Namespace", "Secret"} else ""):
        return None
    return kind, text(body, "metadata", "namespace"), name


class World:
    """The raw objects, indexed: our classes and Gateways, and routes by kind."""

    def __init__(self, objects: list[Any]) -> None:
        self.bodies = {key: body for body in objects if (key := key_of(body)) is not None}
        self.classes = {
            key[2]
            for key, body in self.bodies.items()
            if key[0] == "GatewayClass" and text(body, "spec", "controllerName") == CONTROLLER_NAME
        }
        self.gateways = {
            key[1:]: body
            for key, body in self.bodies.items()
            if key[0] == "Gateway" and text(body, "spec", "gatewayClassName") in self.classes
        }

    def our_parent_refs(self, route: Any, namespace: str) -> list[Any]:
        """The route's parentRefs that name a Gateway of ours."""
        found = []
        for ref in items(route, "spec", "parentRefs"):
            if not isinstance(ref, dict):
                continue
            group = text(ref, "group", default=GATEWAY_GROUP)
            kind = text(ref, "kind", default="Gateway")
            target = (text(ref, "namespace", default=namespace), text(ref, "name"))
            if group == GATEWAY_GROUP and kind == "Gateway" and target in self.gateways:
                found.append(ref)
        return found


# --- status -----------------------------------------------------------------------------------


def condition_problems(
    where: str, conditions: Any, reasons: Mapping[str, frozenset[str]], generation: int
) -> Iterator[str]:
    """Problems of a list of metav1.Conditions: shape, allowed reasons, observedGeneration."""
    if not isinstance(conditions, list):
        yield f"{where}: conditions is not a list: {conditions!r}"
        return
    types = Counter(c.get("type") for c in conditions if isinstance(c, dict))
    for type_, count in types.items():
        if count > 1:
            yield f"{where}: condition {type_} appears {count} times"
    for cond in conditions:
        type_, reason = cond.get("type"), cond.get("reason")
        if type_ in RESERVED_TYPES:
            yield f"{where}: condition type {type_} is reserved or deprecated"
        if cond.get("status") not in {"True", "False", "Unknown"}:
            yield f"{where}: {type_} has status {cond.get('status')!r}"
        if not isinstance(reason, str) or not _REASON.match(reason):
            yield f"{where}: {type_} has a malformed reason {reason!r}"
        elif type_ in reasons and reason not in reasons[type_]:
            yield f"{where}: {type_} reason {reason!r} is not one the Gateway API allows"
        if cond.get("observedGeneration") != generation:
            seen = cond.get("observedGeneration")
            yield f"{where}: {type_} observedGeneration {seen!r}, want {generation}"
        message = cond.get("message")
        if not isinstance(message, str) or len(message) > MAX_MESSAGE:
            yield f"{where}: {type_} message is not a string of at most {MAX_MESSAGE} characters"
        if type_ == "PartiallyInvalid" and not str(message).startswith(
            ("Dropped Rule", "Fall Back")
        ):
            yield f"{where}: PartiallyInvalid message must start with 'Dropped Rule' or 'Fall Back'"


def _require(where: str, conditions: Any, *types: str) -> Iterator[str]:
    present = (
        {c.get("type") for c in conditions if isinstance(c, dict)}
        if isinstance(conditions, list)
        else set()
    )
    for type_ in types:
        if type_ not in present:
            yield f"{where}: condition {type_} is missing"


def expected_statuses(world: World, route_kinds: frozenset[str]) -> dict[tuple[str, str, str], Any]:
    """Every object that must get a status entry from us, by (kind, namespace, name)."""
    expected = {("Gateway", *key): body for key, body in world.gateways.items()}
    for key, body in world.bodies.items():
        ours_class = key[0] == "GatewayClass" and key[2] in world.classes
        if ours_class or (key[0] in route_kinds and world.our_parent_refs(body, key[1])):
            expected[key] = body
    # A name with a "/" or invalid Unicode cannot exist in an API server: the object is skipped.
    return {
        key: body
        for key, body in expected.items()
        if all(map(_valid_text, key)) and "/" not in key[1] + key[2]
    }


def _valid_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def status_problems(
    objects: list[Any], result: TranslationResult, route_kinds: frozenset[str]
) -> list[str]:
    """Everything wrong with ``result.statuses`` for ``objects``; ``route_kinds``: implemented."""
    world = World(objects)
    expected = expected_statuses(world, route_kinds)
    problems: list[str] = []
    written: Counter[tuple[str, str, str]] = Counter()
    for entry in result.statuses:
        meta = entry["metadata"]
        key = (entry["kind"], meta.get("namespace", ""), meta["name"])
        written[key] += 1
        if key not in expected:
            problems.append(f"{key}: status written for an object that is not ours")
            continue
        body, status = expected[key], entry["status"]
        where = "/".join(key)
        if key[0] == "GatewayClass":
            problems += _require(where, status.get("conditions"), "Accepted")
            problems += condition_problems(
                where, status.get("conditions"), CLASS_REASONS, generation(body)
            )
        elif key[0] == "Gateway":
            problems += gateway_problems(where, body, status)
        else:
            problems += route_problems(where, world, body, status)
    problems += [f"{key}: {count} status entries" for key, count in written.items() if count > 1]
    problems += [f"{key}: no status entry" for key in expected if key not in written]
    problems += consistency_problems(result)
    return problems


def _condition(conditions: Any, type_: str) -> str | None:
    """The status ("True", "False", ...) of the condition of ``type_``, None if absent."""
    for cond in conditions if isinstance(conditions, list) else ():
        if isinstance(cond, dict) and cond.get("type") == type_:
            return str(cond.get("status"))
    return None


def accepted_routes(
    result: TranslationResult,
) -> tuple[dict[str, set[tuple[str, str, str]]], set[tuple[str, str]]]:
    """Routes Accepted by us per Gateway key, and the (Gateway, sectionName) they name."""
    accepted: dict[str, set[tuple[str, str, str]]] = {}
    sections: set[tuple[str, str]] = set()
    for entry in result.statuses:
        namespace = entry["metadata"].get("namespace", "")
        route = (entry["kind"], namespace, entry["metadata"]["name"])
        for parent in entry["status"].get("parents", []) if entry["kind"] != "Gateway" else []:
            ref = parent.get("parentRef", {})
            ours = parent.get("controllerName") == CONTROLLER_NAME
            if not ours or _condition(parent.get("conditions"), "Accepted") != "True":
                continue
            gateway = f"{text(ref, 'namespace', default=namespace)}/{text(ref, 'name')}"
            accepted.setdefault(gateway, set()).add(route)
            if isinstance(ref.get("sectionName"), str):
                sections.add((gateway, ref["sectionName"]))
    return accepted, sections


def consistency_problems(result: TranslationResult) -> Iterator[str]:
    """Gateways have resources exactly when Programmed; attachedRoutes agrees with routes.

    attachedRoutes counts the routes Accepted on a listener (gateway_types.go), so a Gateway
    whose parent entries hold no Accepted route has 0 everywhere, one that has some has a
    non-zero count, no listener counts more routes than are Accepted on the Gateway, and a
    listener named by the sectionName of an Accepted parentRef counts at least one.
    """
    accepted, sections = accepted_routes(result)
    for entry in (e for e in result.statuses if e["kind"] == "Gateway"):
        key = f"{entry['metadata'].get('namespace', '')}/{entry['metadata']['name']}"
        programmed = _condition(entry["status"].get("conditions"), "Programmed") == "True"
        if programmed != (key in result.gateways):
            yield f"Gateway {key}: Programmed {programmed}, resources {key in result.gateways}"
        routes = len(accepted.get(key, ()))
        listeners = entry["status"].get("listeners", [])
        counts = {ls.get("name"): ls.get("attachedRoutes", 0) for ls in listeners}
        if routes == 0 and any(counts.values()):
            yield f"Gateway {key}: attachedRoutes {counts} but no route is Accepted on it"
        if routes and not any(counts.values()):
            yield f"Gateway {key}: {routes} routes Accepted but attachedRoutes are all 0"
        for name, count in counts.items():
            at = f"Gateway {key} listener {name}"
            if isinstance(count, int) and count > routes:
                yield f"{at}: attachedRoutes {count} > {routes} routes Accepted on the Gateway"
            if (key, name) in sections and not count:
                yield f"{at}: a route is Accepted on it by sectionName but attachedRoutes is 0"


def gateway_problems(where: str, body: Any, status: Mapping[str, Any]) -> Iterator[str]:
    gen = generation(body)
    yield from _require(where, status.get("conditions"), "Accepted", "Programmed")
    yield from condition_problems(where, status.get("conditions"), GATEWAY_REASONS, gen)
    spec_listeners = items(body, "spec", "listeners")
    listeners = status.get("listeners", [])
    if len(listeners) != len(spec_listeners):
        yield f"{where}: {len(listeners)} listener statuses for {len(spec_listeners)} listeners"
    for raw, listener in zip(spec_listeners, listeners, strict=False):
        name = get(raw, "name")
        at = f"{where} listener {name!r}"
        if isinstance(name, str) and listener.get("name") != name:
            yield f"{at}: status is named {listener.get('name')!r}"
        attached = listener.get("attachedRoutes")
        if not isinstance(attached, int) or attached < 0:
            yield f"{at}: attachedRoutes {attached!r}"
        yield from _require(
            at, listener.get("conditions"), "Accepted", "Programmed", "ResolvedRefs"
        )
        yield from condition_problems(at, listener.get("conditions"), LISTENER_REASONS, gen)


def route_problems(where: str, world: World, body: Any, status: Mapping[str, Any]) -> Iterator[str]:
    namespace = text(body, "metadata", "namespace")
    refs = world.our_parent_refs(body, namespace)
    parents = status.get("parents", [])
    ours = [p for p in parents if p.get("controllerName") == CONTROLLER_NAME]
    if len(ours) != len(refs):
        yield f"{where}: {len(ours)} parent entries of ours for {len(refs)} parentRefs to ours"
    for parent in ours:
        at = f"{where} parent {parent.get('parentRef')}"
        yield from _require(at, parent.get("conditions"), "Accepted", "ResolvedRefs")
        yield from condition_problems(at, parent.get("conditions"), ROUTE_REASONS, generation(body))
        yield from parent_ref_problems(at, parent.get("parentRef"))
    theirs = [
        p
        for p in items(body, "status", "parents")
        if isinstance(p, dict)
        and isinstance(get(p, "controllerName"), str)
        and p["controllerName"] != CONTROLLER_NAME
    ]
    kept = [p for p in parents if p.get("controllerName") != CONTROLLER_NAME]
    if kept != theirs:
        yield f"{where}: other controllers' entries {theirs!r} became {kept!r}"


# The types of a ParentReference, as the API server checks the status that echoes it.
PARENT_REF_TYPES: Mapping[str, type] = {
    "group": str,
    "kind": str,
    "namespace": str,
    "name": str,
    "sectionName": str,
    "port": int,
}


def parent_ref_problems(where: str, ref: Any) -> Iterator[str]:
    """A status parentRef must be one the API server accepts: fields of the right types."""
    if not isinstance(ref, dict) or not isinstance(ref.get("name"), str):
        yield f"{where}: parentRef {ref!r} has no name"
        return
    for key, value in ref.items():
        expected = PARENT_REF_TYPES.get(key)
        if expected is None:
            yield f"{where}: parentRef.{key} is not a field of a ParentReference"
        elif not isinstance(value, expected) or isinstance(value, bool):
            yield f"{where}: parentRef.{key} {value!r} is not a {expected.__name__}"
