"""HTTP routing through a real Envoy, configured by files the control plane watches."""

from __future__ import annotations

from collections import Counter

import pytest
from support.stack import Stack
from support.wait import wait_until

pytestmark = pytest.mark.e2e


def route(name: str, rules: str, *, hostnames: str = "", created: str = "") -> str:
    """An HTTPRoute on the stack's Gateway; ``rules`` is YAML indented for spec.rules."""
    meta = f"name: {name}, namespace: default"
    if created:
        meta += f", creationTimestamp: '{created}'"
    hosts = f"\n  hostnames: {hostnames}" if hostnames else ""
    return (
        "apiVersion: gateway.networking.k8s.io/v1\n"
        "kind: HTTPRoute\n"
        f"metadata: {{{meta}}}\n"
        "spec:\n"
        f"  parentRefs: [{{name: gw}}]{hosts}\n"
        "  rules:\n" + rules
    )


def rule(backend: str, *matches: str, weight: int | None = None) -> str:
    shown = "\n".join(f"        - {m}" for m in matches) or "        - {}"
    weight_part = f", weight: {weight}" if weight is not None else ""
    return (
        "    - matches:\n"
        f"{shown}\n"
        f"      backendRefs: [{{name: {backend}, port: 80{weight_part}}}]\n"
    )


def test_path_exact_prefix_and_regex(routes: Stack) -> None:
    """Exact, PathPrefix (on segment boundaries) and RegularExpression paths route apart."""
    routes.write(
        "paths.yaml",
        route(
            "paths",
            rule("echo-a", "{path: {type: Exact, value: /exact}}")
            + rule("echo-b", "{path: {type: PathPrefix, value: /prefix}}")
            + rule("echo-c", "{path: {type: RegularExpression, value: '/re/[0-9]+'}}"),
        ),
    )
    routes.wait_for("/exact", "echo-a")
    assert routes.service_of("/exact/more") == 404
    assert routes.service_of("/prefix") == "echo-b"
    assert routes.service_of("/prefix/deeper") == "echo-b"
    assert routes.service_of("/prefixed") == 404
    assert routes.service_of("/re/123") == "echo-c"
    assert routes.service_of("/re/abc") == 404


def test_header_query_and_method_matches(routes: Stack) -> None:
    """Header, query parameter and method matches each select their own backend."""
    routes.write(
        "matches.yaml",
        route(
            "matches",
            rule("echo-a", "{path: {value: /m}, headers: [{name: x-version, value: a}]}")
            + rule("echo-b", "{path: {value: /m}, queryParams: [{name: v, value: b}]}")
            + rule("echo-c", "{path: {value: /m}, method: POST}")
            + rule(
                "echo-b",
                "{path: {value: /r}, "
                "headers: [{type: RegularExpression, name: x-r, value: 'b.*'}]}",
            ),
        ),
    )
    routes.wait_for("/m", "echo-a", headers={"X-Version": "a"})
    assert routes.service_of("/m?v=b") == "echo-b"
    assert routes.service_of("/m", method="POST") == "echo-c"
    assert routes.service_of("/m") == 404
    assert routes.service_of("/r", headers={"x-r": "bee"}) == "echo-b"
    assert routes.service_of("/r", headers={"x-r": "zzz"}) == 404


def test_hostname_routing(routes: Stack) -> None:
    """Routes with hostnames answer only their hosts; a wildcard matches subdomains."""
    routes.write(
        "hosts.yaml",
        route("host-a", rule("echo-a", "{path: {value: /}}"), hostnames="[a.example.com]")
        + "---\n"
        + route("host-wild", rule("echo-b", "{path: {value: /}}"), hostnames="['*.example.net']"),
    )
    routes.wait_for("/", "echo-a", host="a.example.com")
    assert routes.service_of("/", host="a.example.com:8080") == "echo-a"
    assert routes.service_of("/", host="x.example.net") == "echo-b"
    assert routes.service_of("/", host="y.x.example.net") == "echo-b"
    assert routes.service_of("/", host="example.net") == 404
    assert routes.service_of("/", host="b.example.com") == 404


