"""Properties of ``translate()`` over random and malformed Gateway API worlds (hypothesis).

The worlds (``strategies.worlds``) hold every kind the translator reads, with valid values,
invalid values, values of the wrong JSON type and garbage subtrees at any depth. For them:

1. ``translate()`` never raises, and its result always renders and serializes.
2. The same objects in any order give equal statuses and byte-identical resources.
3. Status is written exactly for our objects (``property_checks.status_problems``): our
   GatewayClasses, Gateways (Accepted, Programmed, one status per listener) and routes with a
   parentRef to a Gateway of ours (one parent entry per such parentRef, with Accepted and
   ResolvedRefs), with reasons the Gateway API allows and observedGeneration everywhere.
4. The real Envoy accepts every resource set: of 150 worlds, of 200 worlds focused on route
   values, and of every value of ``strategy_values.VALUES`` in every field that takes it
   (``value_matrix``), each set in a few batched runs; a rejected example is found by
   halving, shrunk, and printed as YAML for a golden case.
5. Resources hold no dangling references or duplicate names (``resource_checks``), and
   reordering the rules of routes leaves the clusters alone.

Runs are bounded and reproducible: derandomized, no example database, a fixed number of
examples (about 25 s on two cores). ``PROPERTIES_SCALE=20`` runs twenty times as many, fresh
on every run, to hunt; ``PROPERTIES_KNOWN_BUGS=1`` lifts the masks of ``known_bugs`` (the
open bugs, pinned in test_property_findings.py) to see them fail here too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from envoy_batches import as_yaml, example, failures, report
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from known_bugs import masked
from property_checks import status_problems
from resource_checks import resource_problems
from strategies import focused_worlds, some_bodies, worlds
from value_matrix import matrix
from value_matrix import world as matrix_world

from translator import CONTROLLER_NAME, TranslationResult, translate
from translator.kube import GATEWAY_GROUP
from translator.render import result_json

SCALE = int(os.environ.get("PROPERTIES_SCALE", "1"))
BUGS = os.environ.get("PROPERTIES_KNOWN_BUGS") == "1"  # without the masks of known_bugs
ENVOY_EXAMPLES = 150
MATRIX_BASE = matrix_world("HTTPRoute", {})  # one route to Service svc-a
FOCUSED_EXAMPLES = 200


def profile(examples: int) -> settings:
    """``examples`` examples (times PROPERTIES_SCALE), the same ones on every run at scale 1."""
    return settings(
        max_examples=examples * SCALE,
        deadline=None,
        derandomize=SCALE == 1,
        database=None,
        print_blob=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@contextlib.contextmanager
def shown(objects: list[Any]) -> Iterator[None]:
    """On failure, note the input as YAML (hypothesis prints the notes of the failing example)."""
    try:
        yield
    except BaseException:
        note(f"input, as YAML for a golden case:\n{as_yaml(objects)}")
        raise


def serialized(result: TranslationResult) -> dict[str, dict[str, list[bytes]]]:
    return {
        key: {
            type_url: [m.SerializeToString(deterministic=True) for m in messages]
            for type_url, messages in resources.by_type().items()
        }
        for key, resources in result.gateways.items()
    }


@functools.cache
def implemented_route_kinds() -> frozenset[str]:
    """Route kinds the translator writes status for today (others are being built)."""
    return frozenset(kind for kind, objects in PROBES.items() if _has_status(kind, objects))


def _probe(kind: str, protocol: str, version: str) -> list[dict[str, Any]]:
    listener: dict[str, Any] = {"name": "l", "port": 8000, "protocol": protocol}
    if protocol == "TLS":
        listener["tls"] = {"mode": "Passthrough"}
    meta = {"namespace": "default", "generation": 1}
    return [
        {
            "apiVersion": f"{GATEWAY_GROUP}/v1",
            "kind": "GatewayClass",
            "metadata": {"name": "ours"},
            "spec": {"controllerName": CONTROLLER_NAME},
        },
        {
            "apiVersion": f"{GATEWAY_GROUP}/v1",
            "kind": "Gateway",
            "metadata": {"name": "gw", **meta},
            "spec": {"gatewayClassName": "ours", "listeners": [listener]},
        },
        {
            "apiVersion": f"{GATEWAY_GROUP}/{version}",
            "kind": kind,
            "metadata": {"name": "r", **meta},
            "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "s"}]}]},
        },
    ]


PROBES = {
    "HTTPRoute": _probe("HTTPRoute", "HTTP", "v1"),
    "GRPCRoute": _probe("GRPCRoute", "HTTP", "v1"),
    "TLSRoute": _probe("TLSRoute", "TLS", "v1alpha2"),
    "TCPRoute": _probe("TCPRoute", "TCP", "v1alpha2"),
    "UDPRoute": _probe("UDPRoute", "UDP", "v1alpha2"),
}


def _has_status(kind: str, objects: list[dict[str, Any]]) -> bool:
    return any(entry["kind"] == kind for entry in translate(objects).statuses)


# --- 1. never raises -------------------------------------------------------------------------


@profile(120)
@given(worlds(bugs=BUGS))
def test_translate_never_raises(objects: list[Any]) -> None:
    """Any input, however broken, translates, renders as JSON and serializes."""
    with shown(objects):
        result = translate(objects)
        result_json(result)
        serialized(result)


@profile(100)
@given(some_bodies())
def test_translate_never_raises_on_shapeless_bodies(objects: list[Any]) -> None:
    """Bodies of any shape (no kind, no metadata, metadata of any type) are ignored."""
    with shown(objects):
        translate(objects)


# --- 2. determinism --------------------------------------------------------------------------


@profile(80)
@given(st.data())
def test_same_objects_in_any_order_give_the_same_result(data: st.DataObject) -> None:
    """Shuffled input gives equal statuses and byte-identical resources."""
    objects = data.draw(worlds(bugs=BUGS))
    shuffled = data.draw(st.permutations(objects))
    with shown(objects):
        first, second = translate(objects), translate(shuffled)
        assert first.statuses == second.statuses
        assert serialized(first) == serialized(second)


# --- 3. status ---------------------------------------------------------------------------------


@profile(100)
@given(worlds(bugs=BUGS))
def test_status_is_written_for_our_objects_only_with_allowed_reasons(objects: list[Any]) -> None:
    """Our classes, Gateways and routes get complete status, with the Gateway API's reasons."""
    with shown(objects):
        problems = status_problems(objects, translate(objects), implemented_route_kinds())
        assert problems == []


