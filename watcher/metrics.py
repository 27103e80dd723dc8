"""Prometheus metrics of the providers (served by the admin API's ``/metrics``).

Module-level collectors in prometheus_client's default registry; the providers update them
and nothing else should. No labels: one provider runs per process.
"""

from __future__ import annotations

from prometheus_client import Histogram

DEBOUNCE_SECONDS = Histogram(
    "gateway_xds_debounce_seconds",
    "Time from the first input change a provider detected to the snapshot it published.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
