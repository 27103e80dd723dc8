"""The `xdsctl` commands a user runs offline: translate and bootstrap."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from support.cli import xdsctl

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_translate_examples_json() -> None:
    """translate prints every type per Gateway and a stamped status of each object we own."""
    done = xdsctl("translate", "-f", str(EXAMPLES))
    assert done.returncode == 0, done.stderr
    output = json.loads(done.stdout)
    demo = output["gateways"]["default/demo"]
    assert set(demo) == {"listeners", "routes", "clusters", "endpoints", "secrets"}
    assert [c["name"] for c in demo["clusters"]] == [
        "service/default/echo-v1/80",
        "service/default/echo-v2/80",
    ]
    kinds = [(s["kind"], s["metadata"]["name"]) for s in output["status"]]
    assert kinds == [
        ("GatewayClass", "gateway-xds"),
        ("Gateway", "demo"),
        ("HTTPRoute", "paths"),
        ("HTTPRoute", "split"),
    ]
    gateway = output["status"][1]["status"]
    assert all("lastTransitionTime" in c for c in gateway["conditions"])
    assert gateway["conditions"][0]["observedGeneration"] == 1


def test_translate_yaml_and_reports_bad_files(tmp_path: Path) -> None:
    """A file that does not parse is reported on stderr with exit 1; the rest is translated."""
    (tmp_path / "bad.yaml").write_text("kind: [unclosed\n")
    for name in ("gateway.yaml", "routes.yaml", "backends.yaml"):
        (tmp_path / name).write_text((EXAMPLES / name).read_text())
    done = xdsctl("translate", "-f", str(tmp_path), "-o", "yaml")
    assert done.returncode == 1
    assert "bad.yaml" in done.stderr
    output = yaml.safe_load(done.stdout)
    assert len(output["gateways"]["default/demo"]["listeners"]) == 1


def test_translate_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    """A path that does not exist is named, with exit code 2 and nothing on stdout."""
    done = xdsctl("translate", "-f", str(tmp_path / "nope.yaml"))
    assert done.returncode == 2
    assert "nope.yaml" in done.stderr
    assert done.stdout == ""


def test_bootstrap_names_the_gateway_and_control_plane() -> None:
    """bootstrap prints YAML whose node names the Gateway and whose ADS points at --xds-address."""
    done = xdsctl("bootstrap", "--gateway", "team-a/web", "--xds-address", "10.1.2.3:18001")
    assert done.returncode == 0, done.stderr
    bootstrap = yaml.safe_load(done.stdout)
    assert bootstrap["node"]["metadata"] == {"gateway": "team-a/web"}
    assert bootstrap["dynamic_resources"]["ads_config"]["api_type"] == "GRPC"
    endpoint = bootstrap["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]
    address = endpoint["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    assert (address["address"], address["port_value"]) == ("10.1.2.3", 18001)


def test_bootstrap_rejects_a_gateway_without_namespace() -> None:
    """--gateway must be NAMESPACE/NAME; anything else is a usage error, not a traceback."""
    done = xdsctl("bootstrap", "--gateway", "web")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip()
