"""gRPC echo backends and a client for end-to-end tests, with no .proto and no generated code.

Who calls it: tests/e2e/test_grpc.py, which puts these servers behind Envoy.

    server = GrpcEchoServer.start("grpc-a")      # 127.0.0.1, a free port
    call(f"127.0.0.1:{server.port}", "/echo.Echo/Ping", authority="x.test")
    # -> {"server": "grpc-a", "method": "/echo.Echo/Ping", "metadata": {...}}
    server.stop()

Service ``echo.Echo`` has the unary methods ``Ping`` and ``Other``; messages are raw bytes
(identity serializers), and each answer is JSON naming the server, the method and the
request metadata. A method the server does not have gets UNIMPLEMENTED from grpc itself.

What it must not do: leave servers or channels open (pytest turns warnings into errors).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import grpc
import yaml

from support.stack import service_objects

__all__ = ["SERVICE", "GrpcEchoServer", "call", "grpc_backend_objects"]

SERVICE = "echo.Echo"
METHODS = ("Ping", "Other")
_CALL_TIMEOUT = 3.0


@dataclass
class GrpcEchoServer:
    name: str
    port: int
    server: grpc.Server

    @classmethod
    def start(cls, name: str) -> GrpcEchoServer:
        """A running echo server on 127.0.0.1 (h2c, as gRPC without TLS always is)."""
        server = grpc.server(ThreadPoolExecutor(max_workers=4, thread_name_prefix=name))
        handlers = {
            method: grpc.unary_unary_rpc_method_handler(_answer(name, f"/{SERVICE}/{method}"))
            for method in METHODS
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        return cls(name, port, server)

    def stop(self) -> None:
        self.server.stop(grace=None).wait(5)


def _answer(name: str, method: str) -> Any:
    def handle(request: bytes, context: grpc.ServicerContext) -> bytes:
        metadata = dict(context.invocation_metadata())
        body = {"server": name, "method": method, "request": request.decode(), "metadata": metadata}
        return json.dumps(body).encode()

    return handle


def call(
    target: str,
    method: str,
    *,
    authority: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One unary call; the answer's JSON. Raises grpc.RpcError when the call fails."""
    options = [("grpc.default_authority", authority)] if authority else []
    with grpc.insecure_channel(target, options=options) as channel:
        stub = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        answer = stub(b"hello", metadata=tuple((metadata or {}).items()), timeout=_CALL_TIMEOUT)
    result: dict[str, Any] = json.loads(answer)
    return result


def grpc_backend_objects(
    servers: Mapping[str, GrpcEchoServer], app_protocols: Mapping[str, str] | None = None
) -> str:
    """Services and EndpointSlices of the servers (port 8080 -> their port), as YAML."""
    docs: list[dict[str, Any]] = []
    for name, server in servers.items():
        port: dict[str, Any] = {"name": "grpc", "port": 8080, "targetPort": server.port}
        if app_protocols and name in app_protocols:
            port["appProtocol"] = app_protocols[name]
        docs += service_objects(name, port, server.port)
    return yaml.safe_dump_all(docs)
