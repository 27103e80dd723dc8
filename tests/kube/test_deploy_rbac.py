"""deploy/rbac.yaml grants exactly what the Kubernetes provider calls, and a real API server
enforces it: the ServiceAccount's own token (TokenRequest API) may list and watch every watched
kind, patch status and hold a Lease, and nothing more; `xdsctl serve --kubernetes` runs and
becomes ready under that token."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from support.http import get
from support.kube_apiserver import KubeApiServer
from support.kube_deploy import (
    apply,
    find,
    render_deploy,
    service_account_token,
    token_client,
    token_kubeconfig,
)
from support.wait import wait_until

from watcher.kube_kinds import SECRET, WATCHED

pytestmark = pytest.mark.kube

NAMESPACE, ACCOUNT = "gateway-xds", "controlplane"
GROUP = "gateway.networking.k8s.io"
CONTROLLER = "gateway-xds.io/gatewayclass-controller"
RBAC_KINDS = (
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
)

# The kinds whose status subresource the status writer patches (every kind with a status of
# ours: ReferenceGrant has none). Must name what the status writer calls, once it exists.
STATUS_KINDS = ("gatewayclasses", "gateways", "httproutes", "grpcroutes", "tlsroutes",
                "tcproutes", "udproutes")  # fmt: skip
STATUS_VERBS = ("patch", "update")
READ_VERBS = ("list", "watch")
LEASE_VERBS = ("get", "create", "update")  # leader election, in NAMESPACE only

Permission = tuple[str, str, str, str]  # (namespace or "" for cluster-wide, group, resource, verb)


def provider_reads() -> frozenset[tuple[str, str]]:
    """(group, plural) of every collection the provider lists and watches: its own table."""
    return frozenset((kind.group, kind.plural) for kind in (*WATCHED, SECRET))


def expected_permissions() -> set[Permission]:
    reads = {("", g, r, v) for g, r in provider_reads() for v in READ_VERBS}
    status = {("", GROUP, f"{r}/status", v) for r in STATUS_KINDS for v in STATUS_VERBS}
    leases = {(NAMESPACE, "coordination.k8s.io", "leases", v) for v in LEASE_VERBS}
    return reads | status | leases


def granted_permissions(objects: list[dict[str, Any]]) -> set[Permission]:
    """Every (scope, group, resource, verb) the rendered Roles bound to our account grant."""
    granted: set[Permission] = set()
    for binding in (o for o in objects if o["kind"] in ("ClusterRoleBinding", "RoleBinding")):
        subjects = {(s["kind"], s.get("namespace"), s["name"]) for s in binding["subjects"]}
        assert subjects == {("ServiceAccount", NAMESPACE, ACCOUNT)}
        role = find(objects, binding["roleRef"]["kind"], binding["roleRef"]["name"])
        scope = binding["metadata"].get("namespace", "")
        for rule in role["rules"]:
            assert set(rule) == {"apiGroups", "resources", "verbs"}, rule  # no resourceNames
            granted.update(
                (scope, g, r, v)
                for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]
            )  # fmt: skip
    return granted


def test_rbac_rules_are_exactly_what_the_provider_calls() -> None:
    """No more, no less: reads of the watched kinds, status writes, Leases in our namespace."""
    granted = granted_permissions(render_deploy())
    expected = expected_permissions()
    assert not any("*" in part for permission in granted for part in permission)
    assert granted - expected == set(), "granted but never called"
    assert expected - granted == set(), "called but not granted"


# --- the same rules enforced by a real API server --------------------------------------------


@dataclass(frozen=True)
class Cluster:
    admin: Any
    account: Any  # an ApiClient with the ServiceAccount's token
    token: str
    namespace: str  # a fresh namespace with a Gateway "web" in it


@pytest.fixture(scope="module")
def cluster(kube_api: KubeApiServer) -> Iterator[Cluster]:
    """The deploy's Namespace, ServiceAccount and RBAC installed for real; a token for it."""
    objects = render_deploy()
    admin = kube_api.client()
    apply(admin, [o for o in objects if o["kind"] in RBAC_KINDS], dry_run=False)
    token = service_account_token(admin, NAMESPACE, ACCOUNT)
    account = token_client(kube_api.url, kube_api.pki / "ca.crt", token)
    namespace = f"rbac-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(admin).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace))
    )
    client.CustomObjectsApi(admin).create_namespaced_custom_object(
        GROUP, "v1", namespace, "gateways", _gateway(namespace, "rbac-test")
    )
    yield Cluster(admin, account, token, namespace)
    account.close()
    for name in ("gateway-xds-controlplane",):
        client.RbacAuthorizationV1Api(admin).delete_cluster_role_binding(name)
        client.RbacAuthorizationV1Api(admin).delete_cluster_role(name)
    admin.close()


