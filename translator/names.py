"""The one place that decides the names of Envoy resources.

Names depend only on what a resource stands for, never on positions of rules, so that
reordering rules or routes leaves cluster names (and so Envoy's warm clusters) alone.
"""

from __future__ import annotations

INVALID_BACKEND = "gateway-xds-invalid-backend"  # never defined: Envoy answers 500 for it


def cluster(namespace: str, service: str, port: int, protocol: str = "http1") -> str:
    """A Service port's cluster; the same port over HTTP/2 (h2c) is another cluster."""
    name = f"service/{namespace}/{service}/{port}"
    return name if protocol == "http1" else f"{name}/{protocol}"


def http_listener(port: int) -> str:
    return f"http-{port}"


def route_config(port: int) -> str:
    return f"http-{port}"


def virtual_host(port: int, domain: str) -> str:
    return f"http-{port}/{domain}"


def route(kind: str, namespace: str, name: str, rule: int, match: int) -> str:
    return f"{kind.lower()}/{namespace}/{name}/rule/{rule}/match/{match}"


def stream_listener(port: int, tls: bool) -> str:
    """The Envoy listener of a port of HTTPS and TLS listeners ("tls-"), or of a TCP one."""
    return f"tls-{port}" if tls else f"tcp-{port}"


def udp_listener(port: int) -> str:
    return f"udp-{port}"


def https_route_config(port: int, listener: str) -> str:
    """Each HTTPS Gateway listener has its own RouteConfiguration (its filter chain's)."""
    return f"https-{port}-{listener}"


def https_virtual_host(port: int, listener: str, domain: str) -> str:
    return f"https-{port}-{listener}/{domain}"


def filter_chain(protocol: str, port: int, listener: str, server_name: str | None = None) -> str:
    """A filter chain: per HTTPS listener, per TLS listener and SNI name, per TCP listener."""
    name = f"{protocol.lower()}-{port}-{listener}"
    return name if server_name is None else f"{name}/{server_name}"


def secret(namespace: str, name: str) -> str:
    """A TLS Secret's SDS name (the same Secret is one resource, whichever listener uses it)."""
    return f"{namespace}/{name}"
