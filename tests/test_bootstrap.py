"""Tests of the proxy bootstrap (xds_server.bootstrap) and, end to end, of the Envoy harness."""

from __future__ import annotations

import http.client
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.echo import EchoBackends
from support.envoy import EnvoyError, EnvoyProcess, envoy_binary, static_proxy_bootstrap
from support.http import free_port, get

from xds_server.bootstrap import (
    XDS_CLUSTER,
    default_node_id,
    dump_yaml,
    render_bootstrap,
    split_host_port,
)
from xds_server.cli import main

EXAMPLE = Path(__file__).resolve().parent.parent / "envoy" / "bootstrap-example.yaml"


def xds_cluster(bootstrap: dict[str, Any]) -> dict[str, Any]:
    [cluster] = bootstrap["static_resources"]["clusters"]
    assert cluster["name"] == XDS_CLUSTER
    return dict(cluster)


def test_node_names_the_gateway() -> None:
    """The node id defaults from the Gateway; cluster and metadata carry ns/name."""
    node = render_bootstrap("team-a/web", "127.0.0.1", 18000, 19000)["node"]
    assert node == {
        "id": "gateway-xds-team-a-web",
        "cluster": "team-a/web",
        "metadata": {"gateway": "team-a/web"},
    }
    assert default_node_id("team-a/web") == node["id"]
    custom = render_bootstrap("team-a/web", "127.0.0.1", 18000, 19000, node_id="replica-2")
    assert custom["node"]["id"] == "replica-2"


@pytest.mark.parametrize(("delta", "api_type"), [(False, "GRPC"), (True, "DELTA_GRPC")])
def test_ads_carries_lds_and_cds(delta: bool, api_type: str) -> None:
    """One ADS stream (SotW or delta) on xds_cluster carries LDS and CDS, V3, node sent once."""
    dynamic = render_bootstrap("ns/gw", "127.0.0.1", 18000, 19000, delta=delta)["dynamic_resources"]
    assert dynamic["ads_config"] == {
        "api_type": api_type,
        "transport_api_version": "V3",
        "set_node_on_first_message_only": True,
        "grpc_services": [{"envoy_grpc": {"cluster_name": XDS_CLUSTER}}],
    }
    for source in ("lds_config", "cds_config"):
        assert dynamic[source] == {"ads": {}, "resource_api_version": "V3"}


@pytest.mark.parametrize(
    ("host", "cluster_type"),
    [("127.0.0.1", "STATIC"), ("::1", "STATIC"), ("xds.gateway-system.svc", "STRICT_DNS")],
    ids=["ipv4", "ipv6", "dns-name"],
)
def test_xds_cluster_type_follows_the_address(host: str, cluster_type: str) -> None:
    """The control plane cluster is STATIC for an IP and STRICT_DNS for a name, over HTTP/2."""
    cluster = xds_cluster(render_bootstrap("ns/gw", host, 18000, 19000))
    assert cluster["type"] == cluster_type
    [locality] = cluster["load_assignment"]["endpoints"]
    address = locality["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    assert address == {"address": host, "port_value": 18000}
    options = cluster["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    ]
    assert "connection_keepalive" in options["explicit_http_config"]["http2_protocol_options"]


def test_admin_listens_where_asked() -> None:
    """The admin interface binds admin_address:admin_port."""
    admin = render_bootstrap("ns/gw", "127.0.0.1", 18000, 19123, admin_address="0.0.0.0")
    assert admin["admin"]["address"]["socket_address"] == {
        "address": "0.0.0.0",
        "port_value": 19123,
    }


@pytest.mark.parametrize("gateway", ["gw", "/gw", "ns/", "a/b/c"], ids=str)
def test_gateway_must_be_namespace_slash_name(gateway: str) -> None:
    """A Gateway key that is not NAMESPACE/NAME is refused."""
    with pytest.raises(ValueError, match="NAMESPACE/NAME"):
        render_bootstrap(gateway, "127.0.0.1", 18000, 19000)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:18000", ("127.0.0.1", 18000)),
        ("[::1]:18000", ("::1", 18000)),
        ("xds.example:443", ("xds.example", 443)),
    ],
    ids=["ipv4", "ipv6", "name"],
)
def test_split_host_port(address: str, expected: tuple[str, int]) -> None:
    """--xds-address values split into host and port, IPv6 in brackets."""
    assert split_host_port(address) == expected


@pytest.mark.parametrize("address", ["18000", "host:", ":18000", "::1:18000", "h:70000"], ids=str)
def test_split_host_port_rejects_malformed(address: str) -> None:
    """Malformed --xds-address values raise ValueError."""
    with pytest.raises(ValueError, match=r"address|port|brackets"):
        split_host_port(address)


def test_yaml_round_trips_without_anchors() -> None:
    """dump_yaml output loads back to the same document and repeats nothing by alias."""
    bootstrap = render_bootstrap("ns/gw", "127.0.0.1", 18000, 19000)
    text = dump_yaml(bootstrap)
    assert yaml.safe_load(text) == bootstrap
    assert "&id" not in text
    assert "*id" not in text


