"""`xdsctl serve --kubernetes --kubeconfig PATH` against the real API server: readiness waits
for the first complete sync, then it translates what it watches (admin /api/status)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from support.http import get
from support.kube_apiserver import KubeApiServer
from support.kube_objects import (
    GROUP,
    VERSION,
    create,
    create_gateway_class,
    create_namespace,
    delete_quietly,
    gateway,
    http_listener,
)
from support.kube_serve import ServeProcess
from support.tcp_relay import TcpRelay
from support.wait import wait_until

pytestmark = pytest.mark.kube


def _gateway_status(plane: ServeProcess, namespace: str) -> dict[str, Any] | None:
    for entry in plane.api("/api/status"):
        meta = entry["metadata"]
        if entry["kind"] == "Gateway" and (meta["namespace"], meta["name"]) == (namespace, "web"):
            return dict(entry["status"])
    return None


def test_serve_kubernetes_ready_only_after_the_first_sync(
    kube_api: KubeApiServer, tmp_path: Path
) -> None:
    """While the API server is out of reach the process is live but not ready; once it can
    list everything it becomes ready, with a Gateway of our class translated."""
    api = kube_api.client()
    class_name = f"serve-{uuid.uuid4().hex[:8]}"
    namespace = create_namespace(api, "s")
    create_gateway_class(api, class_name)
    create(api, gateway(namespace, class_name, http_listener(8080)))
    with TcpRelay(("127.0.0.1", kube_api.port)) as relay:
        relay.cut()
        kubeconfig = kube_api.kubeconfig_via(relay.port, tmp_path / "relayed.yaml")
        plane = ServeProcess(kubeconfig, tmp_path / "serve.log").start()
        try:
            wait_until(
                lambda: plane.alive() and get(f"{plane.admin}/healthz", timeout=2).status == 200,
                timeout=30, ignore=(OSError,), message=plane.log_text,
            )  # fmt: skip
            wait_until(lambda: relay.refused >= 3, timeout=30, message="the provider retried")
            assert plane.readyz() == 503
            assert plane.api("/api/status") == []

            relay.restore()
            plane.wait_ready()
            status = _gateway_status(plane, namespace)
            assert status is not None, plane.api("/api/status")  # ready = translated
            conditions = {c["type"]: c["status"] for c in status["conditions"]}
            assert conditions["Accepted"] == "True", status
        finally:
            code = plane.stop()
            custom = client.CustomObjectsApi(api)
            delete_quietly(
                lambda: custom.delete_cluster_custom_object(
                    GROUP, VERSION, "gatewayclasses", class_name
                ),
                lambda: client.CoreV1Api(api).delete_namespace(namespace),
            )
            api.close()
    assert code == 0, plane.log_text()
