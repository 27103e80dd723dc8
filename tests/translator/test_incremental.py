"""``IncrementalTranslator`` gives what ``translate()`` gives, after any sequence of edits.

Three kinds of checks:

1. Random edit sequences (hypothesis): a world of ``strategies.worlds`` is edited a few
   times by mixing in objects of another world (each object kept, replaced, dropped, added,
   or copied unchanged); after every step the incremental result equals a full translation
   of the same objects, status for status and resource for resource, byte for byte.
2. A table of named edits on a hand-written world (every kind the translator reads, TLS,
   cross serving between HTTPRoutes and GRPCRoutes, hostname conflicts), applied in turn.
3. What the incremental translator did, seen through its counters (never timing): an
   EndpointSlice-only change takes the EDS fast path and rebuilds only its load
   assignments; a one-route change translates that route alone.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from strategies import identity, worlds

from translator import TranslateOptions, TranslationResult, translate
from translator.incremental import IncrementalTranslator
from translator.kube import CONTROLLER_NAME, GATEWAY_GROUP

Body = dict[str, Any]
Objects = dict[Hashable, Body]
OPTIONS = TranslateOptions(listener_address="127.0.0.1")


def keyed(bodies: list[Any], tag: str) -> Objects:
    """Bodies by identity, as a provider keys them; bodies without one get a key of their own."""
    return {identity(b) or (tag, index): b for index, b in enumerate(bodies)}


def serialized(result: TranslationResult) -> dict[str, dict[str, list[bytes]]]:
    return {
        key: {
            type_url: [m.SerializeToString(deterministic=True) for m in messages]
            for type_url, messages in resources.by_type().items()
        }
        for key, resources in result.gateways.items()
    }


def assert_same_as_full(
    incremental: IncrementalTranslator, objects: Mapping[Hashable, Any]
) -> None:
    """The incremental result for ``objects`` equals a full translation of them."""
    got = incremental.translate(objects)
    full = translate(list(objects.values()), OPTIONS)
    assert list(got.gateways) == list(full.gateways)
    assert serialized(got) == serialized(full)
    assert got.statuses == full.statuses


# --- 1. random edit sequences ------------------------------------------------------------------

KEEP, TAKE, DROP, COPY = "keep", "take", "drop", "copy"
CHOICE = st.sampled_from([KEEP, KEEP, KEEP, TAKE, DROP, COPY])


def mixed(objects: Objects, other: Objects, choices: list[str]) -> Objects:
    """``objects`` edited with ``other``: per key (both worlds' keys) one of ``choices``."""
    keys = list(dict.fromkeys([*objects, *other]))
    result: Objects = {}
    for key, choice in zip(keys, choices, strict=True):
        if choice == TAKE and key in other:
            result[key] = other[key]
        elif choice == COPY and key in objects:
            result[key] = copy.deepcopy(objects[key])  # equal content, a new object
        elif choice in {KEEP, COPY} and key in objects:
            result[key] = objects[key]
    return result


@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_random_edit_sequences_give_what_a_full_translation_gives(data: st.DataObject) -> None:
    """After each of a few random edits, incremental output == full translation output."""
    objects = keyed(data.draw(worlds()), "junk-0")
    incremental = IncrementalTranslator(OPTIONS)
    assert_same_as_full(incremental, objects)
    for step in range(data.draw(st.integers(1, 4))):
        other = keyed(data.draw(worlds()), f"junk-{step + 1}")
        count = len(dict.fromkeys([*objects, *other]))
        if data.draw(st.booleans()):  # many objects changed at once
            choices = data.draw(st.lists(CHOICE, min_size=count, max_size=count))
        else:  # one or two (a route, a slice, a Service...), as edits usually come
            picked = data.draw(st.lists(st.integers(0, count - 1), min_size=1, max_size=2))
            choices = [KEEP] * count
            for index in picked:
                choices[index] = data.draw(st.sampled_from([TAKE, DROP, COPY]))
        objects = mixed(objects, other, choices)
        note(f"step {step}: {incremental.stats.path}")
        assert_same_as_full(incremental, objects)


# --- 2. a table of named edits -----------------------------------------------------------------

V1 = f"{GATEWAY_GROUP}/v1"
CREATED = "2026-01-01T00:00:00Z"


def meta(namespace: str | None, name: str, **extra: Any) -> Body:
    found: Body = {"name": name, "generation": 1, "creationTimestamp": CREATED, **extra}
    if namespace is not None:
        found["namespace"] = namespace
    return found


def http_route(
    name: str, hostnames: list[str], backend: str, *, namespace: str = "default", **spec: Any
) -> Body:
    rule: Body = {"matches": [{"path": {"type": "PathPrefix", "value": f"/{name}"}}]}
    rule["backendRefs"] = [{"name": backend.rpartition("/")[2], "port": 80}]
    if "/" in backend:
        rule["backendRefs"][0]["namespace"] = backend.partition("/")[0]
    return {
        "apiVersion": V1,
        "kind": "HTTPRoute",
        "metadata": meta(namespace, name),
        "spec": {
            "parentRefs": [{"name": "gw", "namespace": "default"}],
            "hostnames": hostnames,
            "rules": [rule],
            **spec,
        },
    }


def grpc_route(name: str, hostnames: list[str], backend: str) -> Body:
    return {
        "apiVersion": V1,
        "kind": "GRPCRoute",
        "metadata": meta("default", name),
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "hostnames": hostnames,
            "rules": [{"backendRefs": [{"name": backend, "port": 80}]}],
        },
    }


