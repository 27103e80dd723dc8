"""The kustomize built from its Go module renders a kustomization: the pinned Gateway API
release's own config/crd, the same way the deploy manifests will be rendered."""

from __future__ import annotations

import subprocess

import pytest
import yaml
from support.kube_binaries import KUSTOMIZE, ensure_binary, gateway_api_crds

pytestmark = pytest.mark.kube


def test_kustomize_renders_the_gateway_api_crds() -> None:
    """`kustomize build config/crd` yields one CRD per standard-channel file, all v1.6."""
    standard = gateway_api_crds("standard")
    rendered = subprocess.run(
        [str(ensure_binary(KUSTOMIZE)), "build", str(standard[0].parent.parent)],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    documents = [d for d in yaml.safe_load_all(rendered) if d]
    crds = [d for d in documents if d["kind"] == "CustomResourceDefinition"]
    assert len(crds) == len(standard)
    versions = {
        d["metadata"]["annotations"]["gateway.networking.k8s.io/bundle-version"] for d in crds
    }
    assert versions == {"v1.6.3"}
