"""What ``translate()`` returns: Envoy resources per Gateway and the status of every object.

The ADS server (xds_server) serializes these messages once per version; the CLI prints them
as proto3 JSON. Messages are the official generated classes of ``xds-protos``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE_TYPE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT_TYPE = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
SECRET_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"  # noqa: S105 (a type URL)

# The order in which a change reaches a proxy: what is referenced before what refers to it.
TYPE_ORDER = (CLUSTER_TYPE, ENDPOINT_TYPE, SECRET_TYPE, LISTENER_TYPE, ROUTE_TYPE)

# Keys of translate's JSON output per Gateway, by type URL.
TYPE_KEYS: Mapping[str, str] = {
    LISTENER_TYPE: "listeners",
    ROUTE_TYPE: "routes",
    CLUSTER_TYPE: "clusters",
    ENDPOINT_TYPE: "endpoints",
    SECRET_TYPE: "secrets",
}

# A status entry exactly as translate and /api/status print it:
# {"apiVersion", "kind", "metadata": {"namespace", "name"}, "status"}.
StatusEntry = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class GatewayResources:
    """The Envoy resources of one Gateway, each tuple sorted by resource name."""

    listeners: tuple[Any, ...] = ()
    routes: tuple[Any, ...] = ()
    clusters: tuple[Any, ...] = ()
    endpoints: tuple[Any, ...] = ()
    secrets: tuple[Any, ...] = ()

    def by_type(self) -> dict[str, tuple[Any, ...]]:
        """Resources keyed by type URL."""
        return {
            LISTENER_TYPE: self.listeners,
            ROUTE_TYPE: self.routes,
            CLUSTER_TYPE: self.clusters,
            ENDPOINT_TYPE: self.endpoints,
            SECRET_TYPE: self.secrets,
        }


@dataclass(frozen=True, slots=True)
class TranslationResult:
    """Resources of every Gateway we program (key "namespace/name") and every status entry."""

    gateways: Mapping[str, GatewayResources] = field(default_factory=dict)
    statuses: tuple[StatusEntry, ...] = ()