def _gateway(namespace: str, class_name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Gateway",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "gatewayClassName": class_name,
            "listeners": [{"name": "http", "protocol": "HTTP", "port": 8080}],
        },
    }


def _collection(group: str, plural: str, namespace: str = "") -> str:
    base = f"/apis/{group}/{_version(group)}" if group else "/api/v1"
    return f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"


def _version(group: str) -> str:
    return "v1"  # every watched group serves v1 on this API server (standard channel v1.6)


def _get(api_client: Any, path: str, query: list[tuple[str, str]] | None = None) -> Any:
    """GET ``path`` with the client's credentials; the open urllib3 response, any status."""
    method, url, headers, _, _ = api_client.param_serialize(
        "GET", path, query_params=query or [], header_params={"Accept": "application/json"},
        auth_settings=["BearerToken"],
    )  # fmt: skip
    return api_client.call_api(method, url, headers, _request_timeout=(5, 10)).response


def _status(api_client: Any, path: str, query: list[tuple[str, str]] | None = None) -> int:
    """The HTTP status of one GET (a watch is opened, its status read, then closed)."""
    response = _get(api_client, path, query)
    status = int(response.status)
    response.close()
    return status


def _namespaced(admin: Any, group: str, plural: str) -> bool | None:
    """Whether discovery lists ``plural`` as namespaced; None when it is not served."""
    response = _get(admin, f"/apis/{group}/{_version(group)}" if group else "/api/v1")
    listing = json.loads(response.read())
    response.release_conn()
    found = [bool(r["namespaced"]) for r in listing["resources"] if r["name"] == plural]
    return found[0] if found else None


def test_account_may_list_and_watch_every_watched_kind(cluster: Cluster) -> None:
    """list and watch, cluster-wide and in one namespace, succeed for every read kind."""
    checked = 0
    for group, plural in sorted(provider_reads()):
        namespaced = _namespaced(cluster.admin, group, plural)
        if namespaced is None:
            continue  # an experimental-channel CRD not installed here (TCPRoute, UDPRoute)
        paths = [_collection(group, plural)]
        if namespaced:
            paths.append(_collection(group, plural, cluster.namespace))
        for path in paths:
            assert _status(cluster.account, path) == 200, path
            watch = [("watch", "true"), ("timeoutSeconds", "5")]
            assert _status(cluster.account, path, watch) == 200, path
            checked += 1
    assert checked >= 15


def test_account_may_patch_a_gateways_status(cluster: Cluster) -> None:
    """The status subresource accepts the account's merge patch; the server validates it."""
    condition = {
        "type": "Accepted", "status": "True", "reason": "Accepted", "message": "ok",
        "observedGeneration": 1, "lastTransitionTime": "2026-01-01T00:00:00Z",
    }  # fmt: skip
    custom = client.CustomObjectsApi(cluster.account)
    patched: Any = custom.patch_namespaced_custom_object_status(
        GROUP, "v1", cluster.namespace, "gateways", "web", {"status": {"conditions": [condition]}}
    )
    assert patched["status"]["conditions"] == [condition]


def test_account_may_hold_a_lease_in_its_namespace(cluster: Cluster) -> None:
    """create, get and update of a coordination.k8s.io Lease in gateway-xds succeed."""
    leases = client.CoordinationV1Api(cluster.account)
    name = f"leader-{uuid.uuid4().hex[:6]}"
    body = client.V1Lease(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1LeaseSpec(holder_identity="replica-a", lease_duration_seconds=15),
    )
    leases.create_namespaced_lease(NAMESPACE, body)
    lease: Any = leases.read_namespaced_lease(name, NAMESPACE)
    lease.spec.holder_identity = "replica-b"
    updated: Any = leases.replace_namespaced_lease(name, NAMESPACE, lease)
    assert updated.spec.holder_identity == "replica-b"


def _custom(c: Cluster) -> Any:
    return client.CustomObjectsApi(c.account)


def _core(c: Cluster) -> Any:
    return client.CoreV1Api(c.account)


def _leases(c: Cluster) -> Any:
    return client.CoordinationV1Api(c.account)


