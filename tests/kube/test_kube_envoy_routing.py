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
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from support.echo import EchoBackends
from support.envoy import EnvoyProcess
from support.http import free_port, get
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
    http_listener,
    http_route,
    service,
)
from support.kube_serve import ServeProcess
from support.wait import wait_until

from xds_server.bootstrap import render_bootstrap

pytestmark = [pytest.mark.kube, pytest.mark.e2e]

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


def test_route_created_changed_deleted_reaches_envoy(
    kube_api: KubeApiServer, backend_address: str, tmp_path: Path
) -> None:
    api = kube_api.client()
    custom = client.CustomObjectsApi(api)
    namespace, class_name = create_namespace(api, "e"), f"envoy-{uuid.uuid4().hex[:8]}"
    listener_port = free_port()
    echoes = EchoBackends()
    plane = ServeProcess(kube_api.kubeconfig, tmp_path / "serve.log")
    envoy: EnvoyProcess | None = None
    try:
        backends = {
            name: echoes.start(name, namespace=namespace, host=backend_address)
            for name in ("echo-1", "echo-2")
        }
        for name, backend in backends.items():
            create(api, service(name, backend.port), namespace)
            create(api, endpoint_slice(name, backend.host, backend.port), namespace)
        create_gateway_class(api, class_name)
        create(api, gateway(namespace, class_name, http_listener(listener_port)))

        plane.start().wait_ready()
        bootstrap = render_bootstrap(f"{namespace}/web", "127.0.0.1", plane.xds_port, admin_port=0)
        envoy = EnvoyProcess(bootstrap, tmp_path, log_level="warning").start()
        envoy.wait_for(
            lambda: envoy.listener_port(f"http-{listener_port}") == listener_port,
            20,
            what=f"listener http-{listener_port} from the control plane",
        )

        def answered_by(expected: str | int) -> None:
            def answer() -> str | int:
                result = get(f"http://127.0.0.1:{listener_port}/a/x", timeout=2)
                if result.status != 200 or result.json is None:
                    return result.status
                return str(result.json["service"])

            wait_until(
                lambda: answer() == expected,
                timeout=20,
                ignore=(OSError,),
                message=lambda: (
                    f"/a never answered by {expected!r}; last {answer()!r}\n{plane.log_text(2000)}"
                ),
            )

        # Created: /a goes to backend 1.
        create(api, http_route(namespace, "to-a", "/a", "echo-1"))
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
            {"spec": http_route(namespace, "to-a", "/a", "echo-2")["spec"]},
            _content_type="application/merge-patch+json",
        )
        answered_by("echo-2")
        assert len(backends["echo-2"].requests) > served_by_2

        # Deleted: nothing routes /a any more.
        custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "httproutes", "to-a")
        answered_by(404)
        assert envoy.running
        assert plane.alive()
    finally:
        if envoy is not None:
            envoy.stop()
        returncode = plane.stop()
        echoes.close()
        delete_quietly(
            lambda: custom.delete_cluster_custom_object(
                GROUP, VERSION, "gatewayclasses", class_name
            ),
            lambda: client.CoreV1Api(api).delete_namespace(namespace),
        )
        api.close()
    assert returncode == 0, plane.log_text(2000)