def test_probes_find_http_routes() -> None:
    """The probe that finds implemented route kinds sees HTTPRoute (so it is not broken)."""
    assert "HTTPRoute" in implemented_route_kinds()


# --- 4. Envoy accepts everything ---------------------------------------------------------------


def collect(strategy: st.SearchStrategy[list[Any]], examples: int) -> list[list[Any]]:
    """``examples`` examples of ``strategy`` (hypothesis runs a test that keeps them)."""
    collected: list[list[Any]] = []

    @profile(examples)
    @given(strategy)
    def keep(objects: list[Any]) -> None:
        collected.append(objects)

    keep()
    return collected


def test_envoy_accepts_every_translation(tmp_path: Path) -> None:
    """Envoy accepts the resources of random worlds and of worlds focused on route values."""
    worlds_ = collect(worlds(bugs=BUGS), ENVOY_EXAMPLES)
    focused = collect(focused_worlds(bugs=BUGS), FOCUSED_EXAMPLES)
    examples = [ex for ex in map(example, worlds_ + focused) if ex.gateways]
    assert len(examples) > len(worlds_) // 2, "too few examples program a Gateway"
    found = failures(examples, tmp_path)
    assert not found, report(examples, found, tmp_path)


def test_envoy_accepts_every_value_in_every_field(tmp_path: Path) -> None:
    """Each value of strategy_values.VALUES, in each field that takes it, gives valid config."""
    labels, examples, problems = [], [], []
    kinds = implemented_route_kinds()
    for label, raw in matrix():
        objects = raw if BUGS else masked(raw)
        try:
            result = translate(objects)
        except Exception as error:  # every crash is listed, not only the first
            problems.append(f"{label}: {error!r}")
            continue
        problems += [f"{label}: {p}" for p in status_problems(objects, result, kinds)]
        problems += [f"{label}: {p}" for p in resource_problems(result)]
        examples.append(example(objects))
        labels.append(label)
    assert problems == []
    found = failures(examples, tmp_path)
    rejected = [labels[i] for failure in found for i in failure.examples]
    assert not found, f"Envoy rejects {rejected}:\n{report(examples, found, tmp_path)}"


# --- 5. invariants of the resources -----------------------------------------------------------


@profile(100)
@given(worlds(bugs=BUGS))
def test_resources_reference_only_what_exists(objects: list[Any]) -> None:
    """Names are unique per Gateway, and every route, cluster and secret named exists."""
    with shown(objects):
        assert resource_problems(translate(objects)) == []


def reorder_rules(data: st.DataObject, objects: list[Any]) -> list[Any]:
    """``objects`` with the rules of every HTTPRoute and GRPCRoute in a drawn order (a TLS,
    TCP or UDP route uses its first rule only, and says so: there order is meaning)."""
    result = []
    for body in objects:
        spec = body.get("spec")
        rules = spec.get("rules") if isinstance(spec, dict) else None
        if isinstance(rules, list) and body.get("kind") in ("HTTPRoute", "GRPCRoute"):
            rules = data.draw(st.permutations(rules))
            result.append({**body, "spec": {**spec, "rules": rules}})
        else:
            result.append(body)
    return result


def cluster_bytes(result: TranslationResult) -> dict[str, set[bytes]]:
    """Per Gateway, its clusters and endpoint sets, serialized."""
    return {
        key: {
            m.SerializeToString(deterministic=True)
            for m in (*resources.clusters, *resources.endpoints)
        }
        for key, resources in result.gateways.items()
    }


@profile(80)
@given(st.data())
def test_reordering_rules_keeps_clusters(data: st.DataObject) -> None:
    """Clusters and endpoints do not depend on the position of rules in routes."""
    objects = data.draw(worlds(bugs=BUGS))
    reordered = reorder_rules(data, objects)
    with shown(objects):
        assert cluster_bytes(translate(objects)) == cluster_bytes(translate(reordered))


# --- the oracles themselves ----------------------------------------------------------------


def test_resource_checks_see_a_cluster_that_is_missing() -> None:
    """resource_problems reports a route to a cluster its Gateway does not define."""
    result = translate(MATRIX_BASE)
    (key,) = result.gateways
    without = dataclasses.replace(result.gateways[key], clusters=(), endpoints=())
    problems = resource_problems(dataclasses.replace(result, gateways={key: without}))
    assert problems == [f"{key}: cluster 'service/default/svc-a/80' is referenced but not defined"]


def test_status_checks_see_a_parent_entry_that_is_missing() -> None:
    """status_problems reports a route whose parent entry of ours was left out."""
    result = translate(MATRIX_BASE)
    statuses = [
        {**entry, "status": {"parents": []}} if entry["kind"] == "HTTPRoute" else entry
        for entry in result.statuses
    ]
    broken = dataclasses.replace(result, statuses=tuple(statuses))
    problems = status_problems(MATRIX_BASE, broken, implemented_route_kinds())
    assert any("0 parent entries of ours for 1 parentRefs" in p for p in problems), problems
