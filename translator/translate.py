"""``translate()``: Gateway API objects -> Envoy resources per Gateway, and status.

Reads as the ordered list of steps it is. Pure: no I/O, no clock, no globals; the same
objects give the same result, byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from translator import gateways as gw
from translator import xds
from translator.httproutes import RouteOutcome, translate_http_route
from translator.ir import Cluster
from translator.kube import GATEWAY_GROUP
from translator.model import Meta
from translator.parse import parse_inventory
from translator.result import StatusEntry, TranslationResult
from translator.virtualhosts import assemble

STATUS_API_VERSION = f"{GATEWAY_GROUP}/v1"


@dataclass(frozen=True, slots=True)
class TranslateOptions:
    """Settings of the proxies that are not in the Gateway API objects."""

    listener_address: str = "0.0.0.0"


def translate(
    objects: Iterable[Mapping[str, Any]], options: TranslateOptions | None = None
) -> TranslationResult:
    options = options or TranslateOptions()
    # 1. Parse and validate every object we read.
    inv = parse_inventory(objects)
    # 2. Our GatewayClasses, then their Gateways and the state of each listener.
    classes = gw.our_classes(inv.classes)
    states = gw.gateway_states(inv.gateways, classes)
    by_key = {state.gateway.meta.key: state for state in states}
    # 3. Attach routes to listeners, resolve their backends, build IR routes.
    outcomes = [translate_http_route(route, by_key, inv) for route in inv.http_routes]
    # 4. Merge listeners per port and routes per domain into the IR of each Gateway.
    entries = [entry for outcome in outcomes for entry in outcome.entries]
    clusters = _clusters(outcomes)
    irs = assemble(states, entries, clusters)
    # 5. Envoy resources from the IR.
    resources = {
        key: xds.gateway_resources(ir, options.listener_address) for key, ir in irs.items()
    }
    # 6. Status of every object we own.
    attached = _attached_routes(outcomes)
    statuses: list[StatusEntry] = [
        _entry(
            "GatewayClass",
            gc.meta,
            {"conditions": [cond.as_json(gc.meta.generation) for cond in gw.class_conditions(gc)]},
        )
        for gc in classes.values()
    ]
    statuses += [_entry("Gateway", s.gateway.meta, gw.gateway_status(s, attached)) for s in states]
    statuses += [
        _entry("HTTPRoute", route.meta, outcome.status)
        for route, outcome in zip(inv.http_routes, outcomes, strict=True)
        if outcome.status is not None
    ]
    return TranslationResult(dict(sorted(resources.items())), tuple(statuses))


def _clusters(outcomes: list[RouteOutcome]) -> dict[str, Cluster]:
    return {c.name: c for outcome in outcomes for c in outcome.clusters}


def _attached_routes(outcomes: list[RouteOutcome]) -> dict[tuple[str, str], int]:
    """Routes attached per (Gateway, listener name): each route counts once per listener."""
    pairs = {
        (e.listener.gateway, e.listener.listener.name, e.route.name.rsplit("/rule/", 1)[0])
        for outcome in outcomes
        for e in outcome.entries
    }
    counts: dict[tuple[str, str], int] = {}
    for gateway, listener, _route in pairs:
        counts[(gateway, listener)] = counts.get((gateway, listener), 0) + 1
    return counts


def _entry(kind: str, meta: Meta, status: Mapping[str, Any]) -> StatusEntry:
    metadata = (
        {"namespace": meta.namespace, "name": meta.name} if meta.namespace else {"name": meta.name}
    )
    return {"apiVersion": STATUS_API_VERSION, "kind": kind, "metadata": metadata, "status": status}
