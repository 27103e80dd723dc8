"""GRPCRoute through a real Envoy to real gRPC servers (h2c), configured by watched files.

Each test serves its routes on its own hostname (the gRPC authority), so its first wait can
only succeed once its own configuration reached Envoy.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import grpc
import pytest
from support.grpc_echo import GrpcEchoServer, call, grpc_backend_objects
from support.stack import Stack
from support.wait import wait_until

pytestmark = pytest.mark.e2e

BACKENDS_FILE = "grpc-backends.yaml"
SERVERS = ("grpc-a", "grpc-b", "grpc-c")


@pytest.fixture(scope="module")
def grpc_servers(stack: Stack) -> Iterator[dict[str, GrpcEchoServer]]:
    """gRPC echo servers as Services; grpc-c says appProtocol kubernetes.io/h2c."""
    servers = {name: GrpcEchoServer.start(name) for name in SERVERS}
    try:
        path = stack.config_dir / BACKENDS_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(grpc_backend_objects(servers, {"grpc-c": "kubernetes.io/h2c"}))
        tmp.replace(path)
        yield servers
    finally:
        (stack.config_dir / BACKENDS_FILE).unlink(missing_ok=True)
        for server in servers.values():
            server.stop()


def grpc_route(name: str, hostname: str, rules: str) -> str:
    """A GRPCRoute on the stack's Gateway; ``rules`` is YAML indented for spec.rules."""
    return (
        "apiVersion: gateway.networking.k8s.io/v1\n"
        "kind: GRPCRoute\n"
        f"metadata: {{name: {name}, namespace: default}}\n"
        "spec:\n"
        "  parentRefs: [{name: gw}]\n"
        f"  hostnames: [{hostname}]\n"
        "  rules:\n" + rules
    )


def answer(
    stack: Stack, method: str, authority: str, metadata: Mapping[str, str] | None = None
) -> str | grpc.StatusCode:
    """The server that answered the call, or the gRPC status code when the call failed."""
    target = f"127.0.0.1:{stack.listener_port}"
    try:
        return str(call(target, method, authority=authority, metadata=metadata)["server"])
    except grpc.RpcError as error:  # also a grpc.Call: it has the status code
        code: grpc.StatusCode = error.code()
        return code


def wait_answer(
    stack: Stack,
    expected: str | grpc.StatusCode,
    method: str,
    authority: str,
    metadata: Mapping[str, str] | None = None,
) -> None:
    wait_until(
        lambda: answer(stack, method, authority, metadata) == expected,
        15,
        message=lambda: (
            f"{authority}{method} never answered by {expected}; last: "
            f"{answer(stack, method, authority, metadata)}\n{stack.plane.log_tail(10)}"
        ),
    )


@pytest.mark.usefixtures("grpc_servers")
def test_method_matches(routes: Stack) -> None:
    """Service+method and method-only matches pick backends; other calls are UNIMPLEMENTED."""
    routes.write(
        "methods.yaml",
        grpc_route(
            "methods",
            "methods.test",
            "    - matches: [{method: {service: echo.Echo, method: Ping}}]\n"
            "      backendRefs: [{name: grpc-a, port: 8080}]\n"
            "    - matches: [{method: {method: Other}}]\n"
            "      backendRefs: [{name: grpc-b, port: 8080}]\n",
        ),
    )
    wait_answer(routes, "grpc-a", "/echo.Echo/Ping", "methods.test")
    assert answer(routes, "/echo.Echo/Other", "methods.test") == "grpc-b"
    assert answer(routes, "/echo.Echo/Missing", "methods.test") == grpc.StatusCode.UNIMPLEMENTED
    assert answer(routes, "/other.Svc/Ping", "methods.test") == grpc.StatusCode.UNIMPLEMENTED
    # Not gRPC (no application/grpc content-type): no route, although the path matches.
    assert routes.get("/echo.Echo/Ping", host="methods.test", method="POST").status == 404


