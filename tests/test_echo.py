"""Tests of the echo backend (xds_server.echo) and its test harness (support.echo)."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.echo import EchoBackends
from support.http import get, request

from xds_server.echo import canonical_header_key, parse_go_duration, tls_context


@pytest.fixture
def backends() -> Iterator[EchoBackends]:
    """Echo backends on a background loop, closed after the test."""
    with EchoBackends() as running:
        yield running


def test_echo_describes_the_request(backends: EchoBackends) -> None:
    """The JSON has the conformance echo fields: target, Host, method, proto, canonical headers."""
    backend = backends.start("echo-a", namespace="team-a")
    result = request(
        backend.url + "/some/path?x=1&y",
        method="POST",
        host="example.com",
        headers={"x-lower": "v", "X-Request-Id": "r1"},
        body=b"payload",
    )
    seen = result.json
    assert result.status == 200
    assert result.header("content-type") == "application/json"
    assert seen["path"] == "/some/path?x=1&y"
    assert (seen["host"], seen["method"], seen["proto"]) == ("example.com", "POST", "HTTP/1.1")
    assert seen["headers"]["X-Lower"] == ["v"]
    assert seen["headers"]["X-Request-Id"] == ["r1"]
    assert seen["headers"]["Content-Length"] == ["7"]
    assert "Host" not in seen["headers"]
    assert (seen["namespace"], seen["service"], seen["ingress"]) == ("team-a", "echo-a", "")
    assert seen["pod"] == f"echo-a-{backend.port}" == backend.pod
    assert seen["sni"] == ""
    assert "tls" not in seen


def test_repeated_headers_are_listed_and_transfer_encoding_hidden(backends: EchoBackends) -> None:
    """Repeated headers keep every value in order; Transfer-Encoding is not echoed (as in Go)."""
    backend = backends.start("echo-b")
    with socket.create_connection(("127.0.0.1", backend.port), timeout=5) as sock:
        sock.sendall(
            b"PUT /r HTTP/1.1\r\nHost: h\r\nx-multi: 1\r\nX-MULTI: 2\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\nab\r\n0\r\n\r\n"
        )
        data = b"".join(iter(lambda: sock.recv(65536), b""))
    seen = json.loads(data.partition(b"\r\n\r\n")[2])
    assert seen["headers"]["X-Multi"] == ["1", "2"]
    assert "Transfer-Encoding" not in seen["headers"]


def test_backends_report_distinct_identities(backends: EchoBackends) -> None:
    """Two backends listen on different ports and say which one answered."""
    first = backends.start("svc", pod="svc-1")
    second = backends.start("svc", pod="svc-2", namespace="other")
    assert first.port != second.port
    assert get(first.url).json["pod"] == "svc-1"
    assert (get(second.url).json["pod"], get(second.url).json["namespace"]) == ("svc-2", "other")


def test_stopped_backend_refuses_connections(backends: EchoBackends) -> None:
    """Stopping a backend closes its listener and its open keep-alive connections."""
    backend = backends.start("gone")
    connection = http.client.HTTPConnection("127.0.0.1", backend.port, timeout=5)
    connection.request("GET", "/")
    connection.getresponse().read()
    backends.stop(backend)
    connection.request("GET", "/")  # buffered by the kernel; the server's close shows on read
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        connection.getresponse()
    connection.close()
    with pytest.raises(ConnectionRefusedError):
        get(backend.url)


def test_set_header_knob_adds_response_headers(backends: EchoBackends) -> None:
    """X-Echo-Set-Header: 'Name:value' pairs become response headers, repeats comma-joined."""
    backend = backends.start("echo")
    result = get(backend.url, headers={"X-Echo-Set-Header": "X-Foo: one, X-Bar:two,X-Foo:three"})
    assert result.header("X-Foo") == "one,three"
    assert result.header("X-Bar") == "two"


def test_delay_knob_waits_before_answering(backends: EchoBackends) -> None:
    """?delay=200ms holds the answer back that long; a bad duration gets 500 with a message."""
    backend = backends.start("slow")
    start = time.monotonic()
    assert get(backend.url + "/?delay=200ms").status == 200
    assert time.monotonic() - start >= 0.2
    bad = get(backend.url + "/?delay=soon")
    assert bad.status == 500
    assert "invalid duration" in bad.json["message"]


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("x-foo-bar", "X-Foo-Bar"),
        ("CONTENT-TYPE", "Content-Type"),
        ("x_under", "X_under"),
        ("dns", "Dns"),
        ("weird name", "weird name"),
    ],
    ids=["dashes", "upper", "underscore", "single", "invalid-kept"],
)
def test_canonical_header_key_matches_go(name: str, canonical: str) -> None:
    """Header names are printed as Go's CanonicalMIMEHeaderKey would."""
    assert canonical_header_key(name) == canonical


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0.0), ("250ms", 0.25), ("1.5s", 1.5), ("1m30s", 90.0), ("10us", 1e-5)],
    ids=["zero", "ms", "fraction", "compound", "micro"],
)
def test_go_durations_parse(text: str, seconds: float) -> None:
    """The delay knob understands Go duration strings."""
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "s", "1x", "ms5"], ids=str)
def test_invalid_go_durations_raise(text: str) -> None:
    """Strings that Go's time.ParseDuration rejects raise ValueError."""
    with pytest.raises(ValueError, match="invalid duration"):
        parse_go_duration(text)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls_echo_reports_handshake(backends: EchoBackends, tmp_path: Path) -> None:
    """Over TLS the echo adds tls.version, serverName (SNI), cipherSuite, ALPN and sni."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    command = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1"
    command += " -subj /CN=echo.example -addext subjectAltName=DNS:echo.example"
    subprocess.run(
        [*command.split(), "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True
    )
    backend = backends.start("tls", ssl_context=tls_context(str(cert), str(key)))
    client = ssl.create_default_context(cafile=str(cert))
    client.set_alpn_protocols(["http/1.1"])
    raw = socket.create_connection(("127.0.0.1", backend.port), timeout=5)
    with client.wrap_socket(raw, server_hostname="echo.example") as sock:
        sock.sendall(b"GET /tls HTTP/1.1\r\nHost: echo.example\r\nConnection: close\r\n\r\n")
        data = b"".join(iter(lambda: sock.recv(65536), b""))
    seen = json.loads(data.partition(b"\r\n\r\n")[2])
    assert seen["tls"]["version"] == "TLSv1.3"
    assert seen["tls"]["serverName"] == seen["sni"] == "echo.example"
    assert seen["tls"]["cipherSuite"].startswith("TLS_")
    assert seen["tls"]["negotiatedProtocol"] == "http/1.1"


def test_main_echo_prints_its_address_and_serves() -> None:
    """main_echo (xdsctl echo) prints one line with the bound address, then echoes."""
    code = (
        "import argparse; from xds_server.echo import main_echo; "
        "main_echo(argparse.Namespace(port=0, name='cli-echo', namespace='ns', host='127.0.0.1'))"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "listening on 127.0.0.1:" in line, line
        port = int(line.rsplit(":", 1)[1])
        seen = get(f"http://127.0.0.1:{port}/cli").json
        assert (seen["service"], seen["namespace"], seen["pod"]) == (
            "cli-echo",
            "ns",
            f"cli-echo-{port}",
        )
    finally:
        process.terminate()
        process.communicate(timeout=10)
