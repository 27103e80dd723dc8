"""The deploy/ manifests as the tests see them: rendered by the pinned kustomize, applied to a
real API server with server-side apply, and a ServiceAccount's token turned into a client.

Who calls it: tests/kube/test_deploy.py and tests/kube/test_deploy_rbac.py.

    objects = render_deploy()                          # `kustomize build deploy/`, parsed
    apply(api_client, objects, dry_run=True)           # the server's schema check, nothing stored
    token = service_account_token(api_client, "gateway-xds", "controlplane")

What it must not do: install anything in the cluster unless asked (``dry_run=False``), or
use a kustomize other than the one built from its Go module (support.kube_binaries).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from .kube_binaries import KUSTOMIZE, ensure_binary

__all__ = [
    "DEPLOY",
    "FIELD_MANAGER",
    "apply",
    "find",
    "render_deploy",
    "service_account_token",
    "token_client",
    "token_kubeconfig",
]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
FIELD_MANAGER = "gateway-xds-tests"


def render_deploy(directory: Path = DEPLOY) -> list[dict[str, Any]]:
    """Every object `kustomize build directory` prints, in its order."""
    rendered = subprocess.run(
        [str(ensure_binary(KUSTOMIZE)), "build", str(directory)],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    return [document for document in yaml.safe_load_all(rendered) if document]


def find(objects: Iterable[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The one object of ``kind`` named ``name`` (ConfigMaps: the name before kustomize's hash)."""
    hashed = kind == "ConfigMap"
    found = [
        o
        for o in objects
        if o["kind"] == kind
        and (o["metadata"]["name"].rpartition("-")[0] if hashed else o["metadata"]["name"]) == name
    ]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def apply(api_client: Any, objects: Iterable[dict[str, Any]], *, dry_run: bool) -> list[Any]:
    """Server-side apply each object with strict field validation; ``dry_run`` stores nothing.

    Strict validation makes an unknown or misspelt field an error (create's default only
    warns and drops it), so a dry run is the API server's own schema check of the manifests.
    """
    from kubernetes.dynamic import DynamicClient

    new_dynamic: Any = DynamicClient  # untyped in the client library
    dynamic = new_dynamic(api_client)
    results = []
    for body in objects:
        resource = dynamic.resources.get(api_version=body["apiVersion"], kind=body["kind"])
        extra = {"dry_run": "All"} if dry_run else {}
        results.append(
            dynamic.server_side_apply(
                resource,
                body=body,
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
                field_validation="Strict",
                **extra,
            )
        )
    return results


def service_account_token(api_client: Any, namespace: str, name: str) -> str:
    """A token for ServiceAccount ``namespace/name`` from the TokenRequest API (one hour)."""
    from kubernetes import client

    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(
            audiences=["https://kubernetes.default.svc"], expiration_seconds=3600
        )
    )
    answer: Any = client.CoreV1Api(api_client).create_namespaced_service_account_token(
        name, namespace, request
    )
    return str(answer.status.token)


def token_client(server: str, ca_file: Path, token: str) -> Any:
    """A ``kubernetes.client.ApiClient`` that authenticates with a bearer ``token``."""
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = server
    configuration.ssl_ca_cert = str(ca_file)
    configuration.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(configuration)


def token_kubeconfig(path: Path, server: str, ca_file: Path, token: str) -> Path:
    """Write a kubeconfig that authenticates with ``token`` (what a pod's config holds)."""
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "test", "cluster": {"server": server, "certificate-authority": str(ca_file)}}
        ],
        "users": [{"name": "controlplane", "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "controlplane"}}],
        "current-context": "test",
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path
