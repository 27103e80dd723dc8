"""End to end through a real Envoy: HTTPS by SNI, TLS passthrough, TCP and UDP routes.

The module's stack gets a Gateway of its own (the stack writes one with an HTTP listener;
this module replaces it once): on one port two HTTPS listeners (a.example.com and
b.example.com, each with a certificate from a test CA, served over SDS) and a TLS
passthrough listener (db.example.com, to a TLS echo backend); a TCP listener; a UDP
listener. Clients verify every certificate against the test CA.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.echo import EchoBackend
from support.http import free_port, get
from support.l4 import UdpEcho, free_udp_port, https_get, udp_exchange
from support.pki import Pki, openssl_available
from support.stack import GATEWAY_HEAD, Stack
from support.wait import wait_until

from xds_server.echo import tls_context

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not openssl_available(), reason="needs the openssl command-line tool"),
]

TIMEOUT = 15.0


@dataclass(frozen=True)
class Setup:
    tls_port: int  # HTTPS a.example.com and b.example.com, TLS passthrough db.example.com
    tcp_port: int
    udp_port: int
    ca: Path
    tls_backend: EchoBackend
    udp_echo: UdpEcho


def gateway_yaml(http_port: int, tls_port: int, tcp_port: int, udp_port: int) -> str:
    return (
        GATEWAY_HEAD
        + f"""\
            - {{name: http, protocol: HTTP, port: {http_port}}}
            - name: https-a
              protocol: HTTPS
              port: {tls_port}
              hostname: a.example.com
              tls: {{certificateRefs: [{{name: a-cert}}]}}
            - name: https-b
              protocol: HTTPS
              port: {tls_port}
              hostname: b.example.com
              tls: {{mode: Terminate, certificateRefs: [{{name: b-cert}}]}}
            - name: tls-db
              protocol: TLS
              port: {tls_port}
              hostname: db.example.com
              tls: {{mode: Passthrough}}
            - {{name: tcp, protocol: TCP, port: {tcp_port}}}
            - {{name: udp, protocol: UDP, port: {udp_port}}}
        """
    )


def backends_yaml(tls_backend: EchoBackend, udp_port: int) -> str:
    return f"""\
        apiVersion: v1
        kind: Service
        metadata: {{name: echo-tls, namespace: default}}
        spec:
          ports: [{{name: https, port: 443}}]
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata:
          name: echo-tls-1
          namespace: default
          labels: {{kubernetes.io/service-name: echo-tls}}
        addressType: IPv4
        ports: [{{name: https, port: {tls_backend.port}}}]
        endpoints: [{{addresses: [127.0.0.1]}}]
        ---
        apiVersion: v1
        kind: Service
        metadata: {{name: udp-echo, namespace: default}}
        spec:
          ports: [{{name: dns, port: 53, protocol: UDP}}]
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata:
          name: udp-echo-1
          namespace: default
          labels: {{kubernetes.io/service-name: udp-echo}}
        addressType: IPv4
        ports: [{{name: dns, port: {udp_port}, protocol: UDP}}]
        endpoints: [{{addresses: [127.0.0.1]}}]
        """


def write_once(stack: Stack, name: str, text: str) -> None:
    """A file for the whole module (not removed after each test, unlike routes)."""
    path = stack.config_dir / name
    tmp = path.with_suffix(".tmp")
    tmp.write_text(textwrap.dedent(text))
    tmp.replace(path)


@pytest.fixture(scope="module")
def setup(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    pki = Pki.create(tmp_path_factory.mktemp("pki"))
    a, b, db = pki.issue("a.example.com"), pki.issue("b.example.com"), pki.issue("db.example.com")
    tls_backend = stack.echoes.start("echo-tls", ssl_context=tls_context(str(db.cert), str(db.key)))
    udp_echo = UdpEcho()
    ports = (free_port(), free_port(), free_udp_port())
    try:
        secrets = a.secret_yaml("a-cert") + "---\n" + b.secret_yaml("b-cert")
        write_once(stack, "secrets.yaml", secrets)
        write_once(stack, "l4-backends.yaml", backends_yaml(tls_backend, udp_echo.port))
        write_once(stack, "gateway.yaml", gateway_yaml(stack.listener_port, *ports))
        for name in (f"tls-{ports[0]}", f"tcp-{ports[1]}", f"udp-{ports[2]}"):
            wait_for_listener(stack, name)
        yield Setup(*ports, pki.ca_cert, tls_backend, udp_echo)
    finally:
        udp_echo.close()


def wait_for_listener(stack: Stack, name: str) -> None:
    wait_until(
        lambda: stack.envoy.listener_port(name),
        TIMEOUT,
        ignore=(Exception,),
        message=lambda: f"Envoy never got listener {name}\n{stack.plane.log_tail(10)}",
    )


def wait_for(check: Callable[[], object], message: str) -> None:
    wait_until(check, TIMEOUT, ignore=(OSError,), message=message)


def test_https_sni_selects_certificate_and_listener_routes(routes: Stack, setup: Setup) -> None:
    """SNI picks each HTTPS listener's certificate (verified) and only that listener's routes."""
    for name, listener, backend in (("a", "https-a", "echo-a"), ("b", "https-b", "echo-b")):
        routes.write(
            f"route-{name}.yaml",
            f"""\
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {{name: route-{name}, namespace: default}}
            spec:
              parentRefs: [{{name: gw, sectionName: {listener}}}]
              rules: [{{backendRefs: [{{name: {backend}, port: 80}}]}}]
            """,
        )

    def service(sni: str, host: str | None = None) -> object:
        result = https_get(setup.tls_port, "/x", sni=sni, cafile=setup.ca, host=host)
        return result.json["service"] if result.json else result.status

    wait_for(lambda: service("a.example.com") == "echo-a", "a.example.com never reached echo-a")
    wait_for(lambda: service("b.example.com") == "echo-b", "b.example.com never reached echo-b")
    answer = https_get(setup.tls_port, "/x", sni="a.example.com", cafile=setup.ca).json
    assert answer["headers"]["X-Forwarded-Proto"] == ["https"]
    # A Host that another listener of the port owns is misdirected on this connection.
    assert service("a.example.com", host="b.example.com") == 421


def test_tls_passthrough_reaches_the_backend_with_sni(routes: Stack, setup: Setup) -> None:
    """A TLSRoute passes the TLS stream through: the backend's certificate, its view of SNI."""
    routes.write(
        "tlsroute.yaml",
        """\
        apiVersion: gateway.networking.k8s.io/v1alpha2
        kind: TLSRoute
        metadata: {name: db, namespace: default}
        spec:
          parentRefs: [{name: gw, sectionName: tls-db}]
          hostnames: [db.example.com]
          rules: [{backendRefs: [{name: echo-tls, port: 443}]}]
        """,
    )

    def answer() -> object:
        return https_get(setup.tls_port, "/db", sni="db.example.com", cafile=setup.ca).json

    wait_for(answer, "db.example.com never reached the TLS backend")
    echoed = answer()
    assert echoed["service"] == "echo-tls"
    assert echoed["sni"] == "db.example.com"
    assert echoed["tls"]["serverName"] == "db.example.com"


