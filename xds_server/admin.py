"""Admin HTTP API on --admin-address: health, readiness, metrics and JSON views.

``/healthz``  the process is up.
``/readyz``   200 once the first complete sync has been translated, else 503.
``/metrics``  Prometheus text format.
``/api/status``       every Gateway API object's status (as `xdsctl translate` prints it).
``/api/config_dump``  translated resources per Gateway (``?gateway=ns/name`` for one).
``/api/clients``      connected proxies: node, Gateway, per type sent/ACKed/NACKed and whether
                      in sync with what we serve (``xds_server.client_report``).
``/api/errors``       inputs the provider could not load (bad YAML, objects without a name).

Read-only: nothing here changes the control plane's state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from translator.render import result_json
from xds_server import httpd
from xds_server.client_report import clients_json

if TYPE_CHECKING:
    from xds_server.app import ControlPlane


async def start(plane: ControlPlane, host: str, port: int) -> asyncio.Server:
    async def handle(request: httpd.Request) -> httpd.Response:
        if request.method not in {"GET", "HEAD"}:
            return httpd.Response.text("method not allowed\n", status=405)
        return route(plane, request)

    return await httpd.serve(handle, host, port)


def route(plane: ControlPlane, request: httpd.Request) -> httpd.Response:
    path = request.path
    if path == "/healthz":
        return httpd.Response.text("ok\n")
    if path == "/readyz":
        if plane.ready:
            return httpd.Response.text("ready\n")
        return httpd.Response.text("not ready: first sync not translated yet\n", status=503)
    if path == "/metrics":
        return httpd.Response(200, (("Content-Type", CONTENT_TYPE_LATEST),), generate_latest())
    if path.startswith("/api/"):
        return _api(plane, path.removeprefix("/api/"), request)
    return httpd.Response.text("not found\n", status=404)


def _api(plane: ControlPlane, name: str, request: httpd.Request) -> httpd.Response:
    views: dict[str, Callable[[], Any]] = {
        "status": lambda: plane.statuses,
        "errors": lambda: [e.as_json() for e in plane.load_errors],
        "clients": lambda: clients_json(plane.client_views(), plane.cache.get),
    }
    if name in views:
        return httpd.Response.json(views[name](), indent=2)
    if name == "config_dump":
        return _config_dump(plane, request)
    return httpd.Response.json({"error": f"no API {name!r}"}, status=404)


def _config_dump(plane: ControlPlane, request: httpd.Request) -> httpd.Response:
    if plane.result is None:
        return httpd.Response.json({"error": "not ready"}, status=503)
    gateway = request.query_params.get("gateway", [None])[0]
    dump: dict[str, Any] = result_json(plane.result, gateway)
    dump["status"] = plane.statuses
    if gateway is not None and gateway not in dump["gateways"]:
        return httpd.Response.json({"error": f"no Gateway {gateway}"}, status=404)
    return httpd.Response.json(dump, indent=2)
