"""HTTPRoute filters and timeouts through a real Envoy, configured by watched files.

Each test serves its route on its own hostname, so its first wait can only succeed once its
own configuration reached Envoy (not a leftover of another test).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from support.echo import EchoBackend
from support.http import HttpResult
from support.stack import Stack, backend_objects
from support.wait import wait_until

pytestmark = pytest.mark.e2e


def route(name: str, rules: str) -> str:
    """An HTTPRoute for host ``<name>.example`` on the stack's Gateway; ``rules`` is YAML."""
    return (
        "apiVersion: gateway.networking.k8s.io/v1\n"
        "kind: HTTPRoute\n"
        f"metadata: {{name: {name}, namespace: default}}\n"
        "spec:\n"
        "  parentRefs: [{name: gw}]\n"
        f"  hostnames: [{name}.example]\n"
        "  rules:\n" + rules
    )


def rule(match: str, filters: str = "", backends: str = "[{name: echo-a, port: 80}]") -> str:
    """One rule: a match, filters (YAML flow list) and backendRefs (YAML flow list or "")."""
    text = f"    - matches: [{match}]\n"
    if filters:
        text += f"      filters: {filters}\n"
    if backends:
        text += f"      backendRefs: {backends}\n"
    return text


def echoed(result: HttpResult) -> dict[str, Any]:
    """The echo backend's description of the request it got (fails on any other answer)."""
    assert result.status == 200, (result.status, result.text)
    document: dict[str, Any] = result.json
    return document


def header(document: dict[str, Any], name: str) -> str | None:
    """A request header the echo backend received, its values joined as one field."""
    values = document["headers"].get(name)
    return None if values is None else ",".join(values)


def test_request_header_modifier(routes: Stack) -> None:
    """RequestHeaderModifier sets, appends and removes headers the backend receives."""
    modifier = (
        "[{type: RequestHeaderModifier, requestHeaderModifier: {"
        "set: [{name: X-Header-Set, value: set-overwrites-values}], "
        "add: [{name: X-Header-Add, value: header-val-1}, "
        "{name: x-header-add-append, value: header-val-2}], "
        "remove: [X-HEADER-REMOVE]}}]"
    )
    routes.write("req-headers.yaml", route("req-headers", rule("{path: {value: /}}", modifier)))
    host = "req-headers.example"
    routes.wait_for("/", "echo-a", host=host)
    sent = {
        "X-Header-Set": "set-val",
        "X-Header-Add-Append": "append-val-1",
        "X-Header-Remove": "x",
    }
    document = echoed(routes.get("/", host=host, headers=sent))
    assert header(document, "X-Header-Set") == "set-overwrites-values"
    assert header(document, "X-Header-Add") == "header-val-1"
    assert header(document, "X-Header-Add-Append") == "append-val-1,header-val-2"
    assert header(document, "X-Header-Remove") is None


def test_response_header_modifier(routes: Stack) -> None:
    """ResponseHeaderModifier sets, adds and removes headers the client receives."""
    modifier = (
        "[{type: ResponseHeaderModifier, responseHeaderModifier: {"
        "set: [{name: X-Header-Set, value: set-value}], "
        "add: [{name: X-Header-Add, value: add-value}], remove: [X-Header-Remove]}}]"
    )
    routes.write("resp-headers.yaml", route("resp-headers", rule("{path: {value: /}}", modifier)))
    host = "resp-headers.example"
    routes.wait_for("/", "echo-a", host=host)
    asked = {"X-Echo-Set-Header": "X-Header-Set:from-backend,X-Header-Remove:gone"}
    result = routes.get("/", host=host, headers=asked)
    assert result.status == 200
    assert result.header("x-header-set") == "set-value"
    assert result.header("x-header-add") == "add-value"
    assert result.header("x-header-remove") is None


