"""Tests of the minimal HTTP/1.1 server (xds_server.httpd) over real loopback sockets."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import time
from collections.abc import Callable
from typing import BinaryIO, TypeVar

import pytest

from xds_server.httpd import (
    MAX_HEAD_BYTES,
    MAX_HEADER_COUNT,
    Handler,
    Request,
    Response,
    close_server,
    serve,
    server_port,
)

T = TypeVar("T")


async def describe(request: Request) -> Response:
    """Answers with what the server parsed, as JSON."""
    return Response.json(
        {
            "method": request.method,
            "target": request.target,
            "path": request.path,
            "query": request.query,
            "version": request.version,
            "headers": [list(pair) for pair in request.headers],
            "x_test": request.header("X-TEST"),
            "body": request.body.decode("latin-1"),
            "peer_port": request.peer[1] if request.peer else None,
        }
    )


def with_server(client: Callable[[int], T], handler: Handler = describe) -> T:
    """Serves ``handler`` on a free port and runs ``client(port)`` in a thread."""

    async def main() -> T:
        server = await serve(handler, "127.0.0.1", 0)
        try:
            return await asyncio.to_thread(client, server_port(server))
        finally:
            await close_server(server)

    return asyncio.run(main())


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_response(stream: BinaryIO) -> tuple[int, dict[str, str], bytes]:
    """Reads one response (Content-Length framed) from a buffered socket file."""
    status_line = stream.readline()
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = stream.read(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


def raw_exchange(
    port: int, data: bytes, responses: int = 1
) -> list[tuple[int, dict[str, str], bytes]]:
    """Sends ``data`` on a fresh connection and reads ``responses`` responses."""
    with connect(port) as sock, sock.makefile("rb") as stream:
        sock.sendall(data)
        return [read_response(stream) for _ in range(responses)]


def closed_by_server(sock: socket.socket) -> bool:
    """True when the server has closed the connection (EOF on read)."""
    sock.settimeout(5)
    return sock.recv(1) == b""


def test_keep_alive_reuses_one_connection() -> None:
    """Sequential requests on an HTTP/1.1 connection share one TCP connection."""

    def client(port: int) -> list[int]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        ports = []
        for _ in range(3):
            connection.request("GET", "/x")
            response = connection.getresponse()
            ports.append(json.loads(response.read())["peer_port"])
        connection.close()
        return ports

    ports = with_server(client)
    assert len(set(ports)) == 1


def test_pipelined_requests_are_answered_in_order() -> None:
    """Three requests sent at once get three responses, in request order."""
    data = b"".join(f"GET /{n}?q={n} HTTP/1.1\r\nHost: h\r\n\r\n".encode() for n in range(3))
    responses = with_server(lambda port: raw_exchange(port, data, responses=3))
    assert [json.loads(body)["target"] for _, _, body in responses] == [
        "/0?q=0",
        "/1?q=1",
        "/2?q=2",
    ]
    assert all(status == 200 for status, _, _ in responses)


def test_request_fields_are_parsed() -> None:
    """Method, target, path, query, version, headers (case kept, lookup any case) are parsed."""
    data = (
        b"PUT /a/b?c=d&e HTTP/1.1\r\nHost: h\r\nX-Test: one\r\nx-test: two\r\n"
        b"Content-Length: 2\r\n\r\nok"
    )
    [(status, _, body)] = with_server(lambda port: raw_exchange(port, data))
    seen = json.loads(body)
    assert status == 200
    assert (seen["method"], seen["path"], seen["query"], seen["version"]) == (
        "PUT",
        "/a/b",
        "c=d&e",
        "HTTP/1.1",
    )
    assert seen["headers"][:3] == [["Host", "h"], ["X-Test", "one"], ["x-test", "two"]]
    assert seen["x_test"] == "one"
    assert seen["body"] == "ok"


def test_connection_close_is_honoured() -> None:
    """A request with Connection: close gets a response marked close, then EOF."""

    def client(port: int) -> tuple[dict[str, str], bool]:
        with connect(port) as sock, sock.makefile("rb") as stream:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
            _, headers, _ = read_response(stream)
            return headers, stream.read(1) == b""

    headers, eof = with_server(client)
    assert headers["connection"] == "close"
    assert eof


@pytest.mark.parametrize(
    ("connection_header", "stays_open"),
    [("", False), ("Connection: keep-alive\r\n", True)],
    ids=["default-close", "keep-alive"],
)
def test_http10_closes_unless_keep_alive(connection_header: str, stays_open: bool) -> None:
    """HTTP/1.0 closes after the response unless the client asked for keep-alive."""

    def client(port: int) -> tuple[dict[str, str], bool]:
        with connect(port) as sock, sock.makefile("rb") as stream:
            sock.sendall(f"GET / HTTP/1.0\r\n{connection_header}\r\n".encode())
            _, headers, _ = read_response(stream)
            if not stays_open:
                return headers, stream.read(1) == b""
            sock.sendall(b"GET /again HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            status, _, _ = read_response(stream)
            return headers, status != 200

    headers, closed = with_server(client)
    assert closed is not stays_open
    assert headers.get("connection") == ("keep-alive" if stays_open else "close")


def test_chunked_request_body_is_decoded() -> None:
    """A chunked body (with an extension and a trailer) arrives whole; keep-alive goes on."""
    data = (
        b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n"
        b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    responses = with_server(lambda port: raw_exchange(port, data, responses=2))
    assert json.loads(responses[0][2])["body"] == "hello, world"
    assert json.loads(responses[1][2])["target"] == "/next"


def test_expect_continue_gets_interim_response() -> None:
    """Expect: 100-continue is answered with 100 before the body is read."""

    def client(port: int) -> tuple[bytes, bytes]:
        with connect(port) as sock, sock.makefile("rb") as stream:
            sock.sendall(
                b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
            )
            interim = stream.readline() + stream.readline()
            sock.sendall(b"abc")
            return interim, read_response(stream)[2]

    interim, body = with_server(client)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert json.loads(body)["body"] == "abc"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
        (b"GET /\x01 HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/9\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nBad Name: a\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: x1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0x1\r\na\r\n0\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 999999999999\r\n\r\n", 413),
        (b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n" + b"x" * 500_000, 413),
        (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * (MAX_HEADER_COUNT + 1) + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n", 431),
    ],
    ids=[
        "garbage",
        "tls-hello",
        "control-char-target",
        "bad-version",
        "http2",
        "header-without-colon",
        "obs-fold",
        "space-in-name",
        "bad-content-length",
        "conflicting-content-length",
        "te-and-cl",
        "unsupported-te",
        "bad-chunk-size",
        "hex-prefix-chunk-size",
        "body-too-large",
        "body-too-large-and-sent",
        "too-many-headers",
        "head-too-large",
    ],
)
def test_malformed_request_is_rejected_and_server_survives(data: bytes, status: int) -> None:
    """Malformed input gets 4xx/505 and a close; the next connection is served normally."""

    def client(port: int) -> tuple[int, dict[str, str], bool, int]:
        with connect(port) as sock, sock.makefile("rb") as stream:
            sock.sendall(data)
            got, headers, _ = read_response(stream)
            eof = stream.read(1) == b""
        [(after, _, _)] = raw_exchange(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        return got, headers, eof, after

    got, headers, eof, after = with_server(client)
    assert (got, headers["connection"], eof) == (status, "close", True)
    assert after == 200


def test_peer_closing_mid_request_is_harmless() -> None:
    """A client that disconnects halfway through a head or body does not break the server."""

    def client(port: int) -> int:
        for partial in (b"GET / HT", b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"):
            with connect(port) as sock:
                sock.sendall(partial)
        return raw_exchange(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")[0][0]

    assert with_server(client) == 200


def test_handler_error_becomes_500_and_connection_stays_usable() -> None:
    """A handler that raises yields 500; the same keep-alive connection serves the next request."""

    async def flaky(request: Request) -> Response:
        if request.path == "/boom":
            raise RuntimeError("boom")
        return Response.text("fine")

    data = b"GET /boom HTTP/1.1\r\nHost: h\r\n\r\nGET /ok HTTP/1.1\r\nHost: h\r\n\r\n"
    responses = with_server(lambda port: raw_exchange(port, data, responses=2), flaky)
    assert [(status, body) for status, _, body in responses] == [
        (500, b"internal server error"),
        (200, b"fine"),
    ]


def test_head_and_no_content_responses_have_no_body() -> None:
    """HEAD gets the headers only; 204 has neither body nor Content-Length."""

    async def handler(request: Request) -> Response:
        return Response(204) if request.path == "/empty" else Response.text("body")

    def client(port: int) -> list[tuple[int, dict[str, str], bytes]]:
        with connect(port) as sock, sock.makefile("rb") as stream:
            sock.sendall(
                b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\nGET /empty HTTP/1.1\r\nHost: h\r\n\r\n"
            )
            head = stream.readline()
            head_headers = {}
            while (line := stream.readline()) != b"\r\n":
                name, _, value = line.decode().partition(":")
                head_headers[name.lower()] = value.strip()
            return [(int(head.split()[1]), head_headers, b""), read_response(stream)]

    (head_status, head_headers, _), (status, headers, body) = with_server(client, handler)
    assert (head_status, head_headers["content-length"]) == (200, "4")
    assert (status, body, "content-length" in headers) == (204, b"", False)


def test_keep_alive_latency_has_no_delayed_ack_stall() -> None:
    """Keep-alive round trips take well under the 40 ms a delayed-ACK stall would add."""

    def client(port: int) -> float:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", "/warm")
        connection.getresponse().read()
        start = time.perf_counter()
        for _ in range(20):
            connection.request("GET", "/x")
            connection.getresponse().read()
        connection.close()
        return (time.perf_counter() - start) / 20

    assert with_server(client) < 0.02
