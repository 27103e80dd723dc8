"""deploy/rbac.yaml grants exactly what the code calls, and a real API server enforces it.

The expected rules come from the code's own constants, so they cannot drift: the provider's
kind table (watcher/kube_kinds.py: list + watch), the status writer's (get the object, update
its status subresource) and the leader elector's (Lease verbs, in the deploy namespace only).
The ServiceAccount's own token (TokenRequest API) may do exactly that and nothing more, and
`xdsctl serve --kubernetes` run as the Deployment runs it (its args, POD_NAME and POD_NAMESPACE)
becomes ready, writes status and holds its Lease under that token without one refusal."""

from __future__ import annotations

import json
import os
import re
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
from support.http import free_port, get
from support.kube_apiserver import KubeApiServer
from support.kube_deploy import (
    apply,
    find,
    render_deploy,
    service_account_token,
    token_client,
    token_kubeconfig,
)
from support.kube_objects import (
    GROUP,
    create,
    create_gateway_class,
    create_namespace,
    gateway,
    http_listener,
)
from support.wait import wait_until

from watcher.kube_kinds import SECRET, WATCHED
from xds_server import leader, replica_reports, status_writer

pytestmark = pytest.mark.kube

NAMESPACE, ACCOUNT = "gateway-xds", "controlplane"
RBAC_KINDS = (
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
)

READ_VERBS = ("list", "watch")  # what watcher.kube_watch does with every kind it watches

Permission = tuple[str, str, str, str]  # (namespace or "" for cluster-wide, group, resource, verb)


def provider_reads() -> frozenset[tuple[str, str]]:
    """(group, plural) of every collection the provider lists and watches: its own table."""
    return frozenset((kind.group, kind.plural) for kind in (*WATCHED, SECRET))


def expected_permissions() -> set[Permission]:
    """What the provider, the status writer, the leader elector and the replica reports call,
    from their constants."""
    plurals = status_writer.STATUS_PLURALS
    reads = {("", g, r, v) for g, r in provider_reads() for v in READ_VERBS}
    objects = {("", GROUP, r, v) for r in plurals for v in status_writer.OBJECT_VERBS}
    status = {("", GROUP, f"{r}/status", v) for r in plurals for v in status_writer.STATUS_VERBS}
    lease_verbs = (*leader.LEASE_VERBS, *replica_reports.REPORT_VERBS)
    leases = {(NAMESPACE, "coordination.k8s.io", "leases", v) for v in lease_verbs}
    return reads | objects | status | leases


def test_status_writer_writes_only_watched_kinds() -> None:
    """Every plural the writer writes is one the provider watches in the Gateway API group."""
    assert set(status_writer.STATUS_PLURALS) <= {r for g, r in provider_reads() if g == GROUP}
    assert "patch" not in (*status_writer.OBJECT_VERBS, *status_writer.STATUS_VERBS)


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
    namespace = create_namespace(admin, "rbac")
    create(admin, gateway(namespace, "rbac-test", http_listener(8080)))
    yield Cluster(admin, account, token, namespace)
    account.close()
    for name in ("gateway-xds-controlplane",):
        client.RbacAuthorizationV1Api(admin).delete_cluster_role_binding(name)
        client.RbacAuthorizationV1Api(admin).delete_cluster_role(name)
    admin.close()


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


def test_account_may_get_a_gateway_and_update_its_status(cluster: Cluster) -> None:
    """What the status writer does: GET the object, PUT its status with that resourceVersion."""
    condition = {
        "type": "Accepted", "status": "True", "reason": "Accepted", "message": "ok",
        "observedGeneration": 1, "lastTransitionTime": "2026-01-01T00:00:00Z",
    }  # fmt: skip
    custom = client.CustomObjectsApi(cluster.account)
    live: Any = custom.get_namespaced_custom_object(
        GROUP, "v1", cluster.namespace, "gateways", "web"
    )
    live["status"] = {"conditions": [condition]}
    updated: Any = custom.replace_namespaced_custom_object_status(
        GROUP, "v1", cluster.namespace, "gateways", "web", live
    )
    assert updated["status"]["conditions"] == [condition]


def test_account_may_hold_a_lease_in_its_namespace(cluster: Cluster) -> None:
    """create, get, update and list of coordination.k8s.io Leases in gateway-xds succeed."""
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
    listed: Any = leases.list_namespaced_lease(NAMESPACE)
    assert name in {item.metadata.name for item in listed.items}


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
    "patch-gateway-status": lambda c: _custom(c).patch_namespaced_custom_object_status(
        GROUP, "v1", c.namespace, "gateways", "web", {"status": {"conditions": []}}),
    "get-referencegrant": lambda c: _custom(c).get_namespaced_custom_object(
        GROUP, "v1beta1", c.namespace, "referencegrants", "x"),
    "get-secret": lambda c: _core(c).read_namespaced_secret("x", c.namespace),
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
    """Writes other than status updates and Leases, gets other than of the status writer's
    kinds, and reads of unwatched kinds are refused (403)."""
    with pytest.raises(ApiException) as caught:
        attempt(cluster)
    assert caught.value.status == 403, caught.value.body


