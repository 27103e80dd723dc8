"""A NACK from a real Envoy: visible everywhere, never resent, cleared by a good version.

The Gateway gets a second listener on a port a socket of this test already holds; Envoy
cannot bind it and rejects the LDS response ("cannot bind ... Address already in use").
The rejection must show in `xdsctl proxy-status` (the real CLI), in CSDS (a real gRPC
client), in the Gateway's gateway-xds.io/ProxiesAccepted condition and in the metrics; the
proxy keeps serving its last good config; the rejected version is not sent again while
other types move on; moving the listener to a free port makes everything SYNCED again.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from envoy.service.status.v3 import csds_pb2, csds_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from support.http import free_port, get
from support.stack import Stack, gateway_objects
from support.wait import wait_until

from translator.result import LISTENER_TYPE
from xds_server.bootstrap import default_node_id
from xds_server.proxy_conditions import CONDITION_TYPE

pytestmark = pytest.mark.e2e

NODE = default_node_id("default/gw")
ROUTE = """\
    apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: {{name: nack-route, namespace: default}}
    spec:
      parentRefs: [{{name: gw, sectionName: http}}]
      rules:
        - matches: [{{path: {{type: PathPrefix, value: /nack}}}}]
          backendRefs: [{{name: {backend}, port: 80}}]
    """


def gateway_with_second_listener(stack: Stack, port: int) -> str:
    """The stack's Gateway plus a listener "second" on ``port``."""
    extra = f"""\
            - name: second
              protocol: HTTP
              port: {port}
              allowedRoutes: {{namespaces: {{from: All}}}}
        """
    return gateway_objects(stack.listener_port).rstrip(" ") + extra