@pytest.mark.usefixtures("grpc_servers")
def test_header_match(routes: Stack) -> None:
    """A header match selects its backend, and the metadata reaches the backend."""
    routes.write(
        "headers.yaml",
        grpc_route(
            "headers",
            "headers.test",
            "    - matches: [{headers: [{name: x-pick, value: b}]}]\n"
            "      backendRefs: [{name: grpc-b, port: 8080}]\n"
            "    - backendRefs: [{name: grpc-a, port: 8080}]\n",
        ),
    )
    wait_answer(routes, "grpc-b", "/echo.Echo/Ping", "headers.test", {"x-pick": "b"})
    assert answer(routes, "/echo.Echo/Ping", "headers.test") == "grpc-a"
    assert answer(routes, "/echo.Echo/Other", "headers.test", {"x-pick": "c"}) == "grpc-a"
    target = f"127.0.0.1:{routes.listener_port}"
    reply = call(target, "/echo.Echo/Ping", authority="headers.test", metadata={"x-pick": "b"})
    assert reply["metadata"]["x-pick"] == "b"


@pytest.mark.usefixtures("grpc_servers")
def test_unresolved_backend_is_unavailable(routes: Stack) -> None:
    """A GRPCRoute whose backend does not exist answers UNAVAILABLE, as the spec requires."""
    routes.write(
        "broken.yaml",
        grpc_route(
            "broken", "broken.test", "    - backendRefs: [{name: no-such-service, port: 8080}]\n"
        ),
    )
    wait_answer(routes, grpc.StatusCode.UNAVAILABLE, "/echo.Echo/Ping", "broken.test")


@pytest.mark.usefixtures("grpc_servers")
def test_httproute_to_h2c_service(routes: Stack) -> None:
    """An HTTPRoute reaches a Service port of appProtocol kubernetes.io/h2c over HTTP/2."""
    routes.write(
        "h2c.yaml",
        "apiVersion: gateway.networking.k8s.io/v1\n"
        "kind: HTTPRoute\n"
        "metadata: {name: h2c, namespace: default}\n"
        "spec:\n"
        "  parentRefs: [{name: gw}]\n"
        "  hostnames: [h2c.test]\n"
        "  rules:\n"
        "    - matches: [{path: {type: Exact, value: /echo.Echo/Ping}}]\n"
        "      backendRefs: [{name: grpc-c, port: 8080}]\n"
        "    - matches: [{path: {type: Exact, value: /echo.Echo/Other}}]\n"
        "      backendRefs: [{name: grpc-a, port: 8080}]\n",
    )
    wait_answer(routes, "grpc-c", "/echo.Echo/Ping", "h2c.test")
    # grpc-a has no appProtocol: an HTTPRoute speaks HTTP/1.1 to it, which gRPC refuses.
    assert answer(routes, "/echo.Echo/Other", "h2c.test") == grpc.StatusCode.UNAVAILABLE


@pytest.mark.usefixtures("grpc_servers")
def test_request_header_modifier(routes: Stack) -> None:
    """A RequestHeaderModifier filter sets and removes metadata before the backend sees it."""
    routes.write(
        "modifier.yaml",
        grpc_route(
            "modifier",
            "modifier.test",
            "    - filters:\n"
            "        - type: RequestHeaderModifier\n"
            "          requestHeaderModifier:\n"
            "            set: [{name: x-set, value: by-gateway}]\n"
            "            remove: [x-drop]\n"
            "      backendRefs: [{name: grpc-b, port: 8080}]\n",
        ),
    )
    wait_answer(routes, "grpc-b", "/echo.Echo/Ping", "modifier.test")
    target = f"127.0.0.1:{routes.listener_port}"
    sent = {"x-set": "by-client", "x-drop": "1", "x-keep": "2"}
    reply = call(target, "/echo.Echo/Ping", authority="modifier.test", metadata=sent)
    seen = reply["metadata"]
    assert (seen["x-set"], "x-drop" in seen, seen["x-keep"]) == ("by-gateway", False, "2")