def _serve_as_deployed(
    kubeconfig: Path, xds_address: str, admin_address: str
) -> tuple[list[str], dict[str, str]]:
    """The Deployment's own `xdsctl` args (addresses made local, a kubeconfig for the token
    instead of in-cluster config) and the environment its downward API gives one pod."""
    deployment = find(render_deploy(), "Deployment", "controlplane")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    fields = {
        e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"]
        for e in container.get("env", [])
        if "fieldRef" in e.get("valueFrom", {})
    }
    assert fields == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}
    args = list(container["args"])
    assert args[:2] == ["serve", "--kubernetes"]
    # The Lease's namespace and our identity come from the pod, never from flags: the Role
    # that grants Leases lives in the Deployment's namespace.
    assert not [a for a in args if a.startswith(("--lease", "--no-status", "--kubeconfig"))]
    assert deployment["metadata"]["namespace"] == NAMESPACE
    args[args.index("--xds-address") + 1] = xds_address
    args[args.index("--admin-address") + 1] = admin_address
    pod = {
        "metadata.name": f"controlplane-{uuid.uuid4().hex[:10]}-{uuid.uuid4().hex[:5]}",
        "metadata.namespace": deployment["metadata"]["namespace"],
    }
    command = [sys.executable, "-m", "xds_server.cli", *args, "--kubeconfig", str(kubeconfig)]
    return command, {name: pod[path] for name, path in fields.items()}


def _condition(status: Any, kind: str) -> Any:
    found = [c for c in (status or {}).get("conditions", []) if c.get("type") == kind]
    return found[0] if found else None


def test_controlplane_runs_under_exactly_these_rules(
    kube_api: KubeApiServer, cluster: Cluster, tmp_path: Path
) -> None:
    """`xdsctl serve --kubernetes`, run as the Deployment runs it with the account's token,
    syncs, becomes ready, writes the status it translated (GatewayClass and Gateway), holds
    the Lease in the deploy namespace as its pod, releases it on a clean stop, and is never
    refused by the API server."""
    class_name = f"rbac-{uuid.uuid4().hex[:8]}"
    custom = client.CustomObjectsApi(cluster.admin)
    leases = client.CoordinationV1Api(cluster.admin)
    create_gateway_class(cluster.admin, class_name)
    namespace = create_namespace(cluster.admin, "rbac-serve")
    create(cluster.admin, gateway(namespace, class_name, http_listener(8080)))
    kubeconfig = token_kubeconfig(
        tmp_path / "kubeconfig", kube_api.url, kube_api.pki / "ca.crt", cluster.token
    )
    admin_url = f"http://127.0.0.1:{free_port()}"
    log_path = tmp_path / "serve.log"
    command, pod_env = _serve_as_deployed(
        kubeconfig, f"127.0.0.1:{free_port()}", admin_url.removeprefix("http://")
    )
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **pod_env}
        )
    ours: dict[str, Any] = {}
    try:

        def status_written() -> bool:
            """What the server translated for our Gateway and class is what the API server
            holds (times aside), Accepted and Programmed; only the account's token wrote it."""
            assert process.poll() is None, log_path.read_text()
            if get(f"{admin_url}/readyz", timeout=2).status != 200:
                return False
            served = json.loads(get(f"{admin_url}/api/status").body)
            wanted = {("Gateway", namespace, "web"), ("GatewayClass", "", class_name)}
            for entry in served:
                metadata = entry["metadata"]
                if (entry["kind"], metadata.get("namespace", ""), metadata["name"]) in wanted:
                    ours[entry["kind"]] = entry["status"]
            if set(ours) != {"Gateway", "GatewayClass"}:
                return False
            gateway = custom.get_namespaced_custom_object(GROUP, "v1", namespace, "gateways", "web")
            gateway_class = custom.get_cluster_custom_object(
                GROUP, "v1", "gatewayclasses", class_name
            )
            return bool(
                status_writer.without_times(gateway.get("status"))
                == status_writer.without_times(ours["Gateway"])
                and status_writer.without_times(gateway_class.get("status", {}).get("conditions"))
                == status_writer.without_times(ours["GatewayClass"].get("conditions"))
            )

        wait_until(status_written, timeout=30, ignore=(OSError,), message=log_path.read_text)
        for kind, condition_type in (("Gateway", "Programmed"), ("Gateway", "Accepted"),
                             ("GatewayClass", "Accepted")):  # fmt: skip
            condition = _condition(ours[kind], condition_type)
            assert condition is not None, (kind, ours[kind])
            assert condition["status"] == "True", (kind, ours[kind])
        lease: Any = leases.read_namespaced_lease(leader.DEFAULT_LEASE_NAME, NAMESPACE)
        assert lease.spec.holder_identity.startswith(f"{pod_env['POD_NAME']}_"), lease.spec
    finally:
        process.terminate()
        process.wait(timeout=20)
        custom.delete_cluster_custom_object(GROUP, "v1", "gatewayclasses", class_name)
    log_text = log_path.read_text()
    assert process.returncode == 0, log_text[-2000:]
    # A refusal is a 403 status code (not three digits inside a random name) or "forbidden".
    assert not re.search(r"(?<![0-9a-z])403(?![0-9a-z])", log_text), log_text[-2000:]
    assert "forbidden" not in log_text.lower(), log_text[-2000:]
    assert '"event": "status.written"' in log_text, log_text[-2000:]
    # A clean stop releases the Lease: another replica takes over without waiting for it.
    released: Any = leases.read_namespaced_lease(leader.DEFAULT_LEASE_NAME, NAMESPACE)
    assert not released.spec.holder_identity, log_text[-2000:]