def service(namespace: str, name: str, port: int = 80, address: str = "10.0.0.1") -> list[Body]:
    """A Service and its EndpointSlice (one ready address on 8080)."""
    labels = {"kubernetes.io/service-name": name}
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta(namespace, name),
            "spec": {"ports": [{"name": "http", "port": port}]},
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": meta(namespace, f"{name}-1", labels=labels),
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": [address]}],
        },
    ]


def l4_route(kind: str, name: str, backend: str, hostnames: list[str] | None = None) -> Body:
    spec: Body = {
        "parentRefs": [{"name": "gw"}],
        "rules": [{"backendRefs": [{"name": backend, "port": 80}]}],
    }
    if hostnames is not None:
        spec["hostnames"] = hostnames
    return {
        "apiVersion": f"{GATEWAY_GROUP}/v1alpha2",
        "kind": kind,
        "metadata": meta("default", name),
        "spec": spec,
    }


def world() -> Objects:
    """Two Gateways (HTTP, HTTPS, TLS, TCP listeners), HTTP and gRPC routes, TLS and TCP
    routes, Services with endpoints, a cross-namespace backend with its ReferenceGrant."""
    from strategy_values import CERT, KEY, b64

    all_namespaces = {"namespaces": {"from": "All"}}
    listeners = [
        {"name": "web", "port": 8080, "protocol": "HTTP", "allowedRoutes": all_namespaces},
        {"name": "wild", "port": 8081, "protocol": "HTTP", "hostname": "*.example.com"},
        {
            "name": "secure",
            "port": 8443,
            "protocol": "HTTPS",
            "hostname": "secure.example.com",
            "tls": {"certificateRefs": [{"name": "cert"}]},
        },
        {"name": "pass", "port": 9443, "protocol": "TLS", "tls": {"mode": "Passthrough"}},
        {"name": "tcp", "port": 9000, "protocol": "TCP"},
        {
            "name": "picky",
            "port": 8082,
            "protocol": "HTTP",
            "allowedRoutes": {
                "namespaces": {"from": "Selector", "selector": {"matchLabels": {"team": "a"}}}
            },
        },
    ]
    bodies: list[Body] = [
        {
            "apiVersion": V1,
            "kind": "GatewayClass",
            "metadata": meta(None, "ours"),
            "spec": {"controllerName": CONTROLLER_NAME},
        },
        {
            "apiVersion": V1,
            "kind": "Gateway",
            "metadata": meta("default", "gw"),
            "spec": {"gatewayClassName": "ours", "listeners": listeners},
        },
        {
            "apiVersion": V1,
            "kind": "Gateway",
            "metadata": meta("default", "gw2"),
            "spec": {
                "gatewayClassName": "ours",
                "listeners": [{"name": "web", "port": 80, "protocol": "HTTP"}],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": meta("default", "cert"),
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": b64(CERT), "tls.key": b64(KEY)},
        },
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": meta(None, "apps", labels={"team": "a"}),
        },
        {
            "apiVersion": f"{GATEWAY_GROUP}/v1beta1",
            "kind": "ReferenceGrant",
            "metadata": meta("other", "grant"),
            "spec": {
                "from": [{"group": GATEWAY_GROUP, "kind": "HTTPRoute", "namespace": "apps"}],
                "to": [{"group": "", "kind": "Service"}],
            },
        },
        *service("default", "svc-a"),
        *service("default", "svc-b", address="10.0.0.2"),
        *service("default", "svc-g", address="10.0.0.3"),
        *service("other", "svc-x", address="10.0.0.4"),
        http_route("r1", ["a.example.com"], "svc-a"),
        http_route("r2", ["*.example.com"], "svc-b"),
        http_route("r3", [], "other/svc-x", namespace="apps"),
        http_route(
            "r4", [], "svc-a", parentRefs=[{"name": "gw2"}, {"name": "gw", "sectionName": "secure"}]
        ),
        grpc_route("g1", ["grpc.example.com"], "svc-g"),
        l4_route("TLSRoute", "t1", "svc-a", ["pass.example.com"]),
        l4_route("TCPRoute", "c1", "svc-b"),
    ]
    return {identity(b): b for b in bodies}  # type: ignore[misc]


