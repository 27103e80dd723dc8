"""Delta ADS against a real Envoy (``api_type: DELTA_GRPC``): what the protocol tests model.

Envoy holds its CDS ACK until new or changed EDS clusters warmed, and with delta xDS a
changed cluster whose endpoints did not change warms only if its ClusterLoadAssignment is
sent again; a reconnecting Envoy tells what it has (``initial_resource_versions``) and
gets only what differs, and what no longer exists is removed; a NACK keeps the last good
config and the next good version is applied.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from test_ads_envoy import (
    GATEWAY,
    active_clusters,
    change_under_traffic,
    control_plane,
    service,
    subscribed,
    two_versions,
    with_routes,
)
from test_ads_support import route_config

from translator.result import CLUSTER_TYPE, ROUTE_TYPE
from xds_server.bootstrap import render_bootstrap
from xds_server.cache import SnapshotCache

TESTS = Path(__file__).resolve().parents[1]

from support.echo import EchoBackends  # noqa: E402
from support.envoy import EnvoyProcess  # noqa: E402
from support.http import free_port  # noqa: E402
from support.wait import wait_until  # noqa: E402

pytestmark = pytest.mark.e2e


def delta_bootstrap(xds_port: int) -> dict[str, Any]:
    return render_bootstrap(GATEWAY, "127.0.0.1", xds_port, 0, delta=True)


def entry(plane: Any) -> dict[str, Any]:
    [client] = plane.clients()
    assert client["protocol"] == "delta"
    return dict(client)


def test_delta_change_moves_traffic_without_errors_or_warming_timeouts(tmp_path: Path) -> None:
    """New cluster + routes, then a changed cluster: no failed request, nothing left warming."""
    xds_port, lport, lport2 = free_port(), free_port(), free_port()
    cache = SnapshotCache()
    with EchoBackends() as backends, control_plane(cache, xds_port) as plane:
        a, b = backends.start("backend-a"), backends.start("backend-b")
        v1, v2 = two_versions(a.port, b.port, lport, lport2)
        with EnvoyProcess(delta_bootstrap(xds_port), tmp_path).start(wait=False) as envoy:
            wait_until(lambda: subscribed(plane, "clusters"), timeout=10)
            time.sleep(0.3)  # absence: nothing is sent before the first snapshot
            assert all(t["sent_nonce"] == "" for t in entry(plane)["types"].values())
            cache.set_snapshot({GATEWAY: v1})
            wait_until(lambda: service(lport) == "backend-a", timeout=10)
            assert change_under_traffic(cache, envoy, lport, lport2, v2) == []
            assert service(lport) == "backend-b"
            stats = envoy.stats("init_fetch_timeout|update_rejected|warming")
            assert {k: v for k, v in stats.items() if v and "warming" not in k} == {}
            assert stats.get("cluster_manager.warming_clusters") == 0
            types = entry(plane)["types"]
            assert types["clusters"]["resources_acked"] == 1
            assert types["endpoints"]["resource_names"] == ["c2"]


def test_delta_reconnect_sends_only_what_differs_and_nacks_keep_config(tmp_path: Path) -> None:
    """A restarted control plane: same content sends nothing; new content only the changes.

    Then a NACKed route keeps the old one and the next good version is applied.
    """
    xds_port, lport, lport2 = free_port(), free_port(), free_port()
    with EchoBackends() as backends:
        a, b = backends.start("backend-a"), backends.start("backend-b")
        v1, v2 = two_versions(a.port, b.port, lport, lport2)
        first = SnapshotCache()
        first.set_snapshot({GATEWAY: v1})
        with EnvoyProcess(delta_bootstrap(xds_port), tmp_path).start(wait=False) as envoy:
            with control_plane(first, xds_port):
                wait_until(lambda: service(lport) == "backend-a", timeout=10)
            same = SnapshotCache()
            same.set_snapshot({GATEWAY: v1})
            with control_plane(same, xds_port) as plane:
                wait_until(lambda: subscribed(plane, "routes"), timeout=10)
                time.sleep(0.3)  # absence: nothing is sent to a proxy that has it all
                assert all(t["sent_nonce"] == "" for t in entry(plane)["types"].values())
                assert entry(plane)["types"]["clusters"]["resources_acked"] == 1
            changed = SnapshotCache()
            changed.set_snapshot({GATEWAY: v2})
            with control_plane(changed, xds_port) as plane:
                wait_until(lambda: service(lport2) == "backend-b", timeout=10)
                wait_until(lambda: [c["name"] for c in active_clusters(envoy)] == ["c2"], 5)
                assert service(lport) == "backend-b"
                served = changed.gateways[GATEWAY].types
                acked = lambda t: entry(plane)["types"][t]["acked_version"]  # noqa: E731
                wait_until(lambda: acked("clusters") == served[CLUSTER_TYPE].version, 5)

                bad = route_config("r1", [("/", "c2")])
                bad.virtual_hosts[0].routes[0].match.safe_regex.regex = "(("
                changed.set_snapshot({GATEWAY: with_routes(v2, bad, v2.routes[1])})
                wait_until(lambda: entry(plane)["types"]["routes"]["nack"], timeout=5)
                assert service(lport) == "backend-b"

                fixed = route_config("r1", [("/", "c2"), ("/x", "c2")])
                changed.set_snapshot({GATEWAY: with_routes(v2, fixed, v2.routes[1])})
                good = changed.gateways[GATEWAY].types[ROUTE_TYPE].version
                wait_until(lambda: acked("routes") == good, 5)
                assert service(lport) == "backend-b"
            assert envoy.running
