"""The admin API of a control plane, driven without sockets through its request router."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from watcher.files import load_paths
from xds_server import admin
from xds_server.app import ControlPlane, ServeSettings
from xds_server.httpd import Headers, Request, Response

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def call(plane: ControlPlane, target: str) -> Response:
    path, _, query = target.partition("?")
    return admin.route(plane, Request("GET", target, path, query, "HTTP/1.1", Headers()))


def body(response: Response) -> Any:
    return json.loads(response.body)


def test_ready_only_after_the_first_translation(tmp_path: Path) -> None:
    """/readyz is 503 until the first snapshot is translated, /healthz is 200 throughout."""
    plane = ControlPlane(ServeSettings(config_dir=tmp_path))
    assert call(plane, "/healthz").status == 200
    assert call(plane, "/readyz").status == 503
    assert call(plane, "/api/config_dump").status == 503
    plane.apply(load_paths([EXAMPLES]))
    assert call(plane, "/readyz").status == 200


def test_views_of_a_translated_snapshot(tmp_path: Path) -> None:
    """status, config_dump (all and one Gateway), errors and metrics answer with their data."""
    (tmp_path / "bad.yaml").write_text("a: [\n")
    plane = ControlPlane(ServeSettings(config_dir=tmp_path))
    plane.apply(load_paths([EXAMPLES, tmp_path]))
    statuses = body(call(plane, "/api/status"))
    assert [s["kind"] for s in statuses] == ["GatewayClass", "Gateway", "HTTPRoute", "HTTPRoute"]
    dump = body(call(plane, "/api/config_dump?gateway=default/demo"))
    assert list(dump["gateways"]) == ["default/demo"]
    assert dump["gateways"]["default/demo"]["routes"][0]["name"] == "http-8080"
    assert call(plane, "/api/config_dump?gateway=default/nope").status == 404
    [error] = body(call(plane, "/api/errors"))
    assert error["source"].endswith("bad.yaml")
    metrics = call(plane, "/metrics").body.decode()
    assert "gateway_xds_translation_seconds_count" in metrics
    assert call(plane, "/api/nothing").status == 404
    assert call(plane, "/nothing").status == 404
