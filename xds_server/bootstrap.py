"""Envoy v3 bootstrap configuration for a proxy that serves one Gateway.

Who calls it: ``xdsctl bootstrap --gateway NS/NAME [--xds-address HOST:PORT]
[--admin-port N] [--delta]`` (through ``render_bootstrap`` and ``dump_yaml``), the demo,
and the end-to-end tests.

What it does: builds the whole bootstrap as plain data (``dict``), ready for YAML or JSON:
- ``node``: ``id`` (``gateway-xds-<ns>-<name>`` unless given), ``cluster`` ``ns/name`` and
  ``metadata.gateway`` ``ns/name``: the control plane reads the Gateway a proxy serves
  from its node, and sends it that Gateway's resources only;
- ``dynamic_resources``: one ADS stream (state-of-the-world ``GRPC`` or ``DELTA_GRPC``)
  carrying LDS and CDS, and through them RDS, EDS and SDS;
- ``static_resources``: the single cluster ``xds_cluster`` to the control plane, HTTP/2
  with connection keepalive PINGs, STATIC for an IP address, STRICT_DNS for a name;
- ``admin`` on ``admin_address:admin_port`` and a runtime with an admin layer.

What it must not do: any I/O, or emit anything the Envoy release we test with
(``envoy --mode validate``) rejects.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import yaml

__all__ = [
    "XDS_CLUSTER",
    "default_node_id",
    "dump_yaml",
    "render_bootstrap",
    "split_host_port",
]

XDS_CLUSTER = "xds_cluster"
CONNECT_TIMEOUT = "1s"
KEEPALIVE_INTERVAL = "30s"
KEEPALIVE_TIMEOUT = "10s"

_HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def default_node_id(gateway: str) -> str:
    """``gateway-xds-<namespace>-<name>`` for ``namespace/name``."""
    namespace, name = _split_gateway(gateway)
    return f"gateway-xds-{namespace}-{name}"


def _split_gateway(gateway: str) -> tuple[str, str]:
    namespace, slash, name = gateway.partition("/")
    if not slash or not namespace or not name or "/" in name:
        raise ValueError(f"gateway must be NAMESPACE/NAME, got {gateway!r}")
    return namespace, name


def split_host_port(address: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` into (host, port); ValueError when malformed."""
    host, colon, port_text = address.rpartition(":")
    if not colon or not host or not port_text.isdigit():
        raise ValueError(f"address must be HOST:PORT, got {address!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"IPv6 addresses need brackets: [{host}]:{port_text}")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"port out of range in {address!r}")
    return host, port


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _socket_address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def _xds_cluster(xds_host: str, xds_port: int) -> dict[str, Any]:
    """The static cluster every proxy uses to reach the control plane."""
    cluster: dict[str, Any] = {
        "name": XDS_CLUSTER,
        "type": "STATIC" if _is_ip(xds_host) else "STRICT_DNS",
        "connect_timeout": CONNECT_TIMEOUT,
        "load_assignment": {
            "cluster_name": XDS_CLUSTER,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": _socket_address(xds_host, xds_port)}}]}
            ],
        },
        "typed_extension_protocol_options": {
            _HTTP_PROTOCOL_OPTIONS: {
                "@type": f"type.googleapis.com/{_HTTP_PROTOCOL_OPTIONS}",
                "explicit_http_config": {
                    "http2_protocol_options": {
                        "connection_keepalive": {
                            "interval": KEEPALIVE_INTERVAL,
                            "timeout": KEEPALIVE_TIMEOUT,
                        }
                    }
                },
            }
        },
        "upstream_connection_options": {
            "tcp_keepalive": {"keepalive_time": 60, "keepalive_interval": 10}
        },
    }
    if not _is_ip(xds_host):
        cluster["dns_lookup_family"] = "V4_PREFERRED"
    return cluster


def _ads_source() -> dict[str, Any]:
    return {"ads": {}, "resource_api_version": "V3"}


def render_bootstrap(
    gateway: str,
    xds_host: str,
    xds_port: int,
    admin_port: int,
    *,
    node_id: str | None = None,
    delta: bool = False,
    admin_address: str = "127.0.0.1",
) -> dict[str, Any]:
    """A complete Envoy v3 bootstrap for a proxy serving ``gateway`` (``namespace/name``)."""
    namespace, name = _split_gateway(gateway)
    key = f"{namespace}/{name}"
    return {
        "node": {
            "id": node_id or default_node_id(key),
            "cluster": key,
            "metadata": {"gateway": key},
        },
        "dynamic_resources": {
            "ads_config": {
                "api_type": "DELTA_GRPC" if delta else "GRPC",
                "transport_api_version": "V3",
                "set_node_on_first_message_only": True,
                "grpc_services": [{"envoy_grpc": {"cluster_name": XDS_CLUSTER}}],
            },
            "lds_config": _ads_source(),
            "cds_config": _ads_source(),
        },
        "static_resources": {"clusters": [_xds_cluster(xds_host, xds_port)]},
        "admin": {"address": _socket_address(admin_address, admin_port)},
        "layered_runtime": {"layers": [{"name": "admin", "admin_layer": {}}]},
    }


class _NoAliasDumper(yaml.CSafeDumper):
    """Writes a repeated object out in full instead of as a YAML anchor and alias."""

    def ignore_aliases(self, data: Any) -> bool:  # noqa: ARG002 (PyYAML's signature)
        return True


def dump_yaml(bootstrap: dict[str, Any]) -> str:
    """``bootstrap`` as block-style YAML, keys in the order they were built."""
    return yaml.dump(
        bootstrap, Dumper=_NoAliasDumper, sort_keys=False, default_flow_style=False, width=100
    )
