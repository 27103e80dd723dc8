"""Prometheus metrics of the control plane process (translation and input).

The xDS side has its own in ``xds_server.xds_metrics``. All are served on the admin
address at ``/metrics``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from translator.result import TYPE_KEYS

TRANSLATION_SECONDS = Histogram(
    "gateway_xds_translation_seconds",
    "Time to translate one snapshot of Gateway API objects",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
TRANSLATION_FAILURES = Counter(
    "gateway_xds_translation_failures_total", "Translations that raised (a bug: see the log)"
)
LOAD_ERRORS = Gauge(
    "gateway_xds_load_errors", "Inputs the provider could not load in the current snapshot"
)
SNAPSHOT_VERSION = Gauge(
    "gateway_xds_snapshot_version", "Version of the newest translated provider snapshot"
)
REJECTING_PROXIES = Gauge(
    "gateway_xds_proxies_rejecting",
    "Connected proxies whose last response of a type was rejected (NACK, no ACK since), by type.",
    ["type"],
)
for _label in TYPE_KEYS.values():  # every type exported from the start, at 0
    REJECTING_PROXIES.labels(_label)
STATUS_WRITES = Counter(
    "gateway_xds_status_writes_total",
    "Status subresource work by outcome: written; unchanged (the live status already matched);"
    " conflict (409, retried); refused (4xx such as 422, not retried); failed (5xx or"
    " unreachable, retried); dropped (the queue was full: diffed again later)",
    ["result"],
)
STATUS_RESULTS = ("written", "unchanged", "conflict", "refused", "failed", "dropped")
for _result in STATUS_RESULTS:
    STATUS_WRITES.labels(_result)
STATUS_PENDING = Gauge(
    "gateway_xds_status_pending", "Objects whose status is waiting to be written"
)
LEADER = Gauge(
    "gateway_xds_leader", "1 while this replica holds the status Lease (only the leader writes)"
)
