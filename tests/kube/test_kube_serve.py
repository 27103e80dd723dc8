"""`xdsctl serve --kubernetes --kubeconfig PATH` against the real API server: it becomes
ready after the first sync and translates what it watches (admin /api/status)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from support.http import get
from support.kube_apiserver import KubeApiServer
from support.wait import wait_until

pytestmark = pytest.mark.kube

GROUP, VERSION = "gateway.networking.k8s.io", "v1"
CONTROLLER = "gateway-xds.io/gatewayclass-controller"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _gateway_status(admin: str, namespace: str) -> dict[str, Any] | None:
    answer = get(f"{admin}/api/status", timeout=2)
    if answer.status != 200:
        return None
    for entry in json.loads(answer.body):
        meta = entry["metadata"]
        if entry["kind"] == "Gateway" and (meta["namespace"], meta["name"]) == (namespace, "web"):
            return dict(entry["status"])
    return None


def test_serve_kubernetes_becomes_ready_and_translates(
    kube_api: KubeApiServer, tmp_path: Path
) -> None:
    """Readiness follows the first sync; a Gateway of our class gets translated status."""
    api = kube_api.client()
    namespace, class_name = f"s-{uuid.uuid4().hex[:8]}", f"serve-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace))
    )
    custom = client.CustomObjectsApi(api)
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
            "listeners": [{"name": "http", "protocol": "HTTP", "port": 8080}],
        },
    }
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "gateways", gateway)
    admin = f"http://127.0.0.1:{_free_port()}"
    log_path = tmp_path / "serve.log"
    command = [
        sys.executable, "-m", "xds_server.cli", "serve", "--kubernetes",
        "--kubeconfig", str(kube_api.kubeconfig),
        "--xds-address", f"127.0.0.1:{_free_port()}",
        "--admin-address", admin.removeprefix("http://"),
        "--listener-address", "127.0.0.1",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:

        def ready() -> bool:
            assert process.poll() is None, log_path.read_text()
            return get(f"{admin}/readyz", timeout=2).status == 200

        wait_until(ready, timeout=30, ignore=(OSError,), message=log_path.read_text)
        status = wait_until(
            lambda: _gateway_status(admin, namespace), timeout=10, ignore=(OSError,)
        )
        conditions = {c["type"]: c["status"] for c in status["conditions"]}
        assert conditions["Accepted"] == "True", status
    finally:
        process.terminate()
        process.wait(timeout=20)
        custom.delete_cluster_custom_object(GROUP, VERSION, "gatewayclasses", class_name)
        client.CoreV1Api(api).delete_namespace(namespace)
        api.close()
    assert process.returncode == 0, log_path.read_text()[-2000:]
