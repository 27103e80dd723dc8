"""``/api/clients``: every connected proxy as JSON, from ClientViews and the current snapshots.

Who calls it: the admin API (``xds_server.admin``); ``xdsctl proxy-status`` prints what it
returns. One entry per stream (SotW or delta), sorted by Gateway and node id::

    {"node": {"id", "cluster"}, "gateway", "protocol", "peer", "connected_since",
     "types": {"clusters" | "endpoints" | "secrets" | "listeners" | "routes": {
         "status": "SYNCED" | "STALE" | "NACKED" | "NOT SENT" | "IGNORED",
         "in_sync": bool,            # ACKed == what we serve this proxy now
         "subscribed", "resource_names", "sent_version", "pending", "acked_version",
         "current_version",          # content version of what we serve this proxy now
         "nack": {"version", "message", "at"} | null,       # the rejection that stands
         "last_nack": {...} | null,                          # the latest, even if superseded
         "rejected_resources": [names in ERROR]}}}

Pure: reads views and snapshots, writes nothing; the clock is the views' timestamps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from translator.result import TYPE_KEYS
from xds_server.cache import GatewaySnapshot
from xds_server.clients import ClientView, Nack, TypeView
from xds_server.sync import TypeSync, client_sync


def iso(epoch: float) -> str:
    """An epoch time as ISO 8601 in UTC."""
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def nack_json(nack: Nack | None) -> dict[str, str] | None:
    if nack is None:
        return None
    return {"version": nack.version, "message": nack.message, "at": iso(nack.at)}


def _type_json(view: TypeView, sync: TypeSync) -> dict[str, Any]:
    return {
        "status": sync.state,
        "in_sync": sync.in_sync,
        "subscribed": view.subscribed,
        "resource_names": sorted(view.names),
        "sent_version": view.sent_version,
        "pending": view.pending,
        "acked_version": view.acked_version,
        "current_version": sync.current_version,
        "nack": nack_json(view.nack),
        "last_nack": nack_json(view.last_nack),
        "rejected_resources": list(sync.rejected),
    }


def client_json(view: ClientView, snapshot: GatewaySnapshot | None) -> dict[str, Any]:
    """One proxy as JSON-able data."""
    syncs = client_sync(view, snapshot)
    return {
        "node": {"id": view.node_id, "cluster": view.node_cluster},
        "gateway": view.gateway,
        "protocol": view.protocol,
        "peer": view.peer,
        "connected_since": iso(view.connected_at),
        "types": {TYPE_KEYS[t]: _type_json(view.types[t], sync) for t, sync in syncs.items()},
    }


def clients_json(
    views: Iterable[ClientView], snapshot_of: Callable[[str | None], GatewaySnapshot | None]
) -> list[dict[str, Any]]:
    """Every proxy, sorted by (Gateway, node id, stream)."""
    ordered = sorted(views, key=lambda v: (v.gateway or "", v.node_id, v.stream_id))
    return [client_json(v, snapshot_of(v.gateway)) for v in ordered]
