"""The pure parts of the Kubernetes provider: normalizing bodies, folding lists and events
(watcher.kube_store), choosing API versions (watcher.kube_kinds) and backoff."""

from __future__ import annotations

import random
from typing import Any

import pytest

from watcher.kube_kinds import GATEWAY_GROUP, WATCHED, Resource, choose_version
from watcher.kube_store import KindStore, key_of, normalize, referenced_secrets
from watcher.kube_watch import Backoff
from watcher.objects import ObjectKey

CONTROLLER = "gateway-xds.io/gatewayclass-controller"
V1 = f"{GATEWAY_GROUP}/v1"


def _route(name: str, path: str = "/", **extra: Any) -> dict[str, Any]:
    metadata = {"name": name, "namespace": "default", "resourceVersion": "7", **extra}
    return {
        "metadata": metadata,
        "spec": {"rules": [{"matches": [{"path": {"value": path}}]}]},
        "status": {"parents": []},
    }


def _norm(body: dict[str, Any]) -> dict[str, Any]:
    return normalize(body, "HTTPRoute", V1)


def test_normalize_drops_status_resource_version_and_managed_fields() -> None:
    """What changes on every write is not part of the body a snapshot holds."""
    body = _norm(_route("a", managedFields=[{"manager": "kubectl"}], generation=3))
    assert body == {
        "apiVersion": V1,
        "kind": "HTTPRoute",
        "metadata": {"name": "a", "namespace": "default", "generation": 3},
        "spec": {"rules": [{"matches": [{"path": {"value": "/"}}]}]},
    }
    assert key_of(body) == ObjectKey("HTTPRoute", "default", "a")


def test_status_only_event_keeps_the_same_body_object() -> None:
    """An event whose only differences are status and resourceVersion changes nothing."""
    store = KindStore()
    assert store.apply("ADDED", _norm(_route("a")))
    kept = store.objects[ObjectKey("HTTPRoute", "default", "a")]
    touched = _route("a", resourceVersion="8")
    touched["status"] = {"parents": [{"controllerName": "x"}]}
    assert not store.apply("MODIFIED", _norm(touched))
    assert store.objects[ObjectKey("HTTPRoute", "default", "a")] is kept
    assert store.apply("MODIFIED", _norm(_route("a", "/b")))
    assert store.apply("DELETED", _norm(_route("a")))
    assert not store.apply("DELETED", _norm(_route("a")))
    assert store.objects == {}


def test_relist_reports_additions_deletions_and_keeps_unchanged_identity() -> None:
    """A relist replaces everything: what vanished meanwhile goes, what stayed keeps its body."""
    store = KindStore()
    assert store.replace([_norm(_route("a")), _norm(_route("gone"))])
    kept = store.objects[ObjectKey("HTTPRoute", "default", "a")]
    assert not store.replace([_norm(_route("a", resourceVersion="99")), _norm(_route("gone"))])
    assert store.replace([_norm(_route("a")), _norm(_route("new"))])
    assert sorted(key.name for key in store.objects) == ["a", "new"]
    assert store.objects[ObjectKey("HTTPRoute", "default", "a")] is kept


def _class(name: str, controller: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"controllerName": controller}}


def _gateway(name: str, class_name: str, *refs: dict[str, Any]) -> dict[str, Any]:
    listener = {"name": "https", "tls": {"certificateRefs": list(refs)}}
    return {
        "metadata": {"name": name, "namespace": "web"},
        "spec": {"gatewayClassName": class_name, "listeners": [listener, {"name": "plain"}]},
    }


def test_referenced_secrets_are_those_of_our_gateways_only() -> None:
    """Core Secret refs of Gateways of our classes; other kinds, groups and classes are not."""
    classes = [_class("ours", CONTROLLER), _class("theirs", "example.com/other")]
    gateways = [
        _gateway(
            "a",
            "ours",
            {"name": "cert"},
            {"name": "shared", "namespace": "certs", "kind": "Secret", "group": ""},
            {"name": "cm", "kind": "ConfigMap"},
            {"name": "vault", "group": "example.com"},
            {"kind": "Secret"},
        ),
        _gateway("b", "theirs", {"name": "not-ours"}),
        {"metadata": {"name": "c", "namespace": "web"}, "spec": "garbage"},
    ]
    assert referenced_secrets(gateways, classes, CONTROLLER) == {
        ("web", "cert"),
        ("certs", "shared"),
    }


@pytest.mark.parametrize(
    ("served", "expected"),
    [
        ({"v1": frozenset({"tlsroutes"}), "v1alpha2": frozenset({"tlsroutes"})}, "v1"),
        ({"v1alpha2": frozenset({"tlsroutes"})}, "v1alpha2"),
        ({"v1": frozenset({"httproutes"})}, None),
        ({}, None),
    ],
    ids=["newest", "only-alpha", "crd-missing", "no-group"],
)
def test_choose_version_takes_the_newest_served(
    served: dict[str, frozenset[str]], expected: str | None
) -> None:
    """The first of v1, v1beta1, v1alpha3, v1alpha2 that serves the resource, or None."""
    tls = next(kind for kind in WATCHED if kind.kind == "TLSRoute")
    assert choose_version(tls, served) == expected


def test_resource_paths() -> None:
    """Core, grouped, namespaced and field-selected collections map to their REST paths."""
    by_kind = {kind.kind: kind for kind in WATCHED}
    assert Resource.of(by_kind["Service"], "v1").path == "/api/v1/services"
    assert Resource.of(by_kind["Gateway"], "v1").path == f"/apis/{V1}/gateways"
    secret = Resource("Secret", "v1", "secrets", "web", "metadata.name=cert")
    assert secret.path == "/api/v1/namespaces/web/secrets"
    assert str(secret) == "Secret v1 in web (metadata.name=cert)"


def test_backoff_grows_with_jitter_up_to_the_cap_and_resets() -> None:
    """Each wait is within [ceiling/2, ceiling]; the ceiling doubles to the cap."""
    backoff = Backoff(0.1, 1.0, random.Random(5))
    waits = [backoff.next() for _ in range(6)]
    ceilings = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert all(c / 2 <= w <= c for w, c in zip(waits, ceilings, strict=True))
    backoff.reset()
    assert backoff.next() <= 0.1
