"""The one place that decides the names of Envoy resources.

Names depend only on what a resource stands for, never on positions of rules, so that
reordering rules or routes leaves cluster names (and so Envoy's warm clusters) alone.
"""

from __future__ import annotations

INVALID_BACKEND = "gateway-xds-invalid-backend"  # never defined: Envoy answers 500 for it


def cluster(namespace: str, service: str, port: int) -> str:
    return f"service/{namespace}/{service}/{port}"


def http_listener(port: int) -> str:
    return f"http-{port}"


def route_config(port: int) -> str:
    return f"http-{port}"


def virtual_host(port: int, domain: str) -> str:
    return f"http-{port}/{domain}"


def route(kind: str, namespace: str, name: str, rule: int, match: int) -> str:
    return f"{kind.lower()}/{namespace}/{name}/rule/{rule}/match/{match}"