def test_example_file_is_current() -> None:
    """envoy/bootstrap-example.yaml is exactly what render_bootstrap produces for default/demo."""
    expected = dump_yaml(render_bootstrap("default/demo", "127.0.0.1", 18000, 19901))
    assert EXAMPLE.read_text() == expected


@pytest.mark.parametrize(
    ("host", "delta"),
    [("127.0.0.1", False), ("127.0.0.1", True), ("localhost", False), ("::1", True)],
    ids=["sotw", "delta", "dns-name", "ipv6-delta"],
)
def test_real_envoy_validates_bootstrap(tmp_path: Path, host: str, delta: bool) -> None:
    """The real Envoy's --mode validate accepts the rendered bootstrap."""
    path = tmp_path / "bootstrap.yaml"
    path.write_text(dump_yaml(render_bootstrap("ns/gw", host, 18000, 19000, delta=delta)))
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(path), "--log-level", "warning"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout + result.stderr


def test_cli_delta_flag_selects_delta_ads_and_envoy_validates_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`xdsctl bootstrap --delta`: api_type DELTA_GRPC, the rest unchanged; Envoy accepts it."""
    assert main(["bootstrap", "--gateway", "ns/gw", "--delta"]) == 0
    delta_text = capsys.readouterr().out
    assert main(["bootstrap", "--gateway", "ns/gw"]) == 0
    sotw = yaml.safe_load(capsys.readouterr().out)
    delta = yaml.safe_load(delta_text)
    assert delta["dynamic_resources"]["ads_config"]["api_type"] == "DELTA_GRPC"
    assert sotw["dynamic_resources"]["ads_config"]["api_type"] == "GRPC"
    sotw["dynamic_resources"]["ads_config"]["api_type"] = "DELTA_GRPC"
    assert delta == sotw
    path = tmp_path / "delta.yaml"
    path.write_text(delta_text)
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(path), "--log-level", "warning"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.e2e
def test_harness_proxies_traffic_to_an_echo_backend(tmp_path: Path) -> None:
    """A real Envoy with a static listener forwards a request to an echo backend and back."""
    with EchoBackends() as backends:
        backend = backends.start("echo-static", namespace="e2e")
        port = free_port()
        bootstrap = static_proxy_bootstrap(port, [(backend.host, backend.port)])
        with EnvoyProcess(bootstrap, tmp_path) as envoy:
            assert envoy.listener_port("http") == port
            result = get(f"http://127.0.0.1:{port}/hello?x=1", host="demo.example")
            seen = result.json
            assert result.status == 200
            assert (seen["service"], seen["namespace"], seen["pod"]) == (
                "echo-static",
                "e2e",
                backend.pod,
            )
            assert (seen["path"], seen["host"]) == ("/hello?x=1", "demo.example")
            assert seen["headers"]["X-Forwarded-Proto"] == ["http"]
            assert "X-Request-Id" in seen["headers"]
            counter = "cluster.backend.upstream_rq_2xx"
            envoy.wait_for(lambda: envoy.stats(f"^{counter}$").get(counter, 0) >= 1, what=counter)
            assert envoy.stats()[counter] == 1
            assert median_round_trip(port, requests=20) < 0.02  # no 40 ms delayed-ACK stalls
            config = envoy.admin_json("config_dump")
            assert any("bootstrap" in c.get("@type", "").lower() for c in config["configs"])
        assert not envoy.running


def median_round_trip(port: int, requests: int) -> float:
    """Median seconds of keep-alive GETs to 127.0.0.1:port."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        connection.request("GET", "/")
        connection.getresponse().read()
        times.append(time.perf_counter() - start)
    connection.close()
    return statistics.median(times)


@pytest.mark.e2e
def test_two_envoys_run_side_by_side(tmp_path: Path) -> None:
    """Two harness Envoys run at once (no shared base id), each on its own listener port."""
    with EchoBackends() as backends:
        backend = backends.start("shared")
        bootstrap = static_proxy_bootstrap(0, [(backend.host, backend.port)])
        with (
            EnvoyProcess(bootstrap, tmp_path, name="one") as one,
            EnvoyProcess(bootstrap, tmp_path, name="two") as two,
        ):
            ports = {one.listener_port("http"), two.listener_port("http")}
            assert len(ports) == 2
            for port in ports:
                assert get(f"http://127.0.0.1:{port}/").json["service"] == "shared"


@pytest.mark.e2e
def test_harness_reports_envoy_that_fails_to_start(tmp_path: Path) -> None:
    """An invalid bootstrap makes start() raise with the tail of Envoy's log."""
    bootstrap = static_proxy_bootstrap(0, [("127.0.0.1", 1)])
    bootstrap["static_resources"]["clusters"][0]["type"] = "NOT_A_TYPE"
    envoy = EnvoyProcess(bootstrap, tmp_path)
    with pytest.raises(EnvoyError, match="exited with code") as failure:
        envoy.start(timeout=30)
    assert "NOT_A_TYPE" in str(failure.value)
    assert not envoy.running
