"""A minimal asyncio HTTP/1.1 server (standard library only).

Who calls it: the admin API (health, readiness, metrics, JSON under ``/api/``) and the echo
backend (``xds_server.echo``) used by the demo and the end-to-end tests.

What it does: parses one request at a time per connection (request line, headers, a body
framed by Content-Length or chunked transfer coding), calls an ``async`` handler, and writes
the response head and body in ONE write on a TCP_NODELAY socket, so loopback latency is not
distorted by Nagle and delayed ACKs. Connections are kept alive (the HTTP/1.1 default;
``Connection: close`` is honoured; HTTP/1.0 closes unless it asks for keep-alive), so
pipelined requests are answered in order.

What it must not do: crash on malformed input (bad framing gets 400, oversized heads 431,
oversized bodies 413, and the connection is closed), grow without bound (heads, header
counts and bodies are capped), or log per request. It is not a general web framework: no
routing, no HTTP/2, no streaming bodies, no compression. A handler that raises gets a 500
(logged with its traceback); the connection goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
import ssl
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

__all__ = [
    "Handler",
    "Headers",
    "Request",
    "Response",
    "TLSInfo",
    "close_server",
    "record_sni",
    "serve",
    "server_port",
]

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 64 * 1024
MAX_HEADER_COUNT = 100
MAX_BODY_BYTES = 16 * 1024 * 1024
_MAX_CHUNK_LINE = 1024
_LINGER_SECONDS = 1.0

_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION = re.compile(r"HTTP/([0-9])\.([0-9])")
_NO_BODY_STATUSES = frozenset({204, 304})
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})


class Headers:
    """An immutable, ordered list of (name, value) pairs with case-insensitive lookup."""

    __slots__ = ("_index", "_pairs")

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._pairs: tuple[tuple[str, str], ...] = tuple(pairs)
        index: dict[str, list[str]] = {}
        for name, value in self._pairs:
            index.setdefault(name.lower(), []).append(value)
        self._index = index

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name`` (any case), or ``default``."""
        values = self._index.get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name`` (any case), in the order received."""
        return list(self._index.get(name.lower(), ()))

    def tokens(self, name: str) -> set[str]:
        """The comma-separated, lower-cased tokens of every ``name`` header (Connection)."""
        return {
            token.strip().lower()
            for value in self.get_all(name)
            for token in value.split(",")
            if token.strip()
        }

    @property
    def pairs(self) -> tuple[tuple[str, str], ...]:
        """The headers as received: names keep their case, duplicates stay separate."""
        return self._pairs

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def __repr__(self) -> str:
        return f"Headers({list(self._pairs)!r})"


@dataclass(frozen=True, slots=True)
class TLSInfo:
    """What the TLS handshake of the connection negotiated (None fields: not negotiated)."""

    version: str
    cipher: str
    server_name: str | None
    alpn: str | None
    peer_certificate_pem: str | None


@dataclass(frozen=True, slots=True)
class Request:
    """One parsed request. ``target`` is the request-target exactly as sent; ``path`` and
    ``query`` are its two halves around the first ``?``, not percent-decoded."""

    method: str
    target: str
    path: str
    query: str
    version: str
    headers: Headers
    body: bytes = b""
    peer: tuple[str, int] | None = None
    tls: TLSInfo | None = None

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (any case), or ``default``."""
        return self.headers.get(name, default)

    @property
    def query_params(self) -> dict[str, list[str]]:
        """The query string decoded into name -> values (blank values kept)."""
        return parse_qs(self.query, keep_blank_values=True)


@dataclass(frozen=True, slots=True)
class Response:
    """A complete response. Framing headers (Content-Length etc.) are set by the server."""

    status: int = 200
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""
    reason: str | None = None

    @classmethod
    def json(cls, value: Any, status: int = 200, indent: int | None = None) -> Response:
        """A JSON response of ``value`` (Content-Type application/json)."""
        body = json.dumps(value, indent=indent).encode() + b"\n"
        return cls(status, (("Content-Type", "application/json"),), body)

    @classmethod
    def text(cls, text: str, status: int = 200, content_type: str = "text/plain") -> Response:
        """A UTF-8 text response."""
        return cls(status, (("Content-Type", f"{content_type}; charset=utf-8"),), text.encode())


Handler = Callable[[Request], Awaitable[Response]]


