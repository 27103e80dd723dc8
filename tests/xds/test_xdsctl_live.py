"""`xdsctl proxy-status` and `xdsctl config-dump` against a running `xdsctl serve`.

A real control plane process on a copy of the examples; a grpc.aio client acting as Envoy
takes clusters and endpoints and rejects the listener, then the real CLI reads the admin API.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from support.cli import xdsctl
from support.controlplane import ControlPlaneProcess
from support.http import free_port
from test_ads_support import Proxy, ack, nack, node, request

from translator.result import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE
from xds_server.proxy_table import render

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CLUSTERS = ("service/default/echo-v1/80", "service/default/echo-v2/80")
BIND = "Error adding/updating listener(s) http-8080: cannot bind '0.0.0.0:8080': in use\n"


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlaneProcess]:
    workdir = tmp_path_factory.mktemp("xdsctl-live")
    config = workdir / "config"
    shutil.copytree(EXAMPLES, config)
    process = ControlPlaneProcess(config, workdir, xds_port=free_port(), admin_port=free_port())
    process.start()
    try:
        yield process
    finally:
        process.stop()


def admin(plane: ControlPlaneProcess) -> str:
    return f"127.0.0.1:{plane.admin_port}"


def test_proxy_status_shows_a_rejected_listener(plane: ControlPlaneProcess) -> None:
    """The table has one row per proxy with each type's state, and lists Envoy's message;
    -o json prints /api/clients."""

    async def scenario() -> tuple[str, str]:
        proxy = Proxy(f"127.0.0.1:{plane.xds_port}", node("default/demo", "cli-proxy"))
        try:
            proxy.send(request(CLUSTER_TYPE))
            cds = await proxy.recv()
            proxy.send(request(ENDPOINT_TYPE, CLUSTERS))
            proxy.send(ack(cds))
            proxy.send(ack(await proxy.recv(), CLUSTERS))
            proxy.send(request(LISTENER_TYPE))
            lds = await proxy.recv()
            proxy.send(nack(lds, BIND))
            loop = asyncio.get_running_loop()
            deadline, pause = loop.time() + 10, 0.01
            while True:  # until the server has folded the NACK in
                done = await asyncio.to_thread(
                    xdsctl, "proxy-status", "--admin-address", admin(plane)
                )
                assert done.returncode == 0, done.stderr
                if "NACKED" in done.stdout or loop.time() > deadline:
                    break
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.3)
            as_json = await asyncio.to_thread(
                xdsctl, "proxy-status", "--admin-address", admin(plane), "-o", "json"
            )
            return done.stdout, as_json.stdout
        finally:
            await proxy.close()

    table, as_json = asyncio.run(scenario())
    lines = table.splitlines()
    assert lines[0].split() == ["NODE", "GATEWAY", "PROTOCOL", "CDS", "EDS", "LDS", "RDS", "SDS"]
    row = lines[1]
    assert row.startswith("cli-proxy")
    assert "default/demo" in row
    assert "sotw" in row
    assert row.count("SYNCED") == 2  # clusters and endpoints
    assert "NACKED" in row
    assert "IGNORED" in row  # routes and secrets: never subscribed
    assert "Last errors (NACKs):" in table
    assert "cli-proxy (default/demo) listeners version" in table
    assert "cannot bind '0.0.0.0:8080': in use" in table
    [client] = json.loads(as_json)
    assert client["types"]["listeners"]["nack"]["message"] == BIND


def test_config_dump_of_a_gateway(plane: ControlPlaneProcess) -> None:
    """config-dump prints the running server's config for one Gateway, as translate does."""
    done = xdsctl("config-dump", "--gateway", "default/demo", "--admin-address", admin(plane))
    assert done.returncode == 0, done.stderr
    dump = json.loads(done.stdout)
    assert list(dump["gateways"]) == ["default/demo"]
    demo = dump["gateways"]["default/demo"]
    assert set(demo) == {"listeners", "routes", "clusters", "endpoints", "secrets"}
    assert demo["listeners"][0]["name"] == "http-8080"
    assert any(s["kind"] == "Gateway" for s in dump["status"])
    as_yaml = xdsctl(
        "config-dump", "--gateway", "default/demo", "--admin-address", admin(plane), "-o", "yaml"
    )
    assert yaml.safe_load(as_yaml.stdout)["gateways"] == dump["gateways"]


def test_config_dump_of_an_unknown_gateway_is_a_clear_error(plane: ControlPlaneProcess) -> None:
    """An unknown Gateway is named on stderr with exit code 1; a malformed one is exit 2."""
    done = xdsctl("config-dump", "--gateway", "default/nope", "--admin-address", admin(plane))
    assert done.returncode == 1
    assert "no Gateway default/nope" in done.stderr
    assert done.stdout == ""
    malformed = xdsctl("config-dump", "--gateway", "nope", "--admin-address", admin(plane))
    assert malformed.returncode == 2
    assert "NAMESPACE/NAME" in malformed.stderr


@pytest.mark.parametrize("command", ["proxy-status", "config-dump"])
def test_an_unreachable_server_is_a_clear_error(command: str) -> None:
    """Nothing listening: exit code 1 and a message naming the address."""
    address = f"127.0.0.1:{free_port()}"
    extra = ["--gateway", "default/demo"] if command == "config-dump" else []
    done = xdsctl(command, "--admin-address", address, *extra)
    assert done.returncode == 1
    assert f"cannot reach the control plane's admin API at {address}" in done.stderr
    assert done.stdout == ""


def test_render_without_proxies_and_with_a_superseded_nack() -> None:
    """No proxies is said plainly; a NACK since superseded by an ACK is listed as such."""
    assert render([]) == "No proxies are connected.\n"
    synced = {"status": "SYNCED", "acked_version": "0123456789abcdef", "nack": None}
    old = {"version": "fedcba9876543210", "message": "bad\nroute", "at": "2026-01-01T00:00:00"}
    client = {
        "node": {"id": "p"},
        "gateway": None,
        "protocol": "delta",
        "types": {"routes": {**synced, "last_nack": old}, "clusters": {"status": "NOT SENT"}},
    }
    text = render([client])
    assert text.splitlines()[1].split() == [
        "p", "-", "delta", "NOT", "SENT", "-", "-", "SYNCED", "01234567", "-",
    ]  # fmt: skip
    assert "p (-) routes version fedcba9876543210" in text
    assert "(a later version was accepted): bad route" in text