@pytest.fixture
def held_port() -> Iterator[socket.socket]:
    """A loopback port this test holds (bound and listening), so Envoy cannot bind it."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        yield holder
    finally:
        holder.close()


@pytest.fixture
def restored(routes: Stack) -> Iterator[Stack]:
    """The stack; its Gateway file is put back as start_stack wrote it afterwards."""
    yield routes
    routes.write("gateway.yaml", gateway_objects(routes.listener_port))
    routes.written.discard("gateway.yaml")  # start_stack's file: not removed by `routes`
    wait_until(lambda: listeners(routes)["status"] == "SYNCED", 15)


def clients(stack: Stack) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = stack.plane.api("/api/clients")
    return found


def listeners(stack: Stack) -> dict[str, Any]:
    [client] = clients(stack)
    found: dict[str, Any] = client["types"]["listeners"]
    return found


def proxies_accepted(stack: Stack) -> dict[str, Any]:
    [gateway] = [s for s in stack.plane.api("/api/status") if s["kind"] == "Gateway"]
    [found] = [c for c in gateway["status"]["conditions"] if c["type"] == CONDITION_TYPE]
    return dict(found)


def metric(stack: Stack, name: str, **labels: str) -> float:
    text = get(stack.plane.admin_url + "/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def proxy_status(stack: Stack) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "xds_server.cli", "proxy-status", "--admin-address",
         f"127.0.0.1:{stack.plane.admin_port}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def lds_cell(table: str) -> str:
    """The LDS column of the proxy's row (columns start where the header's names do)."""
    header, row = table.splitlines()[:2]
    start, end = header.index("LDS"), header.index("RDS")
    return row[start:end].strip()


def csds_listeners(stack: Stack) -> dict[str, Any]:
    with grpc.insecure_channel(f"127.0.0.1:{stack.plane.xds_port}") as channel:
        stub = csds_pb2_grpc.ClientStatusDiscoveryServiceStub(channel)
        matcher = csds_pb2.ClientStatusRequest().node_matchers.add()
        matcher.node_id.exact = NODE
        request = csds_pb2.ClientStatusRequest(node_matchers=[matcher])
        answer = stub.FetchClientStatus(request, timeout=10)
    [config] = answer.config
    return {g.name: g for g in config.generic_xds_configs if g.type_url == LISTENER_TYPE}


def test_a_listener_envoy_cannot_bind(restored: Stack, held_port: socket.socket) -> None:
    """NACK shown by proxy-status, CSDS, Gateway status and metrics; not resent; fixed."""
    stack = restored
    port = held_port.getsockname()[1]
    first, second = f"http-{stack.listener_port}", f"http-{port}"
    stack.write("nack-route.yaml", textwrap.dedent(ROUTE.format(backend="echo-a")))
    stack.wait_for("/nack", "echo-a")
    nacks_before = metric(stack, "gateway_xds_nacks_total", type="listeners")

    stack.write("gateway.yaml", gateway_with_second_listener(stack, port))
    nack = wait_until(lambda: listeners(stack)["nack"], 15, message="no LDS NACK")
    bind_error = f"cannot bind '127.0.0.1:{port}': Address already in use"
    assert bind_error in nack["message"]
    assert second in nack["message"]
    assert stack.service_of("/nack") == "echo-a"  # Envoy kept its last good listeners

    table = proxy_status(stack)
    assert lds_cell(table) == f"NACKED {nack['version'][:8]}"
    assert f"{NODE} (default/gw) listeners version {nack['version']}" in table
    assert bind_error in table

    by_name = csds_listeners(stack)
    assert by_name[second].config_status == csds_pb2.ERROR
    assert bind_error in by_name[second].error_state.details
    assert by_name[second].error_state.version_info == nack["version"]
    assert by_name[first].config_status == csds_pb2.SYNCED

    condition = wait_until(lambda: (c := proxies_accepted(stack))["status"] == "False" and c, 10)
    assert condition["reason"] == "Rejected"
    assert f"{NODE} rejected listeners version {nack['version']}" in condition["message"]
    assert bind_error in condition["message"]
    assert metric(stack, "gateway_xds_proxies_rejecting", type="listeners") == 1.0
    assert metric(stack, "gateway_xds_nacks_total", type="listeners") == nacks_before + 1

    # Other types move on; the rejected listeners are not sent again meanwhile.
    sent_before = metric(stack, "gateway_xds_responses_sent_total", type="listeners")
    routes_sent = metric(stack, "gateway_xds_responses_sent_total", type="routes")
    stack.write("nack-route.yaml", textwrap.dedent(ROUTE.format(backend="echo-b")))
    stack.wait_for("/nack", "echo-b")
    wait_until(lambda: clients(stack)[0]["types"]["routes"]["in_sync"], 10)
    assert metric(stack, "gateway_xds_responses_sent_total", type="routes") > routes_sent
    now = listeners(stack)
    assert now["current_version"] == nack["version"]  # the listeners did not change
    assert (now["sent_version"], now["nack"]) == (nack["version"], nack)
    assert metric(stack, "gateway_xds_responses_sent_total", type="listeners") == sent_before
    assert metric(stack, "gateway_xds_nacks_total", type="listeners") == nacks_before + 1

    # Fixed input: the second listener moves to a free port; Envoy takes it.
    free = free_port()
    stack.write("gateway.yaml", gateway_with_second_listener(stack, free))
    wait_until(lambda: listeners(stack)["status"] == "SYNCED", 15, message="LDS not SYNCED")
    assert stack.envoy.wait_for(lambda: stack.envoy.listener_port(f"http-{free}"), 10) == free
    wait_until(lambda: proxies_accepted(stack)["status"] == "True", 10)
    assert lds_cell(proxy_status(stack)).startswith("SYNCED")
    assert {g.config_status for g in csds_listeners(stack).values()} == {csds_pb2.SYNCED}
    assert metric(stack, "gateway_xds_proxies_rejecting", type="listeners") == 0.0
    assert metric(stack, "gateway_xds_debounce_seconds_count") >= 4  # one per file change
