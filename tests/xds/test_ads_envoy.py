"""ADS against a real Envoy: changes move traffic without errors or warming timeouts.

These guard what the protocol tests can only model: Envoy holds its CDS ACK until new or
changed EDS clusters have warmed (got their endpoints), so EDS must not wait for that ACK;
a reconnect to a control plane with the same content sends nothing; a NACK keeps the last
good config and the next good version is applied.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from test_ads_support import cluster, endpoints, listener, route_config

from translator.result import ROUTE_TYPE, GatewayResources
from xds_server.ads import AdsServer, add_ads_to_server
from xds_server.bootstrap import render_bootstrap
from xds_server.cache import SnapshotCache

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:  # the shared Envoy and backend harness is tests/support
    sys.path.insert(0, str(TESTS))

from support.echo import EchoBackends  # noqa: E402
from support.envoy import EnvoyProcess  # noqa: E402
from support.http import free_port, get  # noqa: E402
from support.wait import wait_until  # noqa: E402

pytestmark = pytest.mark.e2e
GATEWAY = "ns/gw"


class ControlPlane:
    """A grpc.aio ADS server on its own event loop thread; the test thread sets snapshots."""

    def __init__(self, cache: SnapshotCache, port: int) -> None:
        self.cache = cache
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: Any = None
        self.ads: AdsServer | None = None

    def _call(self, make: Callable[[], Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(make(), self._loop).result(10)

    def start(self) -> ControlPlane:
        self._thread.start()

        async def start() -> None:
            self._server = grpc.aio.server()
            self.ads = add_ads_to_server(self._server, self.cache)
            self._server.add_insecure_port(f"127.0.0.1:{self.port}")
            await self._server.start()

        self._call(start)
        return self

    def clients(self) -> list[dict[str, Any]]:
        async def clients() -> list[dict[str, Any]]:
            assert self.ads is not None
            return self.ads.clients()

        result: list[dict[str, Any]] = self._call(clients)
        return result

    def stop(self) -> None:
        async def stop() -> None:
            assert self.ads is not None
            await self.ads.close(grace=1.0)
            await self._server.stop(None)

        self._call(stop)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@contextmanager
def control_plane(cache: SnapshotCache, port: int) -> Iterator[ControlPlane]:
    plane = ControlPlane(cache, port).start()
    try:
        yield plane
    finally:
        plane.stop()


def two_versions(port_a: int, port_b: int, lport: int, lport2: int) -> list[GatewayResources]:
    """v1: l1 -> r1 -> c1 (backend a); v2: r1 and a new l2 -> r2 use c2 (backend b), c1 gone."""
    v1 = GatewayResources(
        listeners=(listener("l1", "r1", lport),),
        routes=(route_config("r1", [("/", "c1")]),),
        clusters=(cluster("c1"),),
        endpoints=(endpoints("c1", port_a),),
    )
    v2 = GatewayResources(
        listeners=(listener("l1", "r1", lport), listener("l2", "r2", lport2)),
        routes=(route_config("r1", [("/", "c2")]), route_config("r2", [("/", "c2")])),
        clusters=(cluster("c2"),),
        endpoints=(endpoints("c2", port_b),),
    )
    return [v1, v2]


def service(port: int) -> str:
    try:
        result = get(f"http://127.0.0.1:{port}/", timeout=2)
    except OSError as error:
        return f"error: {error}"
    return str(result.json["service"]) if result.status == 200 else f"status {result.status}"


def active_clusters(envoy: EnvoyProcess) -> list[dict[str, Any]]:
    dump = envoy.admin_json("config_dump?resource=dynamic_active_clusters")
    return [entry["cluster"] for entry in dump["configs"]]


def subscribed(plane: ControlPlane, type_key: str) -> bool:
    """Whether a proxy is connected and has subscribed to ``type_key`` ("routes", ...)."""
    clients = plane.clients()
    return bool(clients) and bool(clients[0]["types"][type_key]["subscribed"])


def with_routes(resources: GatewayResources, *routes: Any) -> GatewayResources:
    return GatewayResources(
        listeners=resources.listeners,
        routes=routes,
        clusters=resources.clusters,
        endpoints=resources.endpoints,
    )


def change_under_traffic(
    cache: SnapshotCache, envoy: EnvoyProcess, lport: int, lport2: int, v2: GatewayResources
) -> list[str]:
    """With traffic on ``lport`` throughout: switch to ``v2`` (new cluster c2 and routes),
    then change c2's content under the same name (it re-warms); the failed requests."""
    failures: list[str] = []
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            seen = service(lport)
            if seen not in ("backend-a", "backend-b"):
                failures.append(seen)

    sender = threading.Thread(target=traffic)
    sender.start()
    try:
        cache.set_snapshot({GATEWAY: v2})
        wait_until(lambda: service(lport2) == "backend-b", timeout=5)
        wait_until(lambda: [c["name"] for c in active_clusters(envoy)] == ["c2"], 5)
        changed = GatewayResources(
            listeners=v2.listeners,
            routes=v2.routes,
            clusters=(cluster("c2", connect_timeout=3),),
            endpoints=v2.endpoints,
        )
        cache.set_snapshot({GATEWAY: changed})  # same name, new content: re-warms
        wait_until(lambda: active_clusters(envoy)[0]["connect_timeout"] == "3s", 5)
    finally:
        stop.set()
        sender.join(10)
    return failures