_NEW_LISTENERS = {"spec": {"listeners": [{"name": "http", "protocol": "HTTP", "port": 9090}]}}
_ROUTE = {"apiVersion": f"{GROUP}/v1", "kind": "HTTPRoute", "metadata": {"name": "x"}, "spec": {}}
_X = client.V1ObjectMeta(name="x")

FORBIDDEN: dict[str, Callable[[Cluster], Any]] = {
    "update-gateway-spec": lambda c: _custom(c).patch_namespaced_custom_object(
        GROUP, "v1", c.namespace, "gateways", "web", _NEW_LISTENERS),
    "create-httproute": lambda c: _custom(c).create_namespaced_custom_object(
        GROUP, "v1", c.namespace, "httproutes", _ROUTE),
    "delete-gateway": lambda c: _custom(c).delete_namespaced_custom_object(
        GROUP, "v1", c.namespace, "gateways", "web"),
    "list-pods": lambda c: _core(c).list_pod_for_all_namespaces(),
    "list-configmaps": lambda c: _core(c).list_namespaced_config_map(c.namespace),
    "create-secret": lambda c: _core(c).create_namespaced_secret(
        c.namespace, client.V1Secret(metadata=_X)),
    "patch-service-status": lambda c: _core(c).patch_namespaced_service_status(
        "kubernetes", "default", {"status": {}}),
    "delete-endpointslices": lambda c: client.DiscoveryV1Api(
        c.account).delete_collection_namespaced_endpoint_slice(c.namespace),
    "lease-in-another-namespace": lambda c: _leases(c).create_namespaced_lease(
        c.namespace, client.V1Lease(metadata=_X)),
    "delete-leases": lambda c: _leases(c).delete_collection_namespaced_lease(NAMESPACE),
    "create-event": lambda c: _core(c).create_namespaced_event(
        NAMESPACE, client.CoreV1Event(metadata=_X, involved_object=client.V1ObjectReference())),
}  # fmt: skip


@pytest.mark.parametrize("attempt", list(FORBIDDEN.values()), ids=list(FORBIDDEN))
def test_account_may_do_nothing_else(cluster: Cluster, attempt: Callable[[Cluster], Any]) -> None:
    """Writes other than status and Leases, and reads of unwatched kinds, are refused (403)."""
    with pytest.raises(ApiException) as caught:
        attempt(cluster)
    assert caught.value.status == 403, caught.value.body


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_controlplane_runs_under_exactly_these_rules(
    kube_api: KubeApiServer, cluster: Cluster, tmp_path: Path
) -> None:
    """`xdsctl serve --kubernetes` with the account's token syncs, becomes ready, translates
    a Gateway of its class, and is never refused by the API server."""
    class_name = f"rbac-{uuid.uuid4().hex[:8]}"
    custom = client.CustomObjectsApi(cluster.admin)
    custom.create_cluster_custom_object(GROUP, "v1", "gatewayclasses", {
        "apiVersion": f"{GROUP}/v1", "kind": "GatewayClass",
        "metadata": {"name": class_name}, "spec": {"controllerName": CONTROLLER}})  # fmt: skip
    namespace = f"rbac-serve-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(cluster.admin).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace))
    )
    custom.create_namespaced_custom_object(
        GROUP, "v1", namespace, "gateways", _gateway(namespace, class_name)
    )
    kubeconfig = token_kubeconfig(
        tmp_path / "kubeconfig", kube_api.url, kube_api.pki / "ca.crt", cluster.token
    )
    admin_url = f"http://127.0.0.1:{_free_port()}"
    log_path = tmp_path / "serve.log"
    command = [
        sys.executable, "-m", "xds_server.cli", "serve", "--kubernetes",
        "--kubeconfig", str(kubeconfig), "--xds-address", f"127.0.0.1:{_free_port()}",
        "--admin-address", admin_url.removeprefix("http://"), "--listener-address", "127.0.0.1",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:

        def accepted() -> bool:
            assert process.poll() is None, log_path.read_text()
            if get(f"{admin_url}/readyz", timeout=2).status != 200:
                return False
            return f'"namespace": "{namespace}"' in get(f"{admin_url}/api/status").body.decode()

        wait_until(accepted, timeout=30, ignore=(OSError,), message=log_path.read_text)
    finally:
        process.terminate()
        process.wait(timeout=20)
        custom.delete_cluster_custom_object(GROUP, "v1", "gatewayclasses", class_name)
    log_text = log_path.read_text()
    assert process.returncode == 0, log_text[-2000:]
    assert "403" not in log_text, log_text[-2000:]
    assert "forbidden" not in log_text.lower(), log_text[-2000:]
