"""Text for ``xdsctl proxy-status``: the ``/api/clients`` entries as a table and an error list.

Who calls it: ``xds_server.cli`` with the JSON it fetched from a running server's admin API
(shape in ``xds_server.client_report``). Pure: strings in, strings out; no I/O. ::

    NODE                    GATEWAY     PROTOCOL  CDS              EDS  LDS              ...
    gateway-xds-default-gw  default/gw  sotw      SYNCED 1a2b3c4d  ...  NACKED 9779f4ef  ...

    Last errors (NACKs):
      gateway-xds-default-gw (default/gw) listeners version 9779f4ef5f4e0dbc, 2026-...: <Envoy>

A type is SYNCED (the proxy ACKed what we serve it now), STALE (it has something else, or a
response awaits its ACK: "STALE (pending)"), NACKED (it rejected the last response of that
type; the error list says why), NOT SENT (nothing of that type was sent to it) or IGNORED
(it never subscribed to that type).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

COLUMNS: tuple[tuple[str, str], ...] = (
    ("CDS", "clusters"),
    ("EDS", "endpoints"),
    ("LDS", "listeners"),
    ("RDS", "routes"),
    ("SDS", "secrets"),
)
SHORT = 8  # characters of a version shown in the table


def cell(entry: Mapping[str, Any]) -> str:
    """One type's column: its state and a short version."""
    state = str(entry.get("status", "?"))
    if state == "NACKED" and entry.get("nack"):
        return f"NACKED {str(entry['nack']['version'])[:SHORT]}"
    if state == "SYNCED":
        return f"SYNCED {str(entry.get('acked_version', ''))[:SHORT]}".rstrip()
    if state == "STALE":
        if entry.get("pending"):
            return "STALE (pending)"
        acked = str(entry.get("acked_version", ""))[:SHORT]
        return f"STALE {acked}" if acked else "STALE"
    return state


def _row(client: Mapping[str, Any]) -> list[str]:
    types = client.get("types", {})
    cells = [cell(types[key]) if key in types else "-" for _, key in COLUMNS]
    node = client.get("node", {})
    return [str(node.get("id", "")), str(client.get("gateway") or "-"), client["protocol"], *cells]


def table(rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _errors(clients: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = []
    for client in clients:
        who = f"{client.get('node', {}).get('id', '')} ({client.get('gateway') or '-'})"
        for key, entry in client.get("types", {}).items():
            nack, last = entry.get("nack"), entry.get("last_nack")
            shown, note = (nack, "") if nack else (last, " (a later version was accepted)")
            if not shown:
                continue
            message = " ".join(str(shown["message"]).split())
            version = shown["version"]
            lines.append(f"  {who} {key} version {version}, {shown['at']}{note}: {message}")
    return lines


def render(clients: Sequence[Mapping[str, Any]]) -> str:
    """The whole proxy-status output."""
    if not clients:
        return "No proxies are connected.\n"
    header = ["NODE", "GATEWAY", "PROTOCOL", *(name for name, _ in COLUMNS)]
    out = table([header, *(_row(c) for c in clients)])
    errors = _errors(clients)
    if errors:
        out += "\nLast errors (NACKs):\n" + "\n".join(errors) + "\n"
    return out
