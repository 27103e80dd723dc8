"""/api/clients and the Gateway's ProxiesAccepted condition, with a real ADS stream and NACK.

The control plane's own pieces (ControlPlane.apply, its cache, ADS with its on_sync_change
callback, the admin router) with a grpc.aio client acting as Envoy.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from prometheus_client import REGISTRY
from test_ads_support import Proxy, ack, nack, node, request

from translator.result import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE
from watcher.files import load_paths
from xds_server import admin
from xds_server.ads import add_ads_to_server
from xds_server.app import ControlPlane, ServeSettings
from xds_server.httpd import Headers, Request
from xds_server.proxy_conditions import CONDITION_TYPE

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CLUSTERS = ("service/default/echo-v1/80", "service/default/echo-v2/80")
BIND = "Error adding/updating listener(s) http-8080: cannot bind '0.0.0.0:8080': in use"


def api(plane: ControlPlane, target: str) -> Any:
    path, _, query = target.partition("?")
    response = admin.route(plane, Request("GET", target, path, query, "HTTP/1.1", Headers()))
    assert response.status == 200, response.body
    return json.loads(response.body)


def proxies_accepted(plane: ControlPlane) -> dict[str, Any]:
    [gateway] = [s for s in api(plane, "/api/status") if s["kind"] == "Gateway"]
    [found] = [c for c in gateway["status"]["conditions"] if c["type"] == CONDITION_TYPE]
    return dict(found)


def rejecting(type_key: str) -> float:
    value = REGISTRY.get_sample_value("gateway_xds_proxies_rejecting", {"type": type_key})
    return value or 0.0


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline, pause = loop.time() + within, 0.005
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.2)


def moved_gateway(tmp_path: Path) -> Path:
    """The examples with the Gateway's listener on port 8081."""
    for name in ("backends.yaml", "routes.yaml"):
        (tmp_path / name).write_text((EXAMPLES / name).read_text())
    text = (EXAMPLES / "gateway.yaml").read_text().replace("port: 8080", "port: 8081")
    (tmp_path / "gateway.yaml").write_text(text)
    return tmp_path


async def connect_until_lds(target: str, node_id: str) -> tuple[Proxy, Any]:
    """A proxy that took clusters and endpoints; returns it with its first LDS response."""
    proxy = Proxy(target, node("default/demo", node_id))
    proxy.send(request(CLUSTER_TYPE))
    cds = await proxy.recv()
    proxy.send(request(ENDPOINT_TYPE, CLUSTERS))
    proxy.send(ack(cds))
    eds = await proxy.recv()
    proxy.send(ack(eds, CLUSTERS))
    proxy.send(request(LISTENER_TYPE))
    lds = await proxy.recv()
    assert lds.type_url == LISTENER_TYPE
    return proxy, lds


def test_a_nack_shows_in_clients_status_and_metrics_until_a_good_version(tmp_path: Path) -> None:
    """A rejected listener shows per type in /api/clients (NACKED, Envoy's message, not in
    sync), turns the Gateway's ProxiesAccepted False naming the proxy, and counts in the
    gauge; an accepted next version turns all of it back."""

    async def scenario() -> None:
        plane = ControlPlane(ServeSettings(config_dir=tmp_path))
        plane.apply(load_paths([EXAMPLES]))
        assert proxies_accepted(plane)["status"] == "True"
        server = grpc.aio.server()
        plane.ads = add_ads_to_server(server, plane.cache, plane.rejections.changed)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        proxy, lds = await connect_until_lds(f"127.0.0.1:{port}", "proxy-1")
        try:
            proxy.send(nack(lds, BIND))
            await eventually(lambda: proxies_accepted(plane)["status"] == "False")
            condition = proxies_accepted(plane)
            assert condition["reason"] == "Rejected"
            expected = f"proxy-1 rejected listeners version {lds.version_info}: {BIND}"
            assert condition["message"] == expected
            assert rejecting("listeners") == 1.0

            [client] = api(plane, "/api/clients")
            assert client["node"] == {"id": "proxy-1", "cluster": ""}
            assert (client["gateway"], client["protocol"]) == ("default/demo", "sotw")
            listeners = client["types"]["listeners"]
            assert listeners["status"] == "NACKED"
            assert not listeners["in_sync"]
            assert listeners["nack"]["message"] == BIND
            assert listeners["nack"]["version"] == listeners["sent_version"] == lds.version_info
            assert listeners["current_version"] == lds.version_info
            assert listeners["acked_version"] == ""
            assert listeners["rejected_resources"] == ["http-8080"]
            clusters = client["types"]["clusters"]
            assert (clusters["status"], clusters["in_sync"], clusters["nack"]) == (
                "SYNCED",
                True,
                None,
            )
            assert client["types"]["routes"]["status"] == "IGNORED"  # no RDS subscription

            plane.apply(load_paths([moved_gateway(tmp_path)]))  # a version Envoy accepts
            fixed = await proxy.recv()
            assert fixed.type_url == LISTENER_TYPE
            assert fixed.version_info != lds.version_info
            proxy.send(ack(fixed))
            await eventually(lambda: proxies_accepted(plane)["status"] == "True")
            assert rejecting("listeners") == 0.0
            [client] = api(plane, "/api/clients")
            listeners = client["types"]["listeners"]
            assert (listeners["status"], listeners["in_sync"], listeners["nack"]) == (
                "SYNCED",
                True,
                None,
            )
            assert listeners["last_nack"]["message"] == BIND
        finally:
            await proxy.close()
            await plane.ads.close(grace=1.0)
            await server.stop(None)

    asyncio.run(scenario())


def test_a_rejecting_proxy_that_leaves_clears_the_condition(tmp_path: Path) -> None:
    """When the only rejecting proxy disconnects, nobody rejects: the condition is True again."""

    async def scenario() -> None:
        plane = ControlPlane(ServeSettings(config_dir=tmp_path))
        plane.apply(load_paths([EXAMPLES]))
        server = grpc.aio.server()
        plane.ads = add_ads_to_server(server, plane.cache, plane.rejections.changed)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            proxy, lds = await connect_until_lds(f"127.0.0.1:{port}", "proxy-2")
            proxy.send(nack(lds, BIND))
            await eventually(lambda: proxies_accepted(plane)["status"] == "False")
            before = proxies_accepted(plane)["lastTransitionTime"]
            await proxy.close()
            await eventually(lambda: proxies_accepted(plane)["status"] == "True")
            assert api(plane, "/api/clients") == []
            assert proxies_accepted(plane)["lastTransitionTime"] >= before
        finally:
            await plane.ads.close(grace=1.0)
            await server.stop(None)

    asyncio.run(scenario())
