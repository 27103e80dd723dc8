"""An HTTP echo backend for the demo and the end-to-end tests.

Who calls it: ``xdsctl echo --port N --name NAME [--namespace NS] [--host H]`` through
``main_echo``, and the test harness (``tests/support/echo.py``) through ``start_echo``.

What it does: answers every request with 200 and a JSON document describing what it
received, with the field names of the Gateway API conformance suite's echo server
(``conformance/echo-basic`` in kubernetes-sigs/gateway-api), so a test can tell which
backend answered and what the proxy sent it::

    {"path": "/a?b=c", "host": "example.com", "method": "GET", "proto": "HTTP/1.1",
     "headers": {"X-Forwarded-Proto": ["http"], ...},
     "namespace": "default", "ingress": "", "service": "echo-a", "pod": "echo-a-1234",
     "tls": {...} (only over TLS), "sni": ""}

As in the Go original, ``path`` is the request-target as sent (query included), ``host``
is the Host header, and ``headers`` maps Go-canonical names (``X-Request-Id``) to every
value, without Host and Transfer-Encoding.

Knobs, as in the conformance echo server:
- ``X-Echo-Set-Header: Name:value[,Name2:value2]`` adds those response headers;
- ``?delay=DURATION`` (a Go duration such as ``250ms`` or ``1.5s``) waits before answering.

What it must not do: log per request, or answer anything but the echo (no routing).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import ssl
import sys
from dataclasses import dataclass
from typing import Any

from xds_server.httpd import (
    Handler,
    Request,
    Response,
    close_server,
    record_sni,
    serve,
    server_port,
)

__all__ = [
    "EchoContext",
    "canonical_header_key",
    "echo_document",
    "main_echo",
    "make_handler",
    "parse_go_duration",
    "run_echo",
    "start_echo",
    "tls_context",
]

MAX_DELAY_SECONDS = 300.0

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_HIDDEN_HEADERS = frozenset({"host", "transfer-encoding"})


@dataclass(frozen=True, slots=True)
class EchoContext:
    """Who this backend is: echoed back in every response."""

    service: str
    namespace: str = "default"
    pod: str = ""
    ingress: str = ""


def canonical_header_key(name: str) -> str:
    """The name as Go's textproto.CanonicalMIMEHeaderKey prints it (``x-foo`` -> ``X-Foo``)."""
    if not name or any(not _is_go_token_char(ch) for ch in name):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def _is_go_token_char(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch in "!#$%&'*+-.^_`|~")


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string (``1m30s``, ``250ms``, ``0``); ValueError if invalid."""
    body = text.strip()
    sign = -1.0 if body.startswith("-") else 1.0
    body = body.lstrip("+-")
    if body == "0":
        return 0.0
    position, total = 0, 0.0
    while position < len(body):
        match = _DURATION_PART.match(body, position)
        if match is None:
            raise ValueError(f"time: invalid duration {text!r}")
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position == 0:
        raise ValueError(f"time: invalid duration {text!r}")
    return sign * total


def echo_document(request: Request, context: EchoContext) -> dict[str, Any]:
    """The JSON document the conformance echo server returns for ``request``."""
    headers: dict[str, list[str]] = {}
    for name, value in request.headers:
        if name.lower() not in _HIDDEN_HEADERS:
            headers.setdefault(canonical_header_key(name), []).append(value)
    document: dict[str, Any] = {
        "path": request.target,
        "host": request.header("host", "") or "",
        "method": request.method,
        "proto": request.version,
        "headers": dict(sorted(headers.items())),
        "namespace": context.namespace,
        "ingress": context.ingress,
        "service": context.service,
        "pod": context.pod,
    }
    if request.tls is not None:
        tls: dict[str, Any] = {
            "version": request.tls.version,  # "TLSv1.3": Python and Go spell it alike
            "serverName": request.tls.server_name or "",
            "cipherSuite": request.tls.cipher,
        }
        if request.tls.peer_certificate_pem:
            tls["peerCertificates"] = [request.tls.peer_certificate_pem]
        if request.tls.alpn:
            tls["negotiatedProtocol"] = request.tls.alpn
        document["tls"] = tls
    document["sni"] = (request.tls.server_name or "") if request.tls is not None else ""
    return document


def _echo_response_headers(request: Request) -> list[tuple[str, str]]:
    """Headers asked for with X-Echo-Set-Header, repeated names joined with commas."""
    values: dict[str, str] = {}
    for header_list in request.headers.get_all("x-echo-set-header"):
        for item in header_list.split(","):
            name, _, value = item.strip().partition(":")
            if not name:
                continue
            value = value.strip()
            values[name] = f"{values[name]},{value}" if name in values else value
    return list(values.items())


def make_handler(context: EchoContext) -> Handler:
    """The request handler of an echo backend that calls itself ``context``."""

    async def handle(request: Request) -> Response:
        return await _respond(request, context)

    return handle


async def _respond(request: Request, context: EchoContext) -> Response:
    delay = request.query_params.get("delay", [""])[0]
    if delay:
        try:
            seconds = parse_go_duration(delay)
        except ValueError as exc:
            return _json_error(str(exc))
        await asyncio.sleep(min(max(seconds, 0.0), MAX_DELAY_SECONDS))
    body = json.dumps(echo_document(request, context), indent=1).encode()
    headers = [
        *_echo_response_headers(request),
        ("Content-Type", "application/json"),
        ("X-Content-Type-Options", "nosniff"),
    ]
    return Response(200, headers, body)


def _json_error(message: str) -> Response:
    headers = (("Content-Type", "application/json"), ("X-Content-Type-Options", "nosniff"))
    return Response(500, headers, json.dumps({"message": message}).encode())


async def start_echo(
    service: str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    namespace: str = "default",
    pod: str | None = None,
    ingress: str = "",
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[asyncio.Server, EchoContext]:
    """Start an echo backend; the pod name defaults to ``<service>-<bound port>``."""
    bound: list[EchoContext] = []  # filled once the port is known, before any request

    async def handle(request: Request) -> Response:
        return await _respond(request, bound[0])

    server = await serve(handle, host, port, ssl_context=ssl_context)
    bound.append(
        EchoContext(
            service=service,
            namespace=namespace,
            pod=pod or f"{service}-{server_port(server)}",
            ingress=ingress,
        )
    )
    return server, bound[0]


async def run_echo(
    host: str,
    port: int,
    service: str,
    *,
    namespace: str = "default",
    pod: str | None = None,
    ingress: str = "",
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """Serve an echo backend until cancelled; prints one line with the bound address."""
    server, context = await start_echo(
        service,
        host=host,
        port=port,
        namespace=namespace,
        pod=pod,
        ingress=ingress,
        ssl_context=ssl_context,
    )
    print(
        f"echo {context.namespace}/{context.service} (pod {context.pod}) "
        f"listening on {host}:{server_port(server)}",
        flush=True,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await close_server(server)


def tls_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server TLS context from PEM files that records each client's SNI."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    context.set_alpn_protocols(["http/1.1"])
    return record_sni(context)


def main_echo(args: argparse.Namespace) -> int:
    """Entry point of ``xdsctl echo``.

    Reads ``args.port`` and ``args.name`` (the service), and if present ``host``,
    ``namespace``, ``pod``, ``ingress``, ``tls_cert`` and ``tls_key`` (PEM files: serve TLS).
    """
    cert = getattr(args, "tls_cert", None)
    key = getattr(args, "tls_key", None)
    try:
        asyncio.run(
            run_echo(
                host=getattr(args, "host", None) or "127.0.0.1",
                port=int(args.port),
                service=args.name,
                namespace=getattr(args, "namespace", None) or "default",
                pod=getattr(args, "pod", None),
                ingress=getattr(args, "ingress", None) or "",
                ssl_context=tls_context(cert, key) if cert and key else None,
            )
        )
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"xdsctl echo: {exc}", file=sys.stderr)
        return 1
    return 0
