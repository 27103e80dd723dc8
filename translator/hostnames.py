"""Hostname matching as the Gateway API defines it.

A hostname is exact ("foo.example.com"), a wildcard ("*.example.com": one or more labels in
front of example.com, never example.com itself) or "*" (any). Used by route attachment
(intersection of listener and route hostnames) and by virtual host assembly (which listener
owns a domain, and in what order routes of different hostnames are tried).
"""

from __future__ import annotations

from collections.abc import Iterable

ANY = "*"


def covers(pattern: str | None, host: str) -> bool:
    """True if every name ``host`` stands for is matched by ``pattern`` (None matches all)."""
    if pattern is None or pattern in {ANY, host}:
        return True
    if pattern.startswith("*."):
        suffix = pattern[1:]
        return host.endswith(suffix) and len(host) > len(suffix) and host != ANY
    return False


def intersect(listener: str | None, route: Iterable[str]) -> tuple[str, ...]:
    """Hostnames a route serves on a listener; empty when they have none in common."""
    route = tuple(route)
    if not route:
        return (listener or ANY,)
    found: list[str] = []
    for host in route:
        if covers(listener, host):
            found.append(host)
        elif covers(host, listener or ANY) and listener is not None:
            found.append(listener)
    return tuple(dict.fromkeys(found))


def specificity(host: str | None) -> tuple[int, int]:
    """Sort key: exact names first, then longer wildcards, then "*" / no hostname."""
    if host is None or host == ANY:
        return (2, 0)
    if host.startswith("*."):
        return (1, -len(host))
    return (0, -len(host))


def patterns_covering(host: str) -> tuple[str, ...]:
    """Every hostname pattern that ``covers`` ``host``: itself, its wildcard suffixes, "*"."""
    if host == ANY:
        return (ANY,)
    labels = host.split(".")
    start = 2 if host.startswith("*.") else 1
    wildcards = tuple("*." + ".".join(labels[i:]) for i in range(start, len(labels)))
    return (host, *wildcards, ANY)
