"""Zero dropped requests while everything changes, through a real Envoy, SotW and delta.

A bounded loop of requests runs on loopback while the test renames every cluster (routes
point at differently named Services with the same backends), renames every HTTPRoute,
swaps backends (in the routes and in the endpoints), reorders rules, and adds and removes
routes, several times. After each change the test waits until Envoy's own configuration
(admin config_dump) is exactly the expected one: routes by name, prefix and cluster, and
the active clusters, so old clusters are gone too. No request may fail.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
import yaml
from support.stack import Stack, service_objects, start_stack, stop_stack
from support.traffic import Traffic
from support.wait import wait_until

pytestmark = pytest.mark.e2e

MAX_REQUESTS = 50_000  # bounds the traffic loop whatever happens
GENERATIONS = 4  # alias Services echo-a-g0 .. echo-a-g3 (and b, c) for cluster renames
PATHS = ("/a", "/b")  # always routed: the traffic loop uses them

Rules = Sequence[tuple[str, str]]  # (path prefix, Service)
Routes = Mapping[str, Rules]  # HTTPRoute name -> rules


@pytest.fixture(scope="module", params=["sotw", "delta"])
def zero_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A stack per protocol: Envoy's bootstrap uses SotW or delta ADS."""
    protocol = str(request.param)
    running = start_stack(tmp_path_factory.mktemp(protocol), delta=protocol == "delta")
    try:
        yield running
    finally:
        stop_stack(running)


def aliases(stack: Stack, swap: bool = False) -> str:
    """Services echo-X-gN for every backend X and generation N (``swap``: a and b exchanged)."""
    ports = {name: backend.port for name, backend in stack.backends.items()}
    if swap:
        ports["echo-a"], ports["echo-b"] = ports["echo-b"], ports["echo-a"]
    docs: list[dict[str, Any]] = []
    for generation in range(GENERATIONS):
        for name, port in ports.items():
            service_port = {"name": "http", "port": 80, "targetPort": port}
            docs += service_objects(f"{name}-g{generation}", service_port, port)
    return yaml.safe_dump_all(docs)


def http_routes(routes: Routes) -> str:
    docs = [
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "parentRefs": [{"name": "gw"}],
                "rules": [
                    {
                        "matches": [{"path": {"type": "PathPrefix", "value": prefix}}],
                        "backendRefs": [{"name": service, "port": 80}],
                    }
                    for prefix, service in rules
                ],
            },
        }
        for name, rules in routes.items()
    ]
    return yaml.safe_dump_all(docs)


def cluster_of(service: str) -> str:
    return f"service/default/{service}/80"


def expected_routes(routes: Routes) -> set[tuple[str, str, str]]:
    """(route name, prefix, cluster) of every Envoy route the HTTPRoutes make."""
    return {
        (f"httproute/default/{name}/rule/{index}/match/0", prefix, cluster_of(service))
        for name, rules in routes.items()
        for index, (prefix, service) in enumerate(rules)
    }


def envoy_routes(stack: Stack) -> set[tuple[str, str, str]]:
    dump = stack.envoy.admin_json("config_dump?resource=dynamic_route_configs")
    return {
        (route["name"], route["match"]["path_separated_prefix"], route["route"]["cluster"])
        for config in dump["configs"]
        for host in config["route_config"]["virtual_hosts"]
        for route in host["routes"]
    }


def envoy_clusters(stack: Stack) -> set[str]:
    dump = stack.envoy.admin_json("config_dump?resource=dynamic_active_clusters")
    return {entry["cluster"]["name"] for entry in dump["configs"]}


