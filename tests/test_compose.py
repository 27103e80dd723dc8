"""docker-compose.yaml and the Dockerfile, checked without a Docker engine (there is none here).

What is proved: the compose file parses; every file it bind-mounts exists (as a file or a
folder, as its target expects); every command of our image's services parses with
`xdsctl`'s own parser; the control plane's configuration as mounted (examples/ with
deploy/compose/backends.yaml over backends.yaml) translates to the same listeners, routes,
clusters and statuses as `make demo`'s, only the endpoint addresses differ, and those are
the echo containers' fixed addresses; the published ports are `make demo`'s, on the host's
loopback; Envoy's bootstrap is what `xdsctl bootstrap` prints, the real Envoy (the version
the image tag pins) accepts it with the compose command's flags; the commands run for real
on loopback (addresses moved to 127.0.0.1 and free ports), the compose healthcheck passes
against the running control plane, and the Dockerfile's STOPSIGNAL stops them cleanly. The
Dockerfile builds in two stages from the lock's runtime pins and runs as a non-root user.

What is not proved: that Docker builds the image, pulls envoyproxy/envoy, or resolves
service names on its network; the build stage's commands were run by hand outside Docker
(see the report of issue 5).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.metadata
import ipaddress
import json
import re
import shlex
import signal
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from support.envoy import envoy_binary
from support.http import free_port, get
from support.wait import wait_until

from translator import TranslateOptions, translate
from translator.render import result_json
from watcher.files import load_paths
from xds_server import demo
from xds_server.bootstrap import split_host_port
from xds_server.cli import build_parser, main
from xds_server.status import stamp

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
LOCK = ROOT / "requirements.lock"
EXAMPLES = ROOT / "examples"
ENVOY_IMAGE = "envoyproxy/envoy"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


def services() -> dict[str, dict[str, Any]]:
    found = compose()["services"]
    assert isinstance(found, dict)
    return found


def ours() -> dict[str, dict[str, Any]]:
    """The services that run this repository's image (built from the Dockerfile)."""
    return {name: svc for name, svc in services().items() if "build" in svc}


def parse_command(command: list[str]) -> argparse.Namespace:
    """``command`` as `xdsctl` (the image's ENTRYPOINT) parses it; fails the test if it can't."""
    try:
        return build_parser().parse_args(command)
    except SystemExit as error:  # argparse reports a bad command line by exiting
        pytest.fail(f"xdsctl rejects {command}: exit {error.code}")


def bind_mounts(service: dict[str, Any]) -> list[tuple[Path, PurePosixPath, str]]:
    """(host path, container path, mode) of each short-syntax bind mount."""
    mounts = []
    for volume in service.get("volumes", []):
        assert isinstance(volume, str), f"only the short syntax is checked: {volume!r}"
        source, target, *mode = volume.split(":")
        assert source.startswith(("./", "../", "/")), f"{volume!r} is a named volume"
        mounts.append((ROOT / source, PurePosixPath(target), mode[0] if mode else "rw"))
    return mounts


def container_view(service: dict[str, Any], folder: str) -> dict[PurePosixPath, Path]:
    """The files the container sees under ``folder``, each with the host file behind it.

    Mounts apply in order, a later one over an earlier one (as Docker does for a file
    mounted inside a mounted folder).
    """
    root = PurePosixPath(folder)
    view: dict[PurePosixPath, Path] = {}
    for host, target, _mode in bind_mounts(service):
        if target != root and root not in target.parents:
            continue
        if host.is_dir():
            for path in sorted(host.rglob("*")):
                if path.is_file():
                    view[target / path.relative_to(host).as_posix()] = path
        else:
            view[target] = host
    return view


def materialize(view: dict[PurePosixPath, Path], folder: str, into: Path) -> Path:
    """A host folder laid out as the container sees ``folder`` (symbolic links to the files)."""
    for container_path, host in view.items():
        link = into / container_path.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(host)
    return into