class _BadRequestError(Exception):
    """Malformed input: answered with ``status`` and the connection is closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# Connection tasks of every live server, so close_server() can end idle keep-alive peers.
_CONNECTIONS: weakref.WeakKeyDictionary[asyncio.AbstractServer, set[asyncio.Task[None]]] = (
    weakref.WeakKeyDictionary()
)


async def serve(
    handler: Handler,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    ssl_context: ssl.SSLContext | None = None,
    max_body: int = MAX_BODY_BYTES,
) -> asyncio.Server:
    """Listen on host:port (0 picks a free port: see ``server_port``) and serve ``handler``."""
    tasks: set[asyncio.Task[None]] = set()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            tasks.add(task)
        try:
            await _Connection(reader, writer, handler, max_body).run()
        finally:
            if task is not None:
                tasks.discard(task)

    server = await asyncio.start_server(
        on_connect, host, port, limit=MAX_HEAD_BYTES, ssl=ssl_context, reuse_address=True
    )
    _CONNECTIONS[server] = tasks
    return server


def server_port(server: asyncio.AbstractServer) -> int:
    """The TCP port a server from ``serve`` is bound to."""
    sockets = getattr(server, "sockets", ())
    if not sockets:
        raise RuntimeError("server is not listening")
    return int(sockets[0].getsockname()[1])


async def close_server(server: asyncio.AbstractServer) -> None:
    """Stop listening, end every open connection (idle or not) and wait for them."""
    server.close()
    tasks = list(_CONNECTIONS.pop(server, ()))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await server.wait_closed()


class _Connection:
    """Reads requests from one connection and writes their responses, in order."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        handler: Handler,
        max_body: int,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.handler = handler
        self.max_body = max_body
        peer = writer.get_extra_info("peername")
        self.peer = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None
        self.tls = _tls_info(writer)

    async def run(self) -> None:
        _set_nodelay(self.writer)
        try:
            while await self._one_request():
                pass
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the peer went away mid-request; nothing to answer
        finally:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()

    async def _one_request(self) -> bool:
        """Serve one request; False when the connection must close."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                await self._reject(400, "incomplete request head")
            return False
        except asyncio.LimitOverrunError:
            await self._reject(431, "request head too large")
            return False
        if not head.strip(b"\r\n"):
            return True  # stray empty lines between requests are allowed (RFC 9112 2.2)
        try:
            request, keep_alive = await self._parse(head)
        except _BadRequestError as exc:
            await self._reject(exc.status, str(exc))
            return False
        response = await self._call_handler(request)
        if "close" in Headers(response.headers).tokens("connection"):
            keep_alive = False
        await self._write(
            response,
            close=not keep_alive,
            head_only=request.method == "HEAD",
            announce_keep_alive=keep_alive and request.version == "HTTP/1.0",
        )
        return keep_alive

    async def _reject(self, status: int, message: str) -> None:
        """Answer an error, half-close, and drain what the client still sends (bounded),
        so closing with unread input does not turn into a reset that eats the answer."""
        await self._write(_error_response(status, message), close=True)
        with contextlib.suppress(Exception):
            if self.writer.can_write_eof():
                self.writer.write_eof()
            async with asyncio.timeout(_LINGER_SECONDS):
                drained = 0
                while drained < MAX_BODY_BYTES and (chunk := await self.reader.read(65536)):
                    drained += len(chunk)

    async def _parse(self, head: bytes) -> tuple[Request, bool]:
        lines = head.lstrip(b"\r\n").decode("latin-1").split("\r\n")
        method, target, version = _parse_request_line(lines[0])
        headers = Headers(_parse_header_lines(lines[1:]))
        connection = headers.tokens("connection")
        if version == "HTTP/1.0":
            keep_alive = "keep-alive" in connection
        else:
            keep_alive = "close" not in connection
        body = await self._read_body(headers, version)
        path, _, query = target.partition("?")
        request = Request(
            method=method,
            target=target,
            path=path,
            query=query,
            version=version,
            headers=headers,
            body=body,
            peer=self.peer,
            tls=self.tls,
        )
        return request, keep_alive

    async def _read_body(self, headers: Headers, version: str) -> bytes:
        transfer_encoding = headers.get_all("transfer-encoding")
        lengths = {value.strip() for value in headers.get_all("content-length")}
        if transfer_encoding:
            if lengths:
                raise _BadRequestError(400, "both Transfer-Encoding and Content-Length")
            codings = [c.strip().lower() for v in transfer_encoding for c in v.split(",")]
            if codings[-1] != "chunked" or version == "HTTP/1.0":
                raise _BadRequestError(400, "unsupported Transfer-Encoding")
            await self._continue(headers)
            return await self._read_chunked()
        if not lengths:
            return b""
        if len(lengths) > 1:
            raise _BadRequestError(400, "conflicting Content-Length values")
        value = lengths.pop()
        if not value.isdigit() or not value.isascii():
            raise _BadRequestError(400, "invalid Content-Length")
        length = int(value)
        if length > self.max_body:
            raise _BadRequestError(413, "request body too large")
        if length == 0:
            return b""
        await self._continue(headers)
        return await self.reader.readexactly(length)

    async def _continue(self, headers: Headers) -> None:
        """Answer ``Expect: 100-continue`` before reading the body the client holds back."""
        if (headers.get("expect") or "").strip().lower() == "100-continue":
            self.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await self.writer.drain()

    async def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = await self._read_line()
            size_text = line.split(b";", 1)[0].strip(b" \t")
            if not _HEX.fullmatch(size_text):
                raise _BadRequestError(400, "invalid chunk size")
            size = int(size_text, 16)
            if size == 0:
                break
            total += size
            if total > self.max_body:
                raise _BadRequestError(413, "request body too large")
            chunks.append(await self.reader.readexactly(size))
            if await self.reader.readexactly(2) != b"\r\n":
                raise _BadRequestError(400, "chunk not followed by CRLF")
        trailer_bytes = 0
        while line := await self._read_line():  # trailers are read and dropped
            trailer_bytes += len(line)
            if trailer_bytes > MAX_HEAD_BYTES:
                raise _BadRequestError(431, "trailers too large")
        return b"".join(chunks)

    async def _read_line(self) -> bytes:
        """One CRLF-terminated line without its CRLF, bounded in length."""
        try:
            line = await self.reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError:
            raise _BadRequestError(400, "line too long") from None
        if len(line) > _MAX_CHUNK_LINE:
            raise _BadRequestError(400, "line too long")
        return line[:-2]

    async def _call_handler(self, request: Request) -> Response:
        try:
            return await self.handler(request)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("HTTP handler failed for %s %s", request.method, request.target)
            return _error_response(500, "internal server error")

    async def _write(
        self,
        response: Response,
        *,
        close: bool,
        head_only: bool = False,
        announce_keep_alive: bool = False,
    ) -> None:
        self.writer.write(
            _encode_response(response, close, head_only, announce_keep_alive=announce_keep_alive)
        )
        await self.writer.drain()


def _parse_request_line(line: str) -> tuple[str, str, str]:
    parts = line.split(" ")
    if len(parts) != 3:
        raise _BadRequestError(400, "malformed request line")
    method, target, version = parts
    if not _TOKEN.fullmatch(method) or not target or not target.isprintable():
        raise _BadRequestError(400, "malformed request line")
    match = _VERSION.fullmatch(version)
    if match is None:
        raise _BadRequestError(400, "malformed HTTP version")
    if match.group(1) != "1":
        raise _BadRequestError(505, "HTTP version not supported")
    return method, target, "HTTP/1.0" if match.group(2) == "0" else "HTTP/1.1"


def _parse_header_lines(lines: list[str]) -> Iterator[tuple[str, str]]:
    count = 0
    for line in lines:
        if not line:
            continue  # the empty line that ends the head
        count += 1
        if count > MAX_HEADER_COUNT:
            raise _BadRequestError(431, "too many headers")
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name):
            raise _BadRequestError(400, "malformed header line")
        value = value.strip(" \t")
        if any(ch in value for ch in "\r\n\x00"):
            raise _BadRequestError(400, "invalid character in header value")
        yield name, value


def _encode_response(
    response: Response, close: bool, head_only: bool, *, announce_keep_alive: bool = False
) -> bytes:
    status = response.status
    reason = response.reason or _reason(status)
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines.extend(
        f"{name}: {value}"
        for name, value in response.headers
        if name.lower() not in _FRAMING_HEADERS
    )
    body = response.body
    if status in _NO_BODY_STATUSES or 100 <= status < 200:
        body = b""
    else:
        lines.append(f"Content-Length: {len(body)}")
    if close:
        lines.append("Connection: close")
    elif announce_keep_alive:
        lines.append("Connection: keep-alive")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
    return head if head_only else head + body


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _error_response(status: int, message: str) -> Response:
    return Response(status, (("Content-Type", "text/plain; charset=utf-8"),), message.encode())


def _set_nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _tls_info(writer: asyncio.StreamWriter) -> TLSInfo | None:
    ssl_object = writer.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    cipher = ssl_object.cipher()
    peer_der = ssl_object.getpeercert(binary_form=True)
    return TLSInfo(
        version=str(ssl_object.version() or ""),
        cipher=str(cipher[0]) if cipher else "",
        server_name=_SNI.get(ssl_object),
        alpn=ssl_object.selected_alpn_protocol(),
        peer_certificate_pem=ssl.DER_cert_to_PEM_cert(peer_der) if peer_der else None,
    )


# Server names clients sent in their TLS hello, recorded by ``record_sni``.
_SNI: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def record_sni(context: ssl.SSLContext) -> ssl.SSLContext:
    """Make ``context`` remember each connection's SNI so ``Request.tls`` can report it."""

    def callback(ssl_object: Any, server_name: str | None, _context: ssl.SSLContext) -> None:
        if server_name is not None:
            _SNI[ssl_object] = server_name

    context.sni_callback = callback
    return context