Edit = Callable[[Objects], None]


def changed(objects: Objects, kind: str, namespace: str, name: str) -> Body:
    """A copy of the object, put in place of it, to edit (providers never edit in place)."""
    body = copy.deepcopy(objects[(kind, namespace, name)])
    objects[(kind, namespace, name)] = body
    return body


def put(*bodies: Body) -> Edit:
    def edit(objects: Objects) -> None:
        for body in bodies:
            objects[identity(body)] = copy.deepcopy(body)  # type: ignore[index]

    return edit


def drop(kind: str, namespace: str, name: str) -> Edit:
    def edit(objects: Objects) -> None:
        del objects[(kind, namespace, name)]

    return edit


def route_path(objects: Objects) -> None:
    changed(objects, "HTTPRoute", "default", "r1")["spec"]["rules"][0]["matches"][0]["path"][
        "value"
    ] = "/new"


def route_hostname(objects: Objects) -> None:
    changed(objects, "HTTPRoute", "default", "r1")["spec"]["hostnames"] = ["b.example.com"]


def route_onto_grpc(objects: Objects) -> None:
    changed(objects, "HTTPRoute", "default", "r1")["spec"]["hostnames"] = ["grpc.example.com"]


def route_older(kind: str, name: str) -> Edit:
    def edit(objects: Objects) -> None:
        changed(objects, kind, "default", name)["metadata"]["creationTimestamp"] = (
            "2025-01-01T00:00:00Z"
        )

    return edit


def service_port(objects: Objects) -> None:
    changed(objects, "Service", "default", "svc-a")["spec"]["ports"][0]["port"] = 81


def slice_address(objects: Objects) -> None:
    changed(objects, "EndpointSlice", "default", "svc-a-1")["endpoints"][0]["addresses"] = [
        "10.1.1.1"
    ]


def slice_unready(objects: Objects) -> None:
    changed(objects, "EndpointSlice", "default", "svc-b-1")["endpoints"][0]["conditions"] = {
        "ready": False
    }


def secret_broken(objects: Objects) -> None:
    changed(objects, "Secret", "default", "cert")["data"] = {"tls.crt": "bm90IGEgY2VydA=="}


def listener_added(objects: Objects) -> None:
    listeners = changed(objects, "Gateway", "default", "gw")["spec"]["listeners"]
    listeners.append(
        {"name": "extra", "port": 8083, "protocol": "HTTP", "hostname": "a.example.com"}
    )


