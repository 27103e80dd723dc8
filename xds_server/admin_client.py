"""A small client of a running control plane's admin API, for ``xdsctl`` subcommands.

Who calls it: ``xds_server.cli`` (``proxy-status``, ``config-dump``). One GET, JSON back;
``AdminError`` with a sentence a user can act on when the server cannot be reached or
does not answer with JSON. Standard library only (``http.client``): nothing to install.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any

from xds_server.bootstrap import split_host_port


class AdminError(Exception):
    """The admin API could not be reached or did not answer with JSON."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: Any  # decoded JSON


def get_json(address: str, path: str, timeout: float = 10.0) -> Answer:
    """GET ``path`` (with its query, already quoted) from the admin API at ``HOST:PORT``."""
    try:
        host, port = split_host_port(address)
    except ValueError as error:
        raise AdminError(str(error)) from None
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Accept": "application/json"})
        response = connection.getresponse()
        data = response.read()
    except (OSError, http.client.HTTPException) as error:
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        message = f"cannot reach the control plane's admin API at {address}: {reason}"
        raise AdminError(message) from None
    finally:
        connection.close()
    try:
        body = json.loads(data)
    except ValueError:
        message = f"the admin API at {address} answered {response.status} without JSON"
        raise AdminError(message) from None
    return Answer(response.status, body)
