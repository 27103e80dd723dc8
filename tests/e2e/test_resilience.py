"""Changes under live traffic, and a control plane that crashes and comes back."""

from __future__ import annotations

import textwrap
import threading
from collections import Counter
from collections.abc import Iterator

import pytest
from support.stack import Stack
from support.traffic import Traffic
from support.wait import wait_until

pytestmark = pytest.mark.e2e

MAX_REQUESTS = 20_000  # bounds the traffic loop whatever happens


def single_route(backend: str, path: str = "/live") -> str:
    return f"""\
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {{name: live, namespace: default}}
        spec:
          parentRefs: [{{name: gw}}]
          rules:
            - matches: [{{path: {{type: PathPrefix, value: {path}}}}}]
              backendRefs: [{{name: {backend}, port: 80}}]
        """


@pytest.fixture
def traffic(routes: Stack) -> Iterator[Traffic]:
    routes.write("live.yaml", textwrap.dedent(single_route("echo-a")))
    routes.wait_for("/live", "echo-a")
    loop = Traffic(routes.url + "/live", max_requests=MAX_REQUESTS)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.stop.set()
        thread.join(30)


def test_backend_changes_under_traffic_drop_nothing(routes: Stack, traffic: Traffic) -> None:
    """Moving a route between backends (new clusters each time) fails no request."""
    for backend in ("echo-b", "echo-c", "echo-a", "echo-c", "echo-b"):
        before = traffic.answered[backend]
        routes.write("live.yaml", single_route(backend))
        routes.wait_for("/live", backend)
        wait_until(lambda b=backend, n=before: traffic.answered[b] > n + 20, 15)
    traffic.stop.set()
    assert traffic.failures == []
    assert set(traffic.answered) == {"echo-a", "echo-b", "echo-c"}
    assert sum(traffic.answered.values()) > 100


def test_control_plane_crash_keeps_envoy_serving_and_resyncs(routes: Stack) -> None:
    """With the control plane killed Envoy serves its last config; restarted, it resyncs."""
    routes.write("live.yaml", single_route("echo-a"))
    routes.wait_for("/live", "echo-a")
    routes.plane.kill()
    answers = Counter(routes.service_of("/live") for _ in range(50))
    assert answers == Counter({"echo-a": 50})
    routes.write("live.yaml", single_route("echo-b"))  # written while nobody watches
    routes.plane.start()
    routes.wait_for("/live", "echo-b", timeout=45)
    routes.write("live.yaml", single_route("echo-c"))
    routes.wait_for("/live", "echo-c")