def listener_hostname(objects: Objects) -> None:
    changed(objects, "Gateway", "default", "gw")["spec"]["listeners"][1]["hostname"] = "*.other.com"


def namespace_labels(objects: Objects) -> None:
    changed(objects, "Namespace", "", "apps")["metadata"]["labels"] = {"team": "b"}


def older_tcp_route(objects: Objects) -> None:
    put(l4_route("TCPRoute", "c2", "svc-a"))(objects)
    route_older("TCPRoute", "c2")(objects)


def everything_copied(objects: Objects) -> None:
    for key in list(objects):
        objects[key] = copy.deepcopy(objects[key])


EDITS: dict[str, Edit] = {
    "HTTPRoute path changed": route_path,
    "HTTPRoute hostname changed": route_hostname,
    "HTTPRoute added on a taken hostname": put(http_route("r5", ["a.example.com"], "svc-b")),
    "HTTPRoute deleted": drop("HTTPRoute", "default", "r2"),
    "HTTPRoute on every host added": put(http_route("r6", [], "svc-b")),
    "GRPCRoute on an HTTPRoute's hostname (cross serving)": put(
        grpc_route("g2", ["a.example.com"], "svc-g")
    ),
    "HTTPRoute hostname moved onto a GRPCRoute's (cross serving)": route_onto_grpc,
    "HTTPRoute made older than the GRPCRoute it conflicts with": route_older("HTTPRoute", "r1"),
    "GRPCRoute deleted": drop("GRPCRoute", "default", "g1"),
    "Service port changed": service_port,
    "Service deleted": drop("Service", "default", "svc-b"),
    "Service added": put(*service("default", "svc-new")),
    "EndpointSlice address changed": slice_address,
    "EndpointSlice endpoint not ready": slice_unready,
    "EndpointSlice deleted": drop("EndpointSlice", "default", "svc-a-1"),
    "ReferenceGrant deleted": drop("ReferenceGrant", "other", "grant"),
    "Secret broken": secret_broken,
    "Secret deleted": drop("Secret", "default", "cert"),
    "Gateway listener added": listener_added,
    "Gateway listener hostname changed": listener_hostname,
    "Gateway deleted": drop("Gateway", "default", "gw2"),
    "GatewayClass deleted": drop("GatewayClass", "", "ours"),
    "Namespace labels changed": namespace_labels,
    "TCPRoute added, older than the bound one": older_tcp_route,
    "TLSRoute deleted": drop("TLSRoute", "default", "t1"),
    "every object copied, nothing changed": everything_copied,
}


@pytest.mark.parametrize("name", EDITS, ids=list(EDITS))
def test_each_edit_and_its_undo_give_what_a_full_translation_gives(name: str) -> None:
    """An edit, then back to the original objects: both equal full translations."""
    base = world()
    incremental = IncrementalTranslator(OPTIONS)
    assert_same_as_full(incremental, base)
    edited = dict(base)
    EDITS[name](edited)
    assert_same_as_full(incremental, edited)
    assert_same_as_full(incremental, base)


def test_all_edits_in_turn_give_what_a_full_translation_gives() -> None:
    """The edits of the table applied one after the other, each checked."""
    objects = world()
    incremental = IncrementalTranslator(OPTIONS)
    assert_same_as_full(incremental, objects)
    for name, edit in EDITS.items():
        objects = dict(objects)
        edit(objects)
        try:
            assert_same_as_full(incremental, objects)
        except AssertionError as failed:
            raise AssertionError(f"after the edit {name!r}") from failed


# --- 3. what was redone, by the counters -------------------------------------------------------


def many_routes(count: int) -> Objects:
    """``world()`` plus ``count`` HTTPRoutes, each with its own hostname and Service."""
    objects = world()
    for index in range(count):
        for body in [
            http_route(f"many-{index}", [f"host-{index}.test"], f"many-{index}"),
            *service("default", f"many-{index}", address=f"10.2.{index // 250}.{index % 250 + 1}"),
        ]:
            objects[identity(body)] = body  # type: ignore[index]
    return objects


