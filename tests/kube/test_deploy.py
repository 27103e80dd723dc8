"""deploy/ renders with the kustomize built from its Go module, every object passes the real
API server's schema check (server-side apply, dry run, strict fields), the control plane
Deployment is hardened as promised, and Envoy's bootstrap is exactly `xdsctl bootstrap`."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from support.envoy import envoy_binary
from support.kube_apiserver import KubeApiServer
from support.kube_deploy import DEPLOY, apply, find, render_deploy

from xds_server.cli import main

pytestmark = pytest.mark.kube

NAMESPACE = "gateway-xds"
GATEWAY = f"{NAMESPACE}/edge"
XDS_HOST = f"controlplane.{NAMESPACE}.svc.cluster.local"
BOOTSTRAP = DEPLOY / "envoy" / "bootstrap.yaml"


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return render_deploy()


@pytest.fixture(scope="module")
def installed_namespace(kube_api: KubeApiServer, objects: list[dict[str, Any]]) -> Iterator[Any]:
    """The deploy's Namespace, created for real (namespaced dry runs need it); an admin client."""
    api_client = kube_api.client()
    apply(api_client, [find(objects, "Namespace", NAMESPACE)], dry_run=False)
    yield api_client
    api_client.close()


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def test_kustomize_renders_every_promised_object(objects: list[dict[str, Any]]) -> None:
    """Namespace, RBAC, control plane, its two Services, GatewayClass, Envoy, all in place."""
    names = {
        (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in objects
    }
    expected = {
        ("Namespace", "", NAMESPACE),
        ("ServiceAccount", NAMESPACE, "controlplane"),
        ("ClusterRole", "", "gateway-xds-controlplane"),
        ("ClusterRoleBinding", "", "gateway-xds-controlplane"),
        ("Role", NAMESPACE, "gateway-xds-leader-election"),
        ("RoleBinding", NAMESPACE, "gateway-xds-leader-election"),
        ("Deployment", NAMESPACE, "controlplane"),
        ("PodDisruptionBudget", NAMESPACE, "controlplane"),
        ("Service", NAMESPACE, "controlplane"),
        ("Service", NAMESPACE, "controlplane-metrics"),
        ("GatewayClass", "", "gateway-xds"),
        ("Gateway", NAMESPACE, "edge"),
        ("Deployment", NAMESPACE, "envoy"),
        ("Service", NAMESPACE, "envoy"),
    }
    assert expected <= names
    [config_map] = [n for n in names if n[0] == "ConfigMap"]
    assert config_map[2].startswith("envoy-bootstrap-")  # hashed: a new bootstrap rolls Envoy
    assert len(names) == len(expected) + 1 == len(objects)
    assert all(
        o["metadata"]["labels"]["app.kubernetes.io/part-of"] == "gateway-xds" for o in objects
    )
    gateway_class = find(objects, "GatewayClass", "gateway-xds")
    assert gateway_class["spec"]["controllerName"] == "gateway-xds.io/gatewayclass-controller"


def test_every_object_passes_the_api_servers_schema_check(
    installed_namespace: Any, objects: list[dict[str, Any]]
) -> None:
    """Server-side apply, dry run, strict field validation: the server accepts every object."""
    results = apply(installed_namespace, objects, dry_run=True)
    assert [(r.kind, r.metadata.name) for r in results] == [
        (o["kind"], o["metadata"]["name"]) for o in objects
    ]
    # Dry run: nothing but the Namespace was stored.
    apps = client.AppsV1Api(installed_namespace)
    assert apps.list_namespaced_deployment(NAMESPACE).items == []


def test_schema_check_would_catch_a_misspelt_field(
    installed_namespace: Any, objects: list[dict[str, Any]]
) -> None:
    """The check has teeth: an unknown field in the Deployment is refused, not dropped."""
    from kubernetes.client.exceptions import ApiException

    broken = yaml.safe_load(yaml.safe_dump(find(objects, "Deployment", "controlplane")))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(ApiException) as caught:
        apply(installed_namespace, [broken], dry_run=True)
    # Server-side apply answers an undeclared field with 500 (the typed patch cannot be built).
    assert "readinessProbes: field not declared in schema" in str(caught.value.body)


def test_controlplane_deployment_is_highly_available_probed_and_hardened(
    objects: list[dict[str, Any]],
) -> None:
    """2 replicas; /healthz and /readyz on the admin port; limits; non-root, read-only root."""
    deployment = find(objects, "Deployment", "controlplane")
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    assert deployment["spec"]["replicas"] == 2
    assert pod["serviceAccountName"] == "controlplane"
    assert container["image"] == "gateway-xds:dev"
    assert container["args"] == [
        "serve", "--kubernetes",
        "--xds-address", "0.0.0.0:18000", "--admin-address", "0.0.0.0:19000",
    ]  # fmt: skip
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"xds": 18000, "admin": 19000}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    resources = container["resources"]
    assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's USER
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}