def test_a_change_moves_traffic_without_errors_or_warming_timeouts(tmp_path: Path) -> None:
    """New cluster + routes: no failed request, no init_fetch_timeout, old cluster removed."""
    xds_port, lport, lport2 = free_port(), free_port(), free_port()
    cache = SnapshotCache()
    with EchoBackends() as backends, control_plane(cache, xds_port) as plane:
        a, b = backends.start("backend-a"), backends.start("backend-b")
        v1, v2 = two_versions(a.port, b.port, lport, lport2)
        bootstrap = render_bootstrap(GATEWAY, "127.0.0.1", xds_port, 0)
        with EnvoyProcess(bootstrap, tmp_path).start(wait=False) as envoy:
            wait_until(lambda: subscribed(plane, "clusters"), timeout=10)
            time.sleep(0.3)  # absence: nothing is sent before the first snapshot
            assert all(t["sent_version"] == "" for t in plane.clients()[0]["types"].values())
            cache.set_snapshot({GATEWAY: v1})
            wait_until(lambda: service(lport) == "backend-a", timeout=10)
            assert change_under_traffic(cache, envoy, lport, lport2, v2) == []
            assert service(lport) == "backend-b"
            stats = envoy.stats("init_fetch_timeout|update_rejected")
            assert {k: v for k, v in stats.items() if v} == {}


def test_a_restarted_control_plane_sends_nothing_new_and_nacks_keep_config(
    tmp_path: Path,
) -> None:
    """Same content after a restart: nothing re-sent. A NACKed route keeps the old one."""
    xds_port, lport, lport2 = free_port(), free_port(), free_port()
    with EchoBackends() as backends:
        a, b = backends.start("backend-a"), backends.start("backend-b")
        _, v2 = two_versions(a.port, b.port, lport, lport2)
        bootstrap = render_bootstrap(GATEWAY, "127.0.0.1", xds_port, 0)
        first = SnapshotCache()
        first.set_snapshot({GATEWAY: v2})
        with EnvoyProcess(bootstrap, tmp_path).start(wait=False) as envoy:
            with control_plane(first, xds_port):
                wait_until(lambda: service(lport) == "backend-b", timeout=10)
            restarted = SnapshotCache()
            restarted.set_snapshot({GATEWAY: v2})
            with control_plane(restarted, xds_port) as plane:
                wait_until(lambda: subscribed(plane, "routes"), timeout=10)
                time.sleep(0.3)  # absence: nothing is sent to a proxy that has it all
                assert all(t["sent_nonce"] == "" for t in plane.clients()[0]["types"].values())

                bad = route_config("r1", [("/", "c2")])
                bad.virtual_hosts[0].routes[0].match.safe_regex.regex = "(("
                restarted.set_snapshot({GATEWAY: with_routes(v2, bad, v2.routes[1])})
                wait_until(lambda: plane.clients()[0]["types"]["routes"]["nack"], timeout=5)
                assert service(lport) == "backend-b"

                fixed = route_config("r1", [("/", "c2"), ("/x", "c2")])
                restarted.set_snapshot({GATEWAY: with_routes(v2, fixed, v2.routes[1])})
                good = restarted.gateways[GATEWAY].types[ROUTE_TYPE].version
                wait_until(
                    lambda: plane.clients()[0]["types"]["routes"]["acked_version"] == good, 5
                )
                assert service(lport) == "backend-b"
            assert envoy.running