def test_precedence(routes: Stack) -> None:
    """Exact beats prefix, longer prefix beats shorter, headers beat none, older route wins."""
    routes.write(
        "precedence.yaml",
        route(
            "newer",
            rule("echo-a", "{path: {value: /p}}") + rule("echo-c", "{path: {value: /tie}}"),
            created="2026-02-01T00:00:00Z",
        )
        + "---\n"
        + route(
            "older",
            rule("echo-b", "{path: {value: /p/longer}}")
            + rule("echo-c", "{path: {type: Exact, value: /p}}")
            + rule("echo-b", "{path: {value: /p}, headers: [{name: x-h, value: '1'}]}")
            + rule("echo-b", "{path: {value: /tie}}"),
            created="2026-01-01T00:00:00Z",
        ),
    )
    routes.wait_for("/p", "echo-c")
    assert routes.service_of("/p/x") == "echo-a"
    assert routes.service_of("/p/longer/x") == "echo-b"
    assert routes.service_of("/p/x", headers={"x-h": "1"}) == "echo-b"
    assert routes.service_of("/tie") == "echo-b"


def test_weighted_split(routes: Stack) -> None:
    """A 3:1 split sends 75% ± 7.5 points of 400 requests to the first backend."""
    routes.write(
        "split.yaml",
        route(
            "split",
            "    - backendRefs:\n"
            "        - {name: echo-a, port: 80, weight: 3}\n"
            "        - {name: echo-b, port: 80, weight: 1}\n",
        ),
    )
    routes.wait_for("/split", "echo-b")
    counts = Counter(routes.service_of("/split") for _ in range(400))
    assert set(counts) == {"echo-a", "echo-b"}
    share = counts["echo-a"] / 400
    assert 0.675 <= share <= 0.825, counts  # binomial sd is 2.2 points: > 3 sd either side


def test_unresolved_backend_answers_500(routes: Stack) -> None:
    """A rule whose only backend does not exist answers 500, and status says BackendNotFound."""
    routes.write(
        "missing.yaml", route("missing", rule("no-such-service", "{path: {value: /missing}}"))
    )
    routes.wait_for("/missing", 500)
    statuses = routes.plane.api("/api/status")
    entry = next(s for s in statuses if s["metadata"].get("name") == "missing")
    conditions = {c["type"]: c for c in entry["status"]["parents"][0]["conditions"]}
    assert conditions["ResolvedRefs"]["reason"] == "BackendNotFound"
    assert conditions["Accepted"]["status"] == "True"


def test_file_edit_and_delete_change_routing(routes: Stack) -> None:
    """Editing a file re-routes traffic without a restart; deleting it removes the route."""
    routes.write("edit.yaml", route("edit", rule("echo-a", "{path: {value: /edit}}")))
    routes.wait_for("/edit", "echo-a")
    routes.write("edit.yaml", route("edit", rule("echo-c", "{path: {value: /edit}}")))
    routes.wait_for("/edit", "echo-c")
    routes.remove("edit.yaml")
    routes.wait_for("/edit", 404)


def test_bad_file_is_reported_and_routing_goes_on(routes: Stack) -> None:
    """A file that does not parse shows in /api/errors; every other route keeps working."""
    routes.write("ok.yaml", route("ok", rule("echo-a", "{path: {value: /ok}}")))
    routes.wait_for("/ok", "echo-a")
    routes.write("broken.yaml", "kind: HTTPRoute\nmetadata: {name: [\n")
    wait_until(
        lambda: any(e["source"].endswith("broken.yaml") for e in routes.plane.api("/api/errors")),
        15,
    )
    assert routes.service_of("/ok") == "echo-a"
    routes.remove("broken.yaml")
    wait_until(lambda: routes.plane.api("/api/errors") == [], 15)


def test_clients_show_the_proxy_in_sync(routes: Stack) -> None:
    """/api/clients lists the Envoy with its Gateway, and every type it has is ACKed."""
    routes.write("sync.yaml", route("sync", rule("echo-b", "{path: {value: /sync}}")))
    routes.wait_for("/sync", "echo-b")

    def in_sync() -> bool:
        [client] = routes.plane.api("/api/clients")
        assert client["gateway"] == "default/gw"
        subscribed = [t for t in client["types"].values() if t["subscribed"]]
        assert {"clusters", "endpoints", "listeners", "routes"} <= {
            name for name, t in client["types"].items() if t["subscribed"]
        }
        return all(t["acked_version"] == t["sent_version"] and not t["nack"] for t in subscribed)

    wait_until(in_sync, 15)
