"""Fixtures of the ``kube`` suite: one real API server (etcd + kube-apiserver) per session.

The suite is opt-in so the quick tests stay quick: its tests run only when the marker
expression names it (``pytest -m kube``, ``make kube``) and are skipped otherwise. The first
run builds kube-apiserver, etcd and kustomize from their pinned Go modules (README.md here);
later runs take them from the cache.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.kube_apiserver import KubeApiServer


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "kube" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="kube suite: run it with `pytest -m kube` (make kube)")
    for item in items:
        if item.get_closest_marker("kube") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def kube_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApiServer]:
    """A running API server with the standard-channel Gateway API CRDs installed."""
    with KubeApiServer(tmp_path_factory.mktemp("kube")) as api:
        api.install_gateway_api_crds("standard")
        yield api