class Changes:
    """Writes route and alias files and waits until Envoy runs exactly what they say."""

    def __init__(self, stack: Stack, traffic: Traffic) -> None:
        self.stack = stack
        self.traffic = traffic
        self.applied: list[str] = []

    def apply(self, what: str, routes: Routes) -> None:
        before = self.traffic.total
        self.stack.write("zero-routes.yaml", http_routes(routes))
        want_routes = expected_routes(routes)
        want_clusters = {cluster_of(s) for rules in routes.values() for _, s in rules}

        def in_effect() -> bool:
            return envoy_routes(self.stack) == want_routes and (
                envoy_clusters(self.stack) == want_clusters
            )

        wait_until(
            in_effect,
            15,
            message=lambda: (
                f"{what}: Envoy runs {sorted(envoy_routes(self.stack))} "
                f"{sorted(envoy_clusters(self.stack))}\n{self.stack.plane.log_tail(10)}"
            ),
        )
        # Traffic went on during the change, and goes on after it.
        wait_until(lambda: self.traffic.total > before + 20, 15)
        self.applied.append(what)


def answered_by(stack: Stack, path: str, service: str) -> None:
    stack.wait_for(path, service)


def test_renames_swaps_reorders_adds_and_removes_drop_no_request(zero_stack: Stack) -> None:
    """Every cluster and route renamed several times, backends swapped, rules reordered,
    routes added and removed, under continuous traffic: zero failed requests."""
    stack = zero_stack
    stack.write("zero-aliases.yaml", aliases(stack))
    first: Routes = {"zd-0": [("/a", "echo-a-g0"), ("/b", "echo-b-g0")]}
    stack.write("zero-routes.yaml", http_routes(first))
    answered_by(stack, "/a", "echo-a")
    answered_by(stack, "/b", "echo-b")
    traffic = Traffic(stack.url, PATHS, MAX_REQUESTS)
    sender = threading.Thread(target=traffic.run, daemon=True)
    sender.start()
    changes = Changes(stack, traffic)
    try:
        changes.apply("rename every cluster", {"zd-0": [("/a", "echo-a-g1"), ("/b", "echo-b-g1")]})
        changes.apply("rename every route", {"zd-1": [("/a", "echo-a-g1"), ("/b", "echo-b-g1")]})
        changes.apply("swap backends", {"zd-1": [("/a", "echo-b-g1"), ("/b", "echo-a-g1")]})
        answered_by(stack, "/a", "echo-b")
        changes.apply("reorder rules", {"zd-1": [("/b", "echo-a-g1"), ("/a", "echo-b-g1")]})
        extra = {"zd-extra": [("/c", "echo-c-g1")]}
        changes.apply("add a route", {"zd-1": [("/b", "echo-a-g1"), ("/a", "echo-b-g1")], **extra})
        answered_by(stack, "/c", "echo-c")
        renamed = {"zd-2": [("/b", "echo-a-g2"), ("/a", "echo-b-g2")]}
        changes.apply(
            "rename every cluster and route again",
            {**renamed, "zd-extra-2": [("/c", "echo-c-g2")]},
        )
        changes.apply("remove a route", renamed)
        answered_by(stack, "/c", 404)
        final = {"zd-3": [("/a", "echo-a-g3"), ("/b", "echo-b-g3")]}
        changes.apply("rename, swap back and reorder at once", final)
        answered_by(stack, "/a", "echo-a")
        stack.write("zero-aliases.yaml", aliases(stack, swap=True))  # endpoints only (EDS)
        answered_by(stack, "/a", "echo-b")
        answered_by(stack, "/b", "echo-a")
        stack.write("zero-aliases.yaml", aliases(stack))
        answered_by(stack, "/a", "echo-a")
        wait_until(lambda: traffic.total > 200, 15)
    finally:
        traffic.stop.set()
        sender.join(30)
        stack.remove("zero-routes.yaml")
        stack.remove("zero-aliases.yaml")
    assert traffic.failures == []
    assert len(changes.applied) == 8
    assert set(traffic.answered) == {"/a echo-a", "/a echo-b", "/b echo-a", "/b echo-b"}
    stats = stack.envoy.stats("init_fetch_timeout|update_rejected")
    assert {k: v for k, v in stats.items() if v} == {}
