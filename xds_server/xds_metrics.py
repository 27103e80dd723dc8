"""Prometheus metrics of the xDS side: the snapshot cache and the ADS streams.

Module-level collectors in prometheus_client's default registry, which the admin HTTP
server exposes on ``/metrics``. The cache (``xds_server.cache``) and the ADS server
(``xds_server.ads``) update them; nothing else should. Labels are bounded: ``type`` is
one of the keys of ``translator.result.TYPE_KEYS`` ("clusters", "endpoints", "secrets",
"listeners", "routes"), never a node id, gateway or resource name. Tests read values
before and after (``REGISTRY.get_sample_value``) rather than assume absolute counts.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from translator.result import TYPE_KEYS


def type_label(type_url: str) -> str:
    """The ``type`` label of an xDS type URL ("clusters", "routes", ...; "other" if unknown)."""
    return TYPE_KEYS.get(type_url, "other")


CONNECTED_PROXIES = Gauge(
    "gateway_xds_connected_proxies",
    "ADS streams currently open (one per connected proxy).",
)
RESPONSES_SENT = Counter(
    "gateway_xds_responses_sent",
    "DiscoveryResponses sent to proxies, by xDS type.",
    ["type"],
)
ACKS = Counter(
    "gateway_xds_acks",
    "DiscoveryResponses acknowledged (ACK) by proxies, by xDS type.",
    ["type"],
)
NACKS = Counter(
    "gateway_xds_nacks",
    "DiscoveryResponses rejected (NACK) by proxies, by xDS type.",
    ["type"],
)
PUSH_TO_ACK_SECONDS = Histogram(
    "gateway_xds_push_to_ack_seconds",
    "Time from sending a DiscoveryResponse to receiving its ACK, by xDS type.",
    ["type"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SNAPSHOTS = Counter(
    "gateway_xds_snapshots",
    "Snapshots set in the cache (one per translation).",
)
SNAPSHOT_SECONDS = Histogram(
    "gateway_xds_snapshot_seconds",
    "Time to serialize and index one snapshot in the cache.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
RESOURCES_ENCODED = Counter(
    "gateway_xds_resources_encoded",
    "Resources whose content was new to the cache and were encoded into response bytes.",
    ["type"],
)
