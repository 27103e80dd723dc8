"""Two replicas of `xdsctl serve --kubernetes` on one API server, a real Envoy between them.

Both replicas serve xDS; only the holder of the Lease writes status. Versions are content
hashes, so Envoy, moved from replica a to replica b (a TCP relay in front of them switches
its connection), is sent nothing it already has: its accepted-update counters stay put and
b sends no response until something changes, which then reaches Envoy through b. The two
replicas run with different PYTHONHASHSEEDs: their versions must not depend on hashing.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from support.envoy import EnvoyProcess
from support.http import free_port
from support.kube_apiserver import KubeApiServer
from support.kube_objects import (
    GROUP,
    VERSION,
    create,
    create_gateway_class,
    create_namespace,
    delete_quietly,
    endpoint_slice,
    gateway,
    get,
    http_listener,
    http_route,
    service,
)
from support.kube_serve import ServeProcess
from support.tcp_relay import TcpRelay
from support.wait import wait_until

from translator.result import LISTENER_TYPE, ROUTE_TYPE
from xds_server.bootstrap import render_bootstrap
from xds_server.leader import LeaseSettings
from xds_server.proxy_conditions import CONDITION_TYPE, Rejection
from xds_server.replica_reports import REPORT_DURATION, REPORT_LABEL, Found, ReplicaReports

pytestmark = [pytest.mark.kube, pytest.mark.e2e]

DEADLINE = 30.0
PEER = Rejection("proxy-on-b", LISTENER_TYPE, "v1", "cannot bind")
PEER_ROUTES = Rejection("proxy-on-b", ROUTE_TYPE, "v2", "bad route")


@pytest.fixture
def world(kube_api: KubeApiServer) -> Iterator[tuple[Any, str, int]]:
    """A namespace with our GatewayClass, Gateway ``web`` and HTTPRoute ``app`` (/a -> echo):
    (admin client, namespace, the Gateway's listener port)."""
    api = kube_api.client()
    class_name = f"ha-{uuid.uuid4().hex[:8]}"
    namespace = create_namespace(api, "ha")
    port = free_port()
    create_gateway_class(api, class_name)
    create(api, gateway(namespace, class_name, http_listener(port)))
    create(api, service("echo", 8080), namespace)
    create(api, endpoint_slice("echo", "192.0.2.10", 8080), namespace)
    create(api, http_route(namespace, "app", "/a", "echo"))
    yield api, namespace, port
    custom = client.CustomObjectsApi(api)
    delete_quietly(
        lambda: custom.delete_cluster_custom_object(GROUP, VERSION, "gatewayclasses", class_name),
        lambda: client.CoreV1Api(api).delete_namespace(namespace),
    )
    api.close()


def _served_paths(envoy: EnvoyProcess) -> str:
    """Envoy's dynamic route configurations as text (the paths it routes appear in it)."""
    return envoy.admin_get("config_dump?resource=dynamic_route_configs")


def _in_sync(plane: ServeProcess) -> bool:
    """One proxy connected, and every type it subscribes to ACKed at what we serve it."""
    clients = plane.api("/api/clients")
    if len(clients) != 1:
        return False
    subscribed = [t for t in clients[0]["types"].values() if t["subscribed"]]
    return bool(subscribed) and all(t["in_sync"] for t in subscribed)


def _sum(metrics: dict[str, float], prefix: str) -> float:
    return sum(value for name, value in metrics.items() if name.startswith(prefix))


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
def test_proxy_moved_between_replicas_gets_nothing_it_has_and_one_replica_writes(
    kube_api: KubeApiServer, world: tuple[Any, str, int], tmp_path: Path, delta: bool
) -> None:
    api, namespace, _port = world
    lease = ("--lease-namespace", namespace, "--lease-name", "writers")
    replicas = {
        name: ServeProcess(
            kube_api.kubeconfig,
            tmp_path / f"{name}.log",
            *lease,
            "--lease-identity",
            name,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        for name, seed in (("a", "1"), ("b", "2"))
    }
    try:
        replicas["a"].start().wait_ready()
        wait_until(
            lambda: replicas["a"].metrics()["gateway_xds_leader"] == 1.0,
            timeout=DEADLINE,
            message="a holds the Lease",
        )
        replicas["b"].start().wait_ready()
        with TcpRelay(("127.0.0.1", replicas["a"].xds_port)) as relay:
            bootstrap = render_bootstrap(
                f"{namespace}/web", "127.0.0.1", relay.port, admin_port=0, delta=delta
            )
            with EnvoyProcess(bootstrap, tmp_path, log_level="warning") as envoy:
                envoy.wait_for(lambda: '"/a"' in _served_paths(envoy), DEADLINE, what="/a")
                wait_until(lambda: _in_sync(replicas["a"]), timeout=DEADLINE, message="a synced")
                accepted = envoy.stats(r"update_(success|rejected)$")
                assert accepted, "Envoy has update counters"

                relay.switch(("127.0.0.1", replicas["b"].xds_port))
                wait_until(lambda: _in_sync(replicas["b"]), timeout=DEADLINE, message="b synced")
                # b had nothing to send: Envoy accepted no update, b sent no response.
                assert envoy.stats(r"update_(success|rejected)$") == accepted
                b_metrics = replicas["b"].metrics()
                assert _sum(b_metrics, "gateway_xds_responses_sent_total") == 0.0
                assert _sum(b_metrics, "gateway_xds_nacks_total") == 0.0

                # b serves Envoy from now on: a changed route reaches it through b.
                client.CustomObjectsApi(api).patch_namespaced_custom_object(
                    GROUP, VERSION, namespace, "httproutes", "app",
                    {"spec": http_route(namespace, "app", "/b", "echo")["spec"]},
                    _content_type="application/merge-patch+json",
                )  # fmt: skip
                envoy.wait_for(lambda: '"/b"' in _served_paths(envoy), DEADLINE, what="/b")
                assert envoy.stats(r"update_(success|rejected)$") != accepted  # they do move
                assert _sum(replicas["b"].metrics(), "gateway_xds_responses_sent_total") >= 1
                wait_until(lambda: _in_sync(replicas["b"]), timeout=DEADLINE, message="b ACKed")

        # Both serve; only a, the Lease holder, wrote status.
        a_metrics, b_metrics = replicas["a"].metrics(), replicas["b"].metrics()
        written = 'gateway_xds_status_writes_total{result="written"}'
        assert a_metrics["gateway_xds_leader"] == 1.0
        assert b_metrics["gateway_xds_leader"] == 0.0
        assert a_metrics[written] >= 1.0
        assert b_metrics[written] == 0.0
        lease_body = client.CoordinationV1Api(api).read_namespaced_lease("writers", namespace)
        assert lease_body.spec.holder_identity == "a"
    finally:
        codes = {name: plane.stop() for name, plane in replicas.items()}
    assert codes == {"a": 0, "b": 0}, {n: p.log_text() for n, p in replicas.items()}


def test_replica_reports_reach_the_leader_and_go_stale(kube_api: KubeApiServer) -> None:
    """Against the real API server, one step at a time on a test clock: a follower's report
    reaches the leader, changes reach it, a silent report counts until its lease duration
    has passed without renewal, and a clean stop clears a report at once."""
    api = kube_api.client()
    namespace = create_namespace(api, "rr")
    now = [100.0]
    local: dict[str, Found] = {"a": {}, "b": {"ns/gw": (PEER,)}}
    gathered: list[Found] = []

    def replica(identity: str, leading: bool) -> ReplicaReports:
        def follower_gathers(found: Found) -> None:
            raise AssertionError(f"{identity} is not leading, yet gathered {found}")

        return ReplicaReports(
            api, LeaseSettings(namespace=namespace, identity=identity),
            local=lambda: local[identity],
            on_peers=gathered.append if leading else follower_gathers,
            is_leader=lambda: leading, interval=5.0, clock=lambda: now[0],
        )  # fmt: skip

    a, b = replica("a", leading=True), replica("b", leading=False)
    b.step()
    a.step()
    assert gathered == [{"ns/gw": (PEER,)}]  # b's report, not a's own

    local["b"] = {"ns/gw": (PEER, PEER_ROUTES)}  # a new mapping: published at once
    b.step()
    now[0] += 5.0
    a.step()
    assert gathered[-1] == {"ns/gw": (PEER, PEER_ROUTES)}

    # b goes silent (its process hangs): its report counts for REPORT_DURATION, then not.
    now[0] += 5.0
    a.step()
    assert gathered[-1] == {"ns/gw": (PEER, PEER_ROUTES)}
    now[0] += REPORT_DURATION
    a.step()
    assert gathered[-1] == {}

    # b renews again, then stops cleanly: the cleared report is read as no rejections.
    now[0] += 5.0
    b.step()
    now[0] += 5.0
    a.step()
    assert gathered[-1] == {"ns/gw": (PEER, PEER_ROUTES)}
    b.stop()
    now[0] += 5.0
    a.step()
    assert gathered[-1] == {}
    reports = client.CoordinationV1Api(api).list_namespaced_lease(
        namespace, label_selector=REPORT_LABEL
    )
    assert {lease.spec.holder_identity for lease in reports.items} == {"a", "b"}
    api.close()


def test_a_rejection_on_a_follower_reaches_the_status_the_leader_writes(
    kube_api: KubeApiServer, world: tuple[Any, str, int], tmp_path: Path
) -> None:
    """Envoy, connected to follower b, rejects its listener (the port is taken). Leader a,
    which has no proxy at all, writes the Gateway's ProxiesAccepted False naming that Envoy;
    when the Envoy goes away, a writes it True again."""
    api, namespace, port = world
    lease = ("--lease-namespace", namespace, "--lease-name", "writers")
    replicas = {
        name: ServeProcess(kube_api.kubeconfig, tmp_path / f"{name}.log", *lease,
                           "--lease-identity", name)
        for name in ("a", "b")
    }  # fmt: skip

    def proxies_accepted() -> dict[str, Any] | None:
        gateway = get(api, namespace, "gateways", "web")
        conditions = (gateway.get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == CONDITION_TYPE), None)

    try:
        replicas["a"].start().wait_ready()
        wait_until(
            lambda: replicas["a"].metrics()["gateway_xds_leader"] == 1.0,
            timeout=DEADLINE, message="a holds the Lease",
        )  # fmt: skip
        replicas["b"].start().wait_ready()
        wait_until(
            lambda: (proxies_accepted() or {}).get("status") == "True",
            timeout=DEADLINE, message="ProxiesAccepted True written by a",
        )  # fmt: skip
        bootstrap = render_bootstrap(
            f"{namespace}/web", "127.0.0.1", replicas["b"].xds_port, admin_port=0,
            node_id="envoy-on-b",
        )  # fmt: skip
        with (
            socket.create_server(("127.0.0.1", port)),  # the Gateway's port, taken
            EnvoyProcess(bootstrap, tmp_path, log_level="warning") as envoy,
        ):
            rejected = wait_until(
                lambda: _rejected(proxies_accepted()), timeout=DEADLINE,
                message=lambda: f"ProxiesAccepted False; last {proxies_accepted()}",
            )  # fmt: skip
            assert "envoy-on-b rejected listeners" in rejected["message"], rejected
            assert envoy.running
        wait_until(
            lambda: (proxies_accepted() or {}).get("status") == "True",
            timeout=DEADLINE, message="ProxiesAccepted True again once the Envoy left",
        )  # fmt: skip
        assert replicas["b"].metrics()['gateway_xds_status_writes_total{result="written"}'] == 0
    finally:
        codes = {name: plane.stop() for name, plane in replicas.items()}
    assert codes == {"a": 0, "b": 0}, {n: p.log_text() for n, p in replicas.items()}


def _rejected(condition: dict[str, Any] | None) -> dict[str, Any] | None:
    return condition if condition is not None and condition["status"] == "False" else None