def test_redirects(routes: Stack) -> None:
    """RequestRedirect answers with its status and Location; no backend is contacted."""
    port = routes.listener_port

    def redirect(match: str, fields: str) -> str:
        return rule(match, f"[{{type: RequestRedirect, requestRedirect: {fields}}}]", "")

    routes.write(
        "redirects.yaml",
        route(
            "redirects",
            redirect("{path: {value: /host}}", "{hostname: example.org}")
            + redirect("{path: {value: /https}}", "{scheme: https, statusCode: 301}")
            + redirect(
                "{path: {value: /old}}",
                "{port: 8443, path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}",
            )
            + redirect(
                "{path: {value: /full}}",
                "{statusCode: 308, path: {type: ReplaceFullPath, replaceFullPath: /replaced}}",
            ),
        ),
    )
    host = "redirects.example"
    routes.wait_for("/host", 302, host=host)
    before = {name: len(b.requests) for name, b in routes.backends.items()}
    expected = {
        "/host/x?q=1": (302, f"http://example.org:{port}/host/x?q=1"),
        "/https/x": (301, "https://redirects.example/https/x"),
        "/old/lemon?q=1": (302, "http://redirects.example:8443/new/lemon?q=1"),
        "/old": (302, "http://redirects.example:8443/new"),
        "/full/path/original": (308, f"http://redirects.example:{port}/replaced"),
    }
    for path, (status, location) in expected.items():
        result = routes.get(path, host=host)
        assert (result.status, result.header("location")) == (status, location), path
    assert {name: len(b.requests) for name, b in routes.backends.items()} == before


def test_rewrite_host_and_path(routes: Stack) -> None:
    """URLRewrite changes the Host and path the backend sees, as the spec's table says."""

    def rewrite(match: str, fields: str) -> str:
        return rule(match, f"[{{type: URLRewrite, urlRewrite: {fields}}}]")

    routes.write(
        "rewrites.yaml",
        route(
            "rewrites",
            rewrite(
                "{path: {value: /prefix/one}}",
                "{path: {type: ReplacePrefixMatch, replacePrefixMatch: /one/}}",
            )
            + rewrite(
                "{path: {value: /strip-prefix}}",
                "{path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}",
            )
            + rewrite(
                "{path: {value: /full/one}}",
                "{hostname: full.example.org, "
                "path: {type: ReplaceFullPath, replaceFullPath: /one}}",
            ),
        ),
    )
    host = "rewrites.example"
    routes.wait_for("/full/one", "echo-a", host=host)
    expected = {
        "/prefix/one/two": ("/one/two", host),
        "/prefix/one": ("/one", host),
        "/prefix/one/": ("/one/", host),
        "/strip-prefix/three?x=1": ("/three?x=1", host),
        "/strip-prefix": ("/", host),
        "/full/one/two?y=2": ("/one?y=2", "full.example.org"),
    }
    for path, (seen_path, seen_host) in expected.items():
        document = echoed(routes.get(path, host=host))
        assert (document["path"], document["host"]) == (seen_path, seen_host), path


@pytest.fixture
def mirror_backend(routes: Stack) -> Iterator[EchoBackend]:
    """An extra echo backend, Service echo-mirror, that counts the requests it gets."""
    backend = routes.echoes.start("echo-mirror")
    routes.write("mirror-backend.yaml", backend_objects({"echo-mirror": backend}))
    try:
        yield backend
    finally:
        routes.echoes.stop(backend)


def test_request_mirror(routes: Stack, mirror_backend: EchoBackend) -> None:
    """RequestMirror sends the mirror backend a copy; the client gets the primary's answer."""
    mirror = "[{type: RequestMirror, requestMirror: {backendRef: {name: echo-mirror, port: 80}}}]"
    routes.write("mirror.yaml", route("mirror", rule("{path: {value: /}}", mirror)))
    host = "mirror.example"
    routes.wait_for("/mirrored", "echo-a", host=host)
    wait_until(lambda: mirror_backend.requests, 10, message="the mirror never got a copy")
    mirror_backend.requests.clear()
    for _ in range(3):
        assert routes.service_of("/mirrored", host=host) == "echo-a"
    wait_until(lambda: len(mirror_backend.requests) >= 3, 10, message="mirror copies missing")
    copy = mirror_backend.requests[-1]
    assert copy.target == "/mirrored"
    assert (copy.header("host") or "").startswith("mirror.example")


def test_request_timeout_answers_504(routes: Stack) -> None:
    """A 200ms request timeout against a backend that waits 1s answers 504 within the bound."""
    rules = rule("{path: {value: /slow}}") + "      timeouts: {request: 200ms}\n"
    rules += rule("{path: {value: /per-try}}") + "      timeouts: {backendRequest: 200ms}\n"
    routes.write("timeouts.yaml", route("timeouts", rules))
    host = "timeouts.example"
    routes.wait_for("/slow", "echo-a", host=host)
    for path in ("/slow?delay=1s", "/per-try?delay=1s"):
        started = time.monotonic()
        result = routes.get(path, host=host)
        elapsed = time.monotonic() - started
        assert result.status == 504, (path, result.status, result.text)
        assert elapsed < 0.9, (path, elapsed)
    assert routes.service_of("/slow?delay=50ms", host=host) == "echo-a"
