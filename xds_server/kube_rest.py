"""One JSON request to the Kubernetes API server, through the official client's ``ApiClient``.

Who calls it: ``xds_server.status_writer`` (read an object, update its status subresource)
and ``xds_server.leader`` (read, create and update a Lease). The ``ApiClient`` does the
authentication and TLS; bodies are plain JSON (no model classes), like the watcher's.

What it does: sends ``method path`` with an optional JSON body and returns the status code
with the parsed answer, or raises ``ApiError`` for a non-2xx status (the code and the
server's message kept, so callers can tell 404 and 409 from the rest). The error class and
the message parsing are the watcher's (``watcher.kube_watch``): one shape for both.

What it must not do: retry (callers decide), or run on the event loop (it blocks).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from watcher.kube_watch import ApiError, status_message

__all__ = ["TIMEOUT", "ApiError", "send"]

TIMEOUT = (5.0, 15.0)  # connect, read


def send(
    api_client: Any,
    method: str,
    path: str,
    body: Mapping[str, Any] | None = None,
    timeout: tuple[float, float] = TIMEOUT,
) -> dict[str, Any]:
    """``method path`` with ``body`` as JSON; the parsed answer of a 2xx, else ApiError."""
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    method, url, headers, payload, post = api_client.param_serialize(
        method,
        path,
        header_params=headers,
        body=dict(body) if body is not None else None,
        auth_settings=["BearerToken"],
    )
    response = api_client.call_api(method, url, headers, payload, post, _request_timeout=timeout)
    raw = response.response
    try:
        data = raw.read()
    finally:
        raw.release_conn()
    if not 200 <= response.status <= 299:
        raise ApiError(response.status, status_message(data))
    document = json.loads(data) if data else {}
    return document if isinstance(document, dict) else {}