def test_an_endpoint_slice_change_takes_the_fast_path() -> None:
    """Only the load assignments of the slice's Service are rebuilt; nothing is translated."""
    objects = many_routes(50)
    incremental = IncrementalTranslator(OPTIONS)
    before = incremental.translate(objects)
    edited = dict(objects)
    slice_address(edited)  # svc-a: clusters service/default/svc-a/80 and .../80/tcp
    assert_same_as_full(incremental, edited)
    stats = incremental.stats
    assert (stats.path, stats.routes_translated, stats.virtual_hosts_built) == ("endpoints", 0, 0)
    assert stats.load_assignments_built == 2
    after = incremental.translate(edited)
    assert after.statuses is before.statuses  # status is not even looked at
    gw2 = after.gateways["default/gw2"]
    assert gw2.routes is before.gateways["default/gw2"].routes


def test_an_endpoint_slice_change_of_an_unused_service_changes_nothing() -> None:
    """A Service no route uses: the fast path, and every Gateway's resources are kept."""
    objects = world()
    objects.update({identity(b): b for b in service("default", "unused")})  # type: ignore[misc]
    incremental = IncrementalTranslator(OPTIONS)
    before = incremental.translate(objects)
    edited = dict(objects)
    changed(edited, "EndpointSlice", "default", "unused-1")["endpoints"] = []
    after = incremental.translate(edited)
    assert incremental.stats.path == "endpoints"
    assert all(after.gateways[key] is before.gateways[key] for key in before.gateways)


def test_a_one_route_change_translates_that_route_only() -> None:
    """Among many routes, changing one translates it alone and rebuilds one virtual host."""
    objects = many_routes(200)
    incremental = IncrementalTranslator(OPTIONS)
    first = incremental.translate(objects)
    assert incremental.stats.routes_translated == 200 + 5
    edited = dict(objects)
    body = changed(edited, "HTTPRoute", "default", "many-7")
    body["spec"]["rules"][0]["matches"][0]["path"]["value"] = "/moved"
    assert_same_as_full(incremental, edited)
    stats = incremental.stats
    assert (stats.path, stats.routes_translated) == ("incremental", 1)
    assert (stats.virtual_hosts_built, stats.load_assignments_built) == (1, 0)
    second = incremental.translate(edited)
    kept, changed_ = first.gateways["default/gw"], second.gateways["default/gw"]
    assert (kept.clusters, kept.endpoints) == (changed_.clusters, changed_.endpoints)
    assert kept.clusters is changed_.clusters
    assert kept.listeners is changed_.listeners
    assert second.gateways["default/gw2"] is first.gateways["default/gw2"]


def test_a_service_change_translates_only_the_routes_that_use_it() -> None:
    """A Service's routes are translated again; the others are not."""
    objects = many_routes(50)
    incremental = IncrementalTranslator(OPTIONS)
    incremental.translate(objects)
    edited = dict(objects)
    changed(edited, "Service", "default", "many-3")["spec"]["ports"][0]["port"] = 81
    assert_same_as_full(incremental, edited)
    assert (incremental.stats.path, incremental.stats.routes_translated) == ("incremental", 1)


def test_unchanged_objects_give_the_previous_result() -> None:
    """The same objects again (even as equal copies): nothing is redone."""
    objects = world()
    incremental = IncrementalTranslator(OPTIONS)
    first = incremental.translate(objects)
    copied = dict(objects)
    everything_copied(copied)
    assert incremental.translate(copied) is first
    assert incremental.stats.path == "unchanged"


def test_two_objects_of_one_identity_fall_back_to_a_full_translation() -> None:
    """Keys that disagree with the bodies' identity: still the full translation's result."""
    objects: dict[Hashable, Body] = dict(world())
    objects["another key"] = copy.deepcopy(objects[("HTTPRoute", "default", "r1")])
    incremental = IncrementalTranslator(OPTIONS)
    assert_same_as_full(incremental, objects)
    assert incremental.stats.path == "fallback"
