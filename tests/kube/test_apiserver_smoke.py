"""The real API server works for us: Gateway API objects and core objects round-trip, and the
CRDs' own schema and CEL rules reject an invalid HTTPRoute (support.kube_apiserver)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from support.kube_apiserver import KubeApiServer
from support.kube_objects import GROUP, VERSION, create, gateway, http_listener, http_route

pytestmark = pytest.mark.kube

HOSTNAMES = ("api.example.com",)


@pytest.fixture
def namespace(kube_api: KubeApiServer) -> Iterator[tuple[Any, str]]:
    """A fresh namespace and an admin ApiClient; the namespace is deleted afterwards."""
    api_client = kube_api.client()
    name = f"t-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield api_client, name
    core.delete_namespace(name)
    api_client.close()


def _route(namespace: str) -> dict[str, Any]:
    """HTTPRoute ``api`` on Gateway ``web`` for api.example.com: /api -> echo:80."""
    return http_route(namespace, "api", "/api", "echo", hostnames=HOSTNAMES)


def _invalid_route(namespace: str, path: str, port: int) -> dict[str, Any]:
    """``_route`` with ``path`` as its match's value and ``port`` as its backendRef's."""
    body = _route(namespace)
    rule = body["spec"]["rules"][0]
    rule["matches"][0]["path"]["value"] = path
    rule["backendRefs"][0]["port"] = port
    return body


def test_gateway_route_service_and_endpointslice_round_trip(namespace: tuple[Any, str]) -> None:
    """Objects created through the kubernetes client read back as written, with defaults."""
    api_client, ns = namespace
    custom = client.CustomObjectsApi(api_client)
    create(api_client, gateway(ns, "gateway-xds", http_listener(8080)))
    create(api_client, _route(ns))
    client.CoreV1Api(api_client).create_namespaced_service(
        ns,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="echo"),
            spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80, target_port=8080)]),
        ),
    )
    client.DiscoveryV1Api(api_client).create_namespaced_endpoint_slice(
        ns,
        client.V1EndpointSlice(
            metadata=client.V1ObjectMeta(
                name="echo-1", labels={"kubernetes.io/service-name": "echo"}
            ),
            address_type="IPv4",
            # The API server refuses loopback endpoint addresses (127.0.0.0/8): TEST-NET-1.
            endpoints=[client.V1Endpoint(addresses=["192.0.2.10"])],
            ports=[client.DiscoveryV1EndpointPort(name="", port=8080, protocol="TCP")],
        ),
    )

    web: Any = custom.get_namespaced_custom_object(GROUP, VERSION, ns, "gateways", "web")
    route: Any = custom.get_namespaced_custom_object(GROUP, VERSION, ns, "httproutes", "api")
    service: Any = client.CoreV1Api(api_client).read_namespaced_service("echo", ns)
    slices: Any = client.DiscoveryV1Api(api_client).list_namespaced_endpoint_slice(
        ns, label_selector="kubernetes.io/service-name=echo"
    )

    assert web["spec"]["listeners"][0]["port"] == 8080
    # The CRD's schema defaults apply: a backendRef gets weight 1, a parentRef its group/kind.
    backend = route["spec"]["rules"][0]["backendRefs"][0]
    assert (backend["name"], backend["port"], backend["weight"]) == ("echo", 80, 1)
    assert route["spec"]["parentRefs"][0]["kind"] == "Gateway"
    assert service.spec.cluster_ip.startswith("10.96.0.")
    assert [e.addresses for s in slices.items for e in s.endpoints] == [["192.0.2.10"]]


@pytest.mark.parametrize(
    ("path", "port", "expected"),
    [
        ("api", 80, "value must be an absolute path and start with '/'"),
        ("/api", 70000, "should be less than or equal to 65535"),
    ],
    ids=["cel-rule", "openapi-schema"],
)
def test_invalid_httproute_is_rejected_by_the_crd(
    namespace: tuple[Any, str], path: str, port: int, expected: str
) -> None:
    """The API server itself refuses an HTTPRoute that breaks the CRD's CEL rule or schema."""
    api_client, ns = namespace
    custom = client.CustomObjectsApi(api_client)
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, ns, "httproutes", _invalid_route(ns, path, port)
        )
    assert caught.value.status == 422
    assert expected in str(caught.value.body)
