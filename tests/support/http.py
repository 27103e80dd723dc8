"""A tiny HTTP client for tests, on http.client (one connection per request).

Who calls it: tests that send traffic through Envoy or straight to a backend, and the
Envoy harness for its admin requests.

What it must not do: follow redirects, retry, or raise on HTTP error statuses (tests
assert on the status); it raises only when no response arrives (OSError, http.client
errors).
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = ["HttpResult", "free_port", "get", "request"]


@dataclass(frozen=True)
class HttpResult:
    """A response: status, headers as received, the raw body and, for JSON, its value."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (any case), or ``default``."""
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), default)

    @property
    def json(self) -> Any:
        """The body parsed as JSON when the Content-Type says JSON, else None."""
        content_type = self.header("content-type") or ""
        if "json" not in content_type:
            return None
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def request(
    url: str,
    *,
    method: str = "GET",
    host: str | None = None,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 5.0,
) -> HttpResult:
    """Send one request to ``url`` (http only); ``host`` overrides the Host header."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None:
        raise ValueError(f"only http:// URLs are supported, got {url!r}")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    send_headers = dict(headers or {})
    if host is not None:
        send_headers["Host"] = host
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        connection.request(method, target, body=body, headers=send_headers)
        response = connection.getresponse()
        data = response.read()
        return HttpResult(response.status, response.reason, response.getheaders(), data)
    finally:
        connection.close()


def get(
    url: str,
    *,
    host: str | None = None,
    headers: Mapping[str, str] | None = None,
    method: str = "GET",
    timeout: float = 5.0,
) -> HttpResult:
    """``request`` without a body: GET unless ``method`` says otherwise."""
    return request(url, method=method, host=host, headers=headers, timeout=timeout)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (for configs that need a fixed port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