def test_tcp_route_forwards_connections(routes: Stack, setup: Setup) -> None:
    """A TCPRoute forwards the bytes of a connection: an HTTP request reaches the echo."""
    routes.write(
        "tcproute.yaml",
        """\
        apiVersion: gateway.networking.k8s.io/v1alpha2
        kind: TCPRoute
        metadata: {name: tcp, namespace: default}
        spec:
          parentRefs: [{name: gw, sectionName: tcp}]
          rules: [{backendRefs: [{name: echo-c, port: 80}]}]
        """,
    )

    def service() -> object:
        result = get(f"http://127.0.0.1:{setup.tcp_port}/tcp")
        return result.json["service"] if result.json else result.status

    wait_for(lambda: service() == "echo-c", "the TCP listener never reached echo-c")


def test_udp_route_forwards_datagrams(routes: Stack, setup: Setup) -> None:
    """A UDPRoute forwards datagrams to the backend and its replies back to the client."""
    routes.write(
        "udproute.yaml",
        """\
        apiVersion: gateway.networking.k8s.io/v1alpha2
        kind: UDPRoute
        metadata: {name: udp, namespace: default}
        spec:
          parentRefs: [{name: gw, sectionName: udp}]
          rules: [{backendRefs: [{name: udp-echo, port: 53}]}]
        """,
    )
    wait_for(
        lambda: udp_exchange(setup.udp_port, b"ping") == b"echo:ping",
        "no UDP reply came back through Envoy",
    )
    assert b"ping" in setup.udp_echo.received