def published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host address, host port, container port) of each published port."""
    result = []
    for spec in service.get("ports", []):
        host, host_port, container_port = str(spec).split(":")
        result.append((host, int(host_port), int(container_port)))
    return result


def port_of(address: str) -> int:
    return split_host_port(address)[1]


def controlplane_args() -> argparse.Namespace:
    args = parse_command(services()["controlplane"]["command"])
    assert args.run.__name__ == "_serve"
    return args


def envoy_service() -> tuple[str, dict[str, Any]]:
    [(name, service)] = [
        (name, svc) for name, svc in services().items() if svc["image"].startswith(ENVOY_IMAGE)
    ]
    return name, service


def envoy_config(service: dict[str, Any]) -> Path:
    """The host file behind the ``-c`` path of the Envoy service's command."""
    command = service["command"]
    target = PurePosixPath(command[command.index("-c") + 1])
    view = container_view(service, str(target))
    assert target in view, f"{target} is not mounted into the Envoy container"
    return view[target]


def translated(paths: list[Path], args: argparse.Namespace) -> tuple[dict[str, Any], Any]:
    snapshot = load_paths(paths)
    assert snapshot.errors == (), snapshot.errors
    options = TranslateOptions(args.listener_address, args.privileged_port_offset)
    result = translate(snapshot.bodies(), options)
    return result_json(result), stamp(result.statuses, {}, NOW)


def endpoint_slice_addresses(path: Path) -> dict[str, list[str]]:
    """Service name -> the addresses of its EndpointSlices in ``path``."""
    found: dict[str, list[str]] = {}
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc["kind"] == "EndpointSlice":
            service = doc["metadata"]["labels"]["kubernetes.io/service-name"]
            for endpoint in doc["endpoints"]:
                found.setdefault(service, []).extend(endpoint["addresses"])
    return found


# --- the compose file ------------------------------------------------------------------------


def test_compose_parses_into_the_demo_services() -> None:
    """Four services: the control plane, one Envoy and the two echo backends of the demo."""
    names = set(services())
    echo_names = {name for name, _port in demo.BACKENDS}
    assert names == {"controlplane", envoy_service()[0], *echo_names}
    assert set(ours()) == {"controlplane", *echo_names}
    images = {svc["image"] for svc in ours().values()}
    assert len(images) == 1, f"our services should share one image: {images}"


def test_every_mounted_file_exists_read_only() -> None:
    """Each bind-mounted host path exists (else Docker would create an empty folder there)."""
    mounts = [m for svc in services().values() for m in bind_mounts(svc)]
    assert mounts
    for host, target, mode in mounts:
        assert host.exists(), f"{host} is mounted but does not exist"
        assert ROOT in host.resolve().parents, f"{host} is outside the repository"
        assert host.is_file() == (target.suffix in {".yaml", ".yml", ".json"}), (host, target)
        assert mode == "ro", f"{host} should be mounted read-only"


def test_commands_are_ones_xdsctl_accepts_and_name_mounted_files() -> None:
    """Every command of our image parses with xdsctl's parser; serve's folder is mounted."""
    for name, service in ours().items():
        args = parse_command(service["command"])
        assert args.run.__name__ in {"_serve", "_echo"}, name
    args = controlplane_args()
    view = container_view(services()["controlplane"], str(args.config_dir))
    assert {p.name for p in view} == {p.name for p in EXAMPLES.glob("*.yaml")}


def test_controlplane_listens_on_all_interfaces_and_publishes_the_demo_ports() -> None:
    """xDS and admin bind 0.0.0.0 in the container, published on the demo's ports."""
    args = controlplane_args()
    assert split_host_port(args.xds_address) == ("0.0.0.0", demo.XDS[1])
    assert split_host_port(args.admin_address) == ("0.0.0.0", port_of(demo.ADMIN))
    assert args.listener_address == "0.0.0.0"  # so Envoy's published listener is reachable
    admin = port_of(demo.ADMIN)
    assert sorted(published(services()["controlplane"])) == sorted(
        [("127.0.0.1", demo.XDS[1], demo.XDS[1]), ("127.0.0.1", admin, admin)]
    )


