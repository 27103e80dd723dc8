"""Clients and a backend for HTTPS, TLS, TCP and UDP end-to-end tests.

Who calls it: tests/e2e/test_tls_l4.py.

    https_get(port, "/x", sni="a.example.com", cafile=ca)   # verifies the certificate
    with UdpEcho() as echo: udp_exchange(port, b"ping")      # b"echo:ping" or None

``https_get`` connects to 127.0.0.1 but sends ``sni`` as the TLS server name and checks the
certificate against ``cafile`` for that name (Host defaults to it too), as a browser that
resolved the name to the proxy would. What it must not do: skip certificate verification,
or leave sockets or threads behind.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from pathlib import Path
from types import TracebackType

from support.http import HttpResult

__all__ = ["UdpEcho", "free_udp_port", "https_get", "udp_exchange"]


class _SniConnection(http.client.HTTPSConnection):
    """An HTTPS connection to ``address`` that presents and verifies ``server_name``."""

    def __init__(
        self, address: str, port: int, server_name: str, context: ssl.SSLContext, timeout: float
    ) -> None:
        super().__init__(server_name, port, context=context, timeout=timeout)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


def https_get(
    port: int,
    path: str,
    *,
    sni: str,
    cafile: Path,
    host: str | None = None,
    timeout: float = 5.0,
) -> HttpResult:
    """GET over TLS to 127.0.0.1:``port`` with SNI ``sni``, verified against ``cafile``."""
    context = ssl.create_default_context(cafile=str(cafile))
    connection = _SniConnection("127.0.0.1", port, sni, context, timeout)
    try:
        connection.request("GET", path, headers={"Host": host or sni})
        response = connection.getresponse()
        return HttpResult(response.status, response.reason, response.getheaders(), response.read())
    finally:
        connection.close()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def udp_exchange(port: int, payload: bytes, timeout: float = 0.5) -> bytes | None:
    """Send one datagram to 127.0.0.1:``port``; the reply, or None if none came in time."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(payload, ("127.0.0.1", port))
        try:
            data, _ = sock.recvfrom(65535)
        except TimeoutError:
            return None
        return data


class UdpEcho:
    """A UDP server on loopback answering each datagram with b"echo:" + the datagram."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.port = int(self._sock.getsockname()[1])
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="udp-echo", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            self.received.append(data)
            self._sock.sendto(b"echo:" + data, peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def __enter__(self) -> UdpEcho:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