def test_services_expose_xds_and_metrics_of_the_controlplane(objects: list[dict[str, Any]]) -> None:
    """`controlplane` carries xDS (18000), `controlplane-metrics` the admin port (19000)."""
    selector = find(objects, "Deployment", "controlplane")["spec"]["selector"]["matchLabels"]
    for name, port, target in (
        ("controlplane", 18000, "xds"),
        ("controlplane-metrics", 19000, "admin"),
    ):
        service = find(objects, "Service", name)
        assert service["spec"]["selector"] == selector
        [entry] = service["spec"]["ports"]
        assert (entry["port"], entry["targetPort"]) == (port, target)


def test_envoy_bootstrap_is_what_xdsctl_bootstrap_prints(
    capsys: pytest.CaptureFixture[str], objects: list[dict[str, Any]]
) -> None:
    """The ConfigMap holds `xdsctl bootstrap` output for Gateway edge and the xDS Service."""
    command = [
        "bootstrap",
        *("--gateway", GATEWAY),
        *("--xds-address", f"{XDS_HOST}:18000"),
        *("--admin-port", "19901"),
        *("--admin-address", "0.0.0.0"),
    ]
    assert main(command) == 0
    printed = capsys.readouterr().out
    assert BOOTSTRAP.read_text() == printed, (
        f"regenerate: xdsctl {shlex.join(command)} > {BOOTSTRAP.relative_to(DEPLOY.parent)}"
    )
    config_map = find(objects, "ConfigMap", "envoy-bootstrap")
    assert config_map["data"] == {"bootstrap.yaml": printed}
    gateway = find(objects, "Gateway", "edge")
    assert f"{NAMESPACE}/{gateway['metadata']['name']}" == GATEWAY
    xds = find(objects, "Service", "controlplane")
    assert XDS_HOST.startswith(f"{xds['metadata']['name']}.{xds['metadata']['namespace']}.svc.")


def test_envoy_deployment_mounts_the_bootstrap_and_real_envoy_accepts_it(
    objects: list[dict[str, Any]], tmp_path: Path
) -> None:
    """Envoy's own args with the mounted bootstrap pass `envoy --mode validate`; hardened too."""
    deployment = find(objects, "Deployment", "envoy")
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    config_map = find(objects, "ConfigMap", "envoy-bootstrap")
    volumes = {v["name"]: v for v in pod["volumes"]}
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/etc/envoy")
    assert volumes[mount["name"]]["configMap"]["name"] == config_map["metadata"]["name"]
    args = list(container["args"])
    assert args[args.index("-c") + 1] == "/etc/envoy/bootstrap.yaml"
    bootstrap = tmp_path / "bootstrap.yaml"
    bootstrap.write_text(config_map["data"]["bootstrap.yaml"])
    args[args.index("-c") + 1] = str(bootstrap)
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", *args, "--log-level", "warning"],
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["readinessProbe"]["httpGet"]["port"] == "admin"
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "http": find(objects, "Gateway", "edge")["spec"]["listeners"][0]["port"],
        "admin": 19901,
    }