def test_published_ports_are_the_demo_ports_on_loopback() -> None:
    """All services together publish exactly `make demo`'s ports, on 127.0.0.1, unchanged."""
    expected = {
        demo.LISTENER_PORT,
        demo.ENVOY_ADMIN_PORT,
        demo.XDS[1],
        port_of(demo.ADMIN),
        *(port for _name, port in demo.BACKENDS),
    }
    ports = [p for svc in services().values() for p in published(svc)]
    assert {host_port for _host, host_port, _port in ports} == expected
    assert len(ports) == len(expected)
    for host, host_port, container_port in ports:
        assert host == "127.0.0.1"
        assert host_port == container_port


def test_echo_backends_are_the_demo_backends_at_the_endpoint_slices_addresses() -> None:
    """echo-v1:9101 and echo-v2:9102 run `xdsctl echo`, at the addresses the slices name."""
    network_name, network = next(iter(compose()["networks"].items()))
    [pool] = network["ipam"]["config"]
    subnet = ipaddress.ip_network(pool["subnet"])
    overlay = services()["controlplane"]
    config_view = container_view(overlay, str(controlplane_args().config_dir))
    backends = config_view[PurePosixPath(str(controlplane_args().config_dir)) / "backends.yaml"]
    assert backends != EXAMPLES / "backends.yaml", "compose must overlay examples/backends.yaml"
    slices = endpoint_slice_addresses(backends)
    assert set(slices) == {name for name, _port in demo.BACKENDS}
    for name, port in demo.BACKENDS:
        service = services()[name]
        args = parse_command(service["command"])
        assert (args.name, args.port, args.host) == (name, port, "0.0.0.0")
        address = service["networks"][network_name]["ipv4_address"]
        assert ipaddress.ip_address(address) in subnet
        assert slices[name] == [address]
        assert published(service) == [("127.0.0.1", port, port)]
    for service in services().values():
        assert set(service["networks"]) == {network_name}


def test_compose_configuration_translates_like_the_demo() -> None:
    """Same Gateway, listeners, routes, clusters and statuses; endpoints moved to the echoes."""
    args = controlplane_args()
    folder = str(args.config_dir)
    compose_files = list(container_view(services()["controlplane"], folder).values())
    compose_json, compose_status = translated(compose_files, args)
    demo_json, demo_status = translated([EXAMPLES], args)
    assert set(compose_json["gateways"]) == {demo.GATEWAY}
    moved = {
        name: services()[name]["networks"]["demo"]["ipv4_address"] for name, _ in demo.BACKENDS
    }
    for assignment in demo_json["gateways"][demo.GATEWAY]["endpoints"]:
        service = assignment["clusterName"].split("/")[2]
        for locality in assignment["endpoints"]:
            for lb in locality["lbEndpoints"]:
                socket = lb["endpoint"]["address"]["socketAddress"]
                assert socket["address"] == "127.0.0.1"
                socket["address"] = moved[service]
    assert compose_json == demo_json
    assert compose_status == demo_status
    conditions = [
        c
        for obj in compose_status
        for part in [obj["status"], *obj["status"].get("parents", [])]
        for c in part.get("conditions", [])
    ]
    assert {c["type"] for c in conditions} >= {"Accepted", "Programmed", "ResolvedRefs"}
    assert all(c["status"] == "True" for c in conditions), conditions


# --- Envoy -------------------------------------------------------------------------------------


def envoy_version() -> str:
    result = subprocess.run(
        [envoy_binary(), "--version"], capture_output=True, text=True, timeout=60, check=True
    )
    match = re.search(r"/(\d+\.\d+\.\d+)/", result.stdout)
    assert match, result.stdout
    return match.group(1)


def test_envoy_image_is_the_version_the_tests_run() -> None:
    """The official image's tag is the version of the Envoy binary every e2e test uses."""
    _name, service = envoy_service()
    assert service["image"] == f"{ENVOY_IMAGE}:v{envoy_version()}"


