"""The end-to-end stack: echo backends, `xdsctl serve` on a temp folder, and a real Envoy.

Who calls it: tests/e2e/conftest.py builds one ``Stack`` per test module; tests write the
route files they need and wait until traffic shows them.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from support.controlplane import ControlPlaneProcess
from support.echo import EchoBackend, EchoBackends
from support.envoy import EnvoyProcess
from support.http import HttpResult, free_port, get
from support.wait import wait_until
from xds_server.bootstrap import render_bootstrap

GATEWAY = "default/gw"
BACKEND_NAMES = ("echo-a", "echo-b", "echo-c")


@dataclass
class Stack:
    config_dir: Path
    listener_port: int
    backends: dict[str, EchoBackend]
    echoes: EchoBackends
    plane: ControlPlaneProcess
    envoy: EnvoyProcess
    written: set[str] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener_port}"

    def write(self, name: str, text: str) -> None:
        """Write (or replace) one YAML file of the watched folder."""
        path = self.config_dir / name
        tmp = path.with_suffix(".tmp")  # not a watched suffix: the rename is atomic
        tmp.write_text(textwrap.dedent(text))
        tmp.replace(path)
        self.written.add(name)

    def remove(self, name: str) -> None:
        (self.config_dir / name).unlink(missing_ok=True)
        self.written.discard(name)

    def get(
        self,
        path: str,
        *,
        host: str | None = None,
        headers: Mapping[str, str] | None = None,
        method: str = "GET",
    ) -> HttpResult:
        return get(self.url + path, host=host, headers=headers, method=method)

    def service_of(self, path: str, **kwargs: Any) -> str | int:
        """Which backend answered (its service name), or the status when none did."""
        result = self.get(path, **kwargs)
        if result.status != 200 or result.json is None:
            return result.status
        return str(result.json["service"])

    def wait_for(self, path: str, expected: str | int, timeout: float = 15, **kwargs: Any) -> None:
        """Wait until a request to ``path`` is answered by ``expected`` (service or status)."""
        wait_until(
            lambda: self.service_of(path, **kwargs) == expected,
            timeout,
            ignore=(OSError,),
            message=lambda: (
                f"{path} {kwargs} never answered by {expected}; "
                f"last: {self.service_of(path, **kwargs)}\n{self.plane.log_tail(10)}"
            ),
        )


def service_objects(
    name: str, service_port: dict[str, Any], backend_port: int
) -> list[dict[str, Any]]:
    """A Service in "default" with one port, and the EndpointSlice of its 127.0.0.1 backend."""
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"ports": [service_port]},
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{name}-1",
                "namespace": "default",
                "labels": {"kubernetes.io/service-name": name},
            },
            "addressType": "IPv4",
            "ports": [{"name": service_port["name"], "port": backend_port}],
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
        },
    ]


def backend_objects(backends: Mapping[str, EchoBackend]) -> str:
    """Services and EndpointSlices of the running echo backends (port 80 -> their port)."""
    docs: list[dict[str, Any]] = []
    for name, backend in backends.items():
        port = {"name": "http", "port": 80, "targetPort": backend.port}
        docs += service_objects(name, port, backend.port)
    return yaml.safe_dump_all(docs)


# Our GatewayClass and the head of Gateway default/gw, up to its listeners (indented as the
# YAML texts of the tests are, which are dedented when written).
GATEWAY_HEAD = """\
        apiVersion: gateway.networking.k8s.io/v1
        kind: GatewayClass
        metadata: {name: gateway-xds}
        spec: {controllerName: gateway-xds.io/gatewayclass-controller}
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: gw, namespace: default}
        spec:
          gatewayClassName: gateway-xds
          listeners:
"""


def gateway_objects(port: int) -> str:
    return (
        GATEWAY_HEAD
        + f"""\
            - name: http
              protocol: HTTP
              port: {port}
              allowedRoutes: {{namespaces: {{from: All}}}}
        """
    )


def start_stack(workdir: Path, *, delta: bool = False) -> Stack:
    """Start backends, control plane and Envoy; the caller must ``stop_stack`` it.

    ``delta``: Envoy's bootstrap uses delta ADS (``DELTA_GRPC``) instead of SotW.
    """
    config_dir = workdir / "config"
    config_dir.mkdir()
    echoes = EchoBackends()
    backends = {name: echoes.start(name) for name in BACKEND_NAMES}
    listener_port = free_port()
    (config_dir / "backends.yaml").write_text(backend_objects(backends))
    (config_dir / "gateway.yaml").write_text(textwrap.dedent(gateway_objects(listener_port)))
    plane = ControlPlaneProcess(config_dir, workdir, xds_port=free_port(), admin_port=free_port())
    bootstrap = render_bootstrap(GATEWAY, "127.0.0.1", plane.xds_port, admin_port=0, delta=delta)
    envoy = EnvoyProcess(bootstrap, workdir, log_level="warning")
    stack = Stack(config_dir, listener_port, backends, echoes, plane, envoy)
    try:
        plane.start()
        envoy.start()
        wait_until(
            lambda: envoy.listener_port(f"http-{listener_port}"),
            15,
            ignore=(Exception,),
            message="Envoy never got its listener",
        )
    except BaseException:
        stop_stack(stack)
        raise
    return stack


def stop_stack(stack: Stack) -> None:
    stack.envoy.stop()
    stack.plane.stop()
    stack.echoes.close()
