"""Kubernetes objects reach a real Envoy's routing: `xdsctl serve --kubernetes` end to end.

An HTTPRoute created in the API server makes Envoy (bootstrapped for that Gateway) send /a to
backend 1; changing the route's backendRef moves /a to backend 2; deleting the route gives 404.

The API server refuses EndpointSlice addresses in 127.0.0.0/8, so the echo backends listen on
TEST-NET-1 ``192.0.2.10``, added to the loopback interface for this module (root only; it is
removed again if this module added it). Traffic never leaves the machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from support.echo import EchoBackend, EchoBackends
from support.envoy import EnvoyProcess
from support.http import free_port, get
from support.kube_apiserver import KubeApiServer
from support.wait import wait_until

from xds_server.bootstrap import render_bootstrap

pytestmark = [pytest.mark.kube, pytest.mark.e2e]

GROUP, VERSION = "gateway.networking.k8s.io", "v1"
CONTROLLER = "gateway-xds.io/gatewayclass-controller"
BACKEND_ADDRESS = "192.0.2.10"  # TEST-NET-1 (RFC 5737), on the loopback interface


def _lo_has(address: str, ip: str) -> bool:
    shown = subprocess.run(
        [ip, "-o", "-4", "addr", "show", "dev", "lo"], capture_output=True, text=True, check=True
    )
    return f" {address}/" in shown.stdout


@pytest.fixture(scope="module")
def backend_address() -> Iterator[str]:
    """``192.0.2.10`` on the loopback interface for the module's duration."""
    ip = shutil.which("ip")
    if ip is None:
        pytest.skip("needs the `ip` command to add 192.0.2.10 to the loopback interface")
    if _lo_has(BACKEND_ADDRESS, ip):
        yield BACKEND_ADDRESS
        return
    if os.geteuid() != 0:
        pytest.skip("needs root to add 192.0.2.10/32 to lo (EndpointSlices refuse 127.0.0.0/8)")
    added = subprocess.run(
        [ip, "addr", "add", f"{BACKEND_ADDRESS}/32", "dev", "lo"],
        capture_output=True,
        text=True,
        check=False,
    )
    if added.returncode != 0:
        pytest.skip(f"`ip addr add {BACKEND_ADDRESS}/32 dev lo` failed: {added.stderr.strip()}")
    try:
        yield BACKEND_ADDRESS
    finally:
        subprocess.run(
            [ip, "addr", "del", f"{BACKEND_ADDRESS}/32", "dev", "lo"], check=True, timeout=10
        )


def _service(name: str, backend: EchoBackend) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": backend.port}]},
    }


def _endpoint_slice(name: str, backend: EchoBackend) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": f"{name}-1", "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": backend.port, "protocol": "TCP"}],
        "endpoints": [{"addresses": [backend.host], "conditions": {"ready": True}}],
    }


def _route(namespace: str, service: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "HTTPRoute",
        "metadata": {"name": "to-a", "namespace": namespace},
        "spec": {
            "parentRefs": [{"name": "web"}],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/a"}}],
                    "backendRefs": [{"name": service, "port": 80}],
                }
            ],
        },
    }


def test_route_created_changed_deleted_reaches_envoy(
    kube_api: KubeApiServer, backend_address: str, tmp_path: Path
) -> None:
    api = kube_api.client()
    core = client.CoreV1Api(api)
    discovery = client.DiscoveryV1Api(api)
    custom = client.CustomObjectsApi(api)
    namespace, class_name = f"e-{uuid.uuid4().hex[:8]}", f"envoy-{uuid.uuid4().hex[:8]}"
    listener_port = free_port()
    echoes = EchoBackends()
    processes: list[subprocess.Popen[bytes]] = []
    envoy: EnvoyProcess | None = None
    log_path = tmp_path / "serve.log"
    try:
        backends = {
            name: echoes.start(name, namespace=namespace, host=backend_address)
            for name in ("echo-1", "echo-2")
        }
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
        for name, backend in backends.items():
            core.create_namespaced_service(namespace, _service(name, backend))
            discovery.create_namespaced_endpoint_slice(namespace, _endpoint_slice(name, backend))
        custom.create_cluster_custom_object(
            GROUP,
            VERSION,
            "gatewayclasses",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "GatewayClass",
                "metadata": {"name": class_name},
                "spec": {"controllerName": CONTROLLER},
            },
        )
        gateway = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Gateway",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {
                "gatewayClassName": class_name,
                "listeners": [{"name": "http", "protocol": "HTTP", "port": listener_port}],
            },
        }
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "gateways", gateway)

        xds_port, admin_port = free_port(), free_port()
        command = [
            sys.executable, "-m", "xds_server.cli", "serve", "--kubernetes",
            "--kubeconfig", str(kube_api.kubeconfig),
            "--xds-address", f"127.0.0.1:{xds_port}",
            "--admin-address", f"127.0.0.1:{admin_port}",
            "--listener-address", "127.0.0.1",
        ]  # fmt: skip
        with log_path.open("wb") as log:
            processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
        plane = processes[0]

        def ready() -> bool:
            assert plane.poll() is None, log_path.read_text()
            return get(f"http://127.0.0.1:{admin_port}/readyz", timeout=2).status == 200

        wait_until(ready, timeout=30, ignore=(OSError,), message=log_path.read_text)
        bootstrap = render_bootstrap(f"{namespace}/web", "127.0.0.1", xds_port, admin_port=0)
        envoy = EnvoyProcess(bootstrap, tmp_path, log_level="warning").start()
        envoy.wait_for(
            lambda: envoy.listener_port(f"http-{listener_port}") == listener_port,
            20,
            what=f"listener http-{listener_port} from the control plane",
        )

        def answered_by(expected: str | int) -> None:
            def service() -> str | int:
                result = get(f"http://127.0.0.1:{listener_port}/a/x", timeout=2)
                if result.status != 200 or result.json is None:
                    return result.status
                return str(result.json["service"])

            wait_until(
                lambda: service() == expected,
                timeout=20,
                ignore=(OSError,),
                message=lambda: (
                    f"/a never answered by {expected!r}; last {service()!r}\n"
                    f"{log_path.read_text()[-2000:]}"
                ),
            )

        # Created: /a goes to backend 1.
        custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "httproutes", _route(namespace, "echo-1")
        )
        answered_by("echo-1")
        assert backends["echo-1"].requests[-1].target == "/a/x"
        served_by_2 = len(backends["echo-2"].requests)

        # Changed: the same route now points at backend 2.
        # A merge patch of the spec: no resourceVersion, so the status writer's concurrent
        # update of the route's status cannot make it conflict.
        custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            "httproutes",
            "to-a",
            {"spec": _route(namespace, "echo-2")["spec"]},
            _content_type="application/merge-patch+json",
        )
        answered_by("echo-2")
        assert len(backends["echo-2"].requests) > served_by_2

        # Deleted: nothing routes /a any more.
        custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "httproutes", "to-a")
        answered_by(404)
        assert envoy.running
        assert plane.poll() is None
    finally:
        if envoy is not None:
            envoy.stop()
        for process in processes:
            process.terminate()
            process.wait(timeout=20)
        echoes.close()
        for delete in (
            lambda: custom.delete_cluster_custom_object(
                GROUP, VERSION, "gatewayclasses", class_name
            ),
            lambda: core.delete_namespace(namespace),
        ):
            try:
                delete()
            except client.ApiException as exc:
                if exc.status != 404:  # not created: the test failed before
                    raise
        api.close()
    assert processes[0].returncode == 0, log_path.read_text()[-2000:]