def test_envoy_bootstrap_is_what_xdsctl_bootstrap_prints(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """envoy/ holds the exact `xdsctl bootstrap` output for the compose topology."""
    _name, service = envoy_service()
    path = envoy_config(service)
    assert path.parent == ROOT / "envoy"
    xds = controlplane_args().xds_address
    command = [
        "bootstrap",
        *("--gateway", demo.GATEWAY),
        *("--xds-address", f"controlplane:{port_of(xds)}"),
        *("--admin-port", str(demo.ENVOY_ADMIN_PORT)),
        *("--admin-address", "0.0.0.0"),
    ]
    assert main(command) == 0
    assert path.read_text() == capsys.readouterr().out, (
        f"regenerate: xdsctl {shlex.join(command)} > {path.relative_to(ROOT)}"
    )
    bootstrap = yaml.safe_load(path.read_text())
    [cluster] = bootstrap["static_resources"]["clusters"]
    assert cluster["type"] == "STRICT_DNS"
    assert "controlplane" in services()
    assert service["depends_on"]["controlplane"]["condition"] == "service_healthy"


def test_real_envoy_accepts_the_compose_command_and_bootstrap(tmp_path: Path) -> None:
    """`envoy --mode validate` with the compose command's own flags and mounted bootstrap."""
    _name, service = envoy_service()
    command = list(service["command"])
    assert command[0] == "envoy"
    command[command.index("-c") + 1] = str(envoy_config(service))
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", *command[1:], "--log-level", "warning"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout + result.stderr


# --- the commands, run for real on loopback ------------------------------------------------------


def on_loopback(command: list[str], ports: dict[int, int]) -> list[str]:
    """``command`` with 0.0.0.0 replaced by 127.0.0.1 and each port by its free stand-in."""
    pattern = re.compile(r"(?<![0-9])(" + "|".join(map(str, ports)) + r")(?![0-9])")

    def move(word: str) -> str:
        word = word.replace("0.0.0.0", "127.0.0.1")
        return pattern.sub(lambda match: str(ports[int(match.group(1))]), word)

    return [move(word) for word in command]


@contextlib.contextmanager
def running(command: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`xdsctl COMMAND` in a subprocess, stopped with the Dockerfile's STOPSIGNAL."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "xds_server.cli", *command],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(stop_signal())
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def stop_signal() -> signal.Signals:
    [name] = re.findall(r"^STOPSIGNAL\s+(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    return signal.Signals[name]


def test_compose_commands_run_and_stop_cleanly(tmp_path: Path) -> None:
    """The compose commands serve the mounted config and echo; healthcheck and stop work."""
    plane = services()["controlplane"]
    args = controlplane_args()
    ports = {port: free_port() for port in (port_of(args.xds_address), port_of(args.admin_address))}
    folder = str(args.config_dir)
    config = materialize(container_view(plane, folder), folder, tmp_path / "config")
    command = on_loopback(plane["command"], ports)
    command[command.index(folder)] = str(config)
    healthcheck = plane["healthcheck"]["test"]
    assert healthcheck[:2] == ["CMD", "python"]
    assert f":{port_of(args.admin_address)}/readyz" in healthcheck[-1]
    probe = [sys.executable, *on_loopback(healthcheck[2:], ports)]

    def healthy() -> bool:
        return subprocess.run(probe, capture_output=True, timeout=10, check=False).returncode == 0

    with running(command, tmp_path / "controlplane.log") as server:
        wait_until(healthy, 30, message=(tmp_path / "controlplane.log").read_text)
        admin = f"http://127.0.0.1:{ports[port_of(args.admin_address)]}"
        dump = get(f"{admin}/api/config_dump?gateway={demo.GATEWAY}").json
        addresses = {
            (lb["endpoint"]["address"]["socketAddress"]["address"], assignment["clusterName"])
            for assignment in dump["gateways"][demo.GATEWAY]["endpoints"]
            for locality in assignment["endpoints"]
            for lb in locality["lbEndpoints"]
        }
        assert addresses == {
            (services()[name]["networks"]["demo"]["ipv4_address"], f"service/default/{name}/80")
            for name, _port in demo.BACKENDS
        }
        assert get(f"{admin}/api/errors").json == []
        server.send_signal(stop_signal())
        assert server.wait(timeout=10) == 0

    for name, port in demo.BACKENDS:
        echo_port = free_port()
        echo_command = on_loopback(services()[name]["command"], {port: echo_port})
        with running(echo_command, tmp_path / f"{name}.log") as echo:
            url = f"http://127.0.0.1:{echo_port}/hello"
            answer = wait_until(functools.partial(get, url), 10, ignore=(OSError,))
            assert json.loads(answer.body)["service"] == name
            echo.send_signal(stop_signal())
            assert echo.wait(timeout=10) == 0


# --- the Dockerfile ----------------------------------------------------------------------------


def dockerfile_stages() -> list[list[str]]:
    """Instructions (continuation lines joined, comments dropped), split per FROM."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    stages: list[list[str]] = [[]]
    for instruction in instructions:
        if instruction.startswith("FROM "):
            stages.append([])
        stages[-1].append(instruction)
    return stages


def test_dockerfile_is_multi_stage_on_python_3_11_slim() -> None:
    """A build stage and a runtime stage, both on the python:3.11-slim base."""
    preamble, *stages = dockerfile_stages()
    assert len(stages) == 2
    assert preamble == ["ARG PYTHON_IMAGE=python:3.11-slim"]
    assert stages[0][0] == "FROM ${PYTHON_IMAGE} AS build"
    assert stages[1][0] == "FROM ${PYTHON_IMAGE}"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11"
    runtime_copies = [i for i in stages[1] if i.startswith("COPY")]
    assert runtime_copies == ["COPY --from=build /opt/gateway-xds /opt/gateway-xds"]


def test_dockerfile_runs_xdsctl_as_a_non_root_user() -> None:
    """USER is a numeric non-zero uid:gid, created in the image; the entry point is xdsctl."""
    runtime = dockerfile_stages()[-1]
    [user] = [i.split()[1] for i in runtime if i.startswith("USER ")]
    uid, gid = user.split(":")
    assert uid.isdigit()
    assert gid.isdigit()
    assert int(uid) != 0
    assert int(gid) != 0
    assert any("useradd" in i and f"--uid {uid}" in i for i in runtime)
    assert runtime.index(next(i for i in runtime if i.startswith("USER "))) > max(
        runtime.index(i) for i in runtime if i.startswith(("RUN ", "COPY "))
    ), "nothing runs or is copied as root after USER is set"
    assert 'ENTRYPOINT ["xdsctl"]' in runtime
    assert stop_signal() == signal.SIGINT


def test_dockerfile_installs_runtime_dependencies_from_the_lock() -> None:
    """pip installs pyproject's runtime dependencies constrained by the lock; no dev tools."""
    build = dockerfile_stages()[1]
    installs = [i for i in build if "pip install" in i]
    assert installs
    assert "--constraint requirements.lock" in installs[0]
    assert "--only-binary=:all:" in installs[0]
    assert '["project"]["dependencies"]' in installs[0]
    assert "--no-deps" in installs[1]
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    text = DOCKERFILE.read_text()
    for requirement in dev["dev"]:
        assert Requirement(requirement).name not in text, requirement
    assert "[dev]" not in text


def test_lock_pins_every_runtime_dependency_transitively() -> None:
    """Every package the runtime dependencies pull in is pinned in the lock, at that version.

    (So `pip install --constraint requirements.lock` in the Dockerfile resolves nothing
    unpinned.)
    """
    pins = {}
    for line in LOCK.read_text().splitlines():
        name, _, version = line.partition("==")
        pins[canonicalize_name(name)] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo = [Requirement(r) for r in project["dependencies"]]
    seen: set[str] = set()
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        assert name in pins, f"{name} is not pinned in requirements.lock"
        assert importlib.metadata.version(name) == pins[name]
        for text in importlib.metadata.requires(name) or []:
            child = Requirement(text)
            if child.marker is None or child.marker.evaluate({"extra": ""}):
                todo.append(child)
    assert len(seen) > len(project["dependencies"])


def test_build_context_holds_exactly_what_the_dockerfile_copies() -> None:
    """.dockerignore excludes everything but the copied sources, which all exist."""
    ignore = [line for line in DOCKERIGNORE.read_text().splitlines() if line and line[0] != "#"]
    assert ignore[0] == "*"
    included = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    sources = set()
    for instruction in dockerfile_stages()[1]:
        if instruction.startswith("COPY ") and "--from=" not in instruction:
            *copied, _destination = instruction.split()[1:]
            sources.update(copied)
    assert sources == included
    for source in sources:
        assert (ROOT / source).exists(), source
