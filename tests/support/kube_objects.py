"""Objects the kube tests create in the real API server, as plain dicts, and their creators.

Who uses it: tests/kube. Bodies are what a user would ``kubectl apply``; the creators go
through the official client's generic APIs (``CustomObjectsApi`` for the Gateway API kinds).

    namespace = create_namespace(api, "rt")            # a fresh namespace per test
    create_gateway_class(api, class_name)              # of our controller
    create(api, gateway(namespace, class_name, http_listener(8080)))
    create(api, http_route(namespace, "app", "/a", "echo"))
    delete_quietly(lambda: ...)                         # cleanup that tolerates 404
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from kubernetes import client

from translator import CONTROLLER_NAME

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "create",
    "create_gateway_class",
    "create_namespace",
    "delete_quietly",
    "endpoint_slice",
    "gateway",
    "get",
    "http_listener",
    "http_route",
    "service",
]

GROUP, VERSION = "gateway.networking.k8s.io", "v1"
API_VERSION = f"{GROUP}/{VERSION}"
_PLURALS = {"Gateway": "gateways", "HTTPRoute": "httproutes", "GatewayClass": "gatewayclasses"}


def create_namespace(api: Any, prefix: str) -> str:
    """A new namespace ``<prefix>-<random>``; its name."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name))
    )
    return name


def create_gateway_class(api: Any, name: str, controller: str = CONTROLLER_NAME) -> None:
    create(api, {"apiVersion": API_VERSION, "kind": "GatewayClass",
                 "metadata": {"name": name}, "spec": {"controllerName": controller}})  # fmt: skip


def http_listener(port: int, name: str = "http") -> dict[str, Any]:
    return {"name": name, "protocol": "HTTP", "port": port}


def gateway(
    namespace: str, class_name: str, *listeners: dict[str, Any], name: str = "web"
) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"gatewayClassName": class_name, "listeners": list(listeners)},
    }


def http_route(
    namespace: str,
    name: str,
    path: str | None,
    service_name: str,
    *,
    parent: str = "web",
    section: str | None = None,
    hostnames: Sequence[str] = (),
) -> dict[str, Any]:
    """An HTTPRoute attached to Gateway ``parent`` (its listener ``section``, if given):
    ``path`` (prefix; None: no matches, every path) -> ``service_name``:80."""
    parent_ref = {"name": parent} if section is None else {"name": parent, "sectionName": section}
    rule: dict[str, Any] = {"backendRefs": [{"name": service_name, "port": 80}]}
    if path is not None:
        rule["matches"] = [{"path": {"type": "PathPrefix", "value": path}}]
    spec: dict[str, Any] = {"parentRefs": [parent_ref], "rules": [rule]}
    if hostnames:
        spec["hostnames"] = list(hostnames)
    return {
        "apiVersion": API_VERSION,
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def service(name: str, target_port: int) -> dict[str, Any]:
    """A Service with port 80 (``http``) to ``target_port``."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": target_port}]},
    }


def endpoint_slice(service_name: str, address: str, port: int) -> dict[str, Any]:
    """The EndpointSlice a controller would make for ``service_name`` (there is none here).
    The API server refuses loopback addresses (tests/kube/README.md)."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service_name}-1",
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
    }


def create(api: Any, body: dict[str, Any], namespace: str = "") -> dict[str, Any]:
    """Create ``body`` (a Gateway API kind, Service or EndpointSlice); the stored object."""
    kind = body["kind"]
    namespace = namespace or body["metadata"].get("namespace", "")
    created: Any
    if kind == "Service":
        created = client.CoreV1Api(api).create_namespaced_service(namespace, body)
    elif kind == "EndpointSlice":
        created = client.DiscoveryV1Api(api).create_namespaced_endpoint_slice(namespace, body)
    elif kind == "GatewayClass":
        created = client.CustomObjectsApi(api).create_cluster_custom_object(
            GROUP, VERSION, _PLURALS[kind], body
        )
    else:
        created = client.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, VERSION, namespace, _PLURALS[kind], body
        )
    return created if isinstance(created, dict) else api.sanitize_for_serialization(created)


def get(api: Any, namespace: str, plural: str, name: str) -> dict[str, Any]:
    """A namespaced Gateway API object as the server has it."""
    body: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, name
    )
    return body


def delete_quietly(*deletions: Callable[[], Any]) -> None:
    """Run each deletion; a 404 (never created: the test failed before) is fine."""
    for delete in deletions:
        try:
            delete()
        except client.ApiException as error:
            if error.status != 404:
                raise
