"""The ``gateway-xds.io/ProxiesAccepted`` condition: do a Gateway's connected proxies accept it?

Who calls it: the control plane (``xds_server.app``). The translator cannot know whether Envoy
accepted what it produced, so this condition is added to each of our Gateways' status after
translation: ``GatewayStatuses`` holds the list ``/api/status`` shows (the translator's stamped
entries, with this condition merged into every Gateway entry) and ``RejectionTracker``
recounts rejections from the ADS servers' ClientViews whenever one of a Gateway's proxies
connects, disconnects, NACKs, or ACKs after a NACK (``on_sync_change``). ::

    apply() (translation thread) ── set_translated(entries) ──┐
                                                              ├─► GatewayStatuses.entries
    on_sync_change (event loop) ─► RejectionTracker.changed ──┘     (under one lock)
                                     └─ coalesced: views() ─► rejections() ─► set_rejections()

The condition is True (reason ``Accepted``) while no connected proxy rejects the Gateway's
config, else False (reason ``Rejected``) naming which proxies rejected which type and
version, with Envoy's message (trimmed). Messages depend only on the rejections, never on
how many proxies are connected, so status does not churn as proxies come and go;
lastTransitionTime follows ``xds_server.status`` rules.

What it must not do: block the event loop (a recount runs at most once per loop turn and
is spaced so it takes at most a tenth of the loop's time), or touch objects other than
the Gateways in the translator's status (ours).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from translator.result import TYPE_KEYS, TYPE_ORDER
from xds_server import app_metrics, status
from xds_server.clients import ClientView

log = structlog.get_logger(__name__)

CONDITION_TYPE = "gateway-xds.io/ProxiesAccepted"
ACCEPTED_MESSAGE = "No connected proxy rejects the configuration of this Gateway"
MAX_GROUPS = 3  # distinct (type, version, message) rejections named in a message
MAX_NODES = 3  # node ids named per rejection
MAX_ENVOY_MESSAGE = 300  # characters of Envoy's message kept per rejection


@dataclass(frozen=True, slots=True)
class Rejection:
    """One proxy (node id) rejecting one type of its Gateway's config."""

    node_id: str
    type_url: str
    version: str
    message: str


def rejections(views: Iterable[ClientView]) -> dict[str, tuple[Rejection, ...]]:
    """Standing rejections by Gateway ("ns/name"), sorted; Gateways without any are absent."""
    found: dict[str, set[Rejection]] = {}
    for view in views:
        if view.gateway is None:
            continue
        for type_url, nack in view.rejected.items():
            rejection = Rejection(view.node_id, type_url, nack.version, _trim(nack.message))
            found.setdefault(view.gateway, set()).add(rejection)
    return {g: tuple(sorted(rs, key=_order)) for g, rs in found.items()}


def merge_rejections(
    reports: Iterable[Mapping[str, tuple[Rejection, ...]]],
) -> dict[str, tuple[Rejection, ...]]:
    """The union of several ``rejections()`` results (e.g. every replica's), sorted alike."""
    found: dict[str, set[Rejection]] = {}
    for report in reports:
        for gateway, items in report.items():
            found.setdefault(gateway, set()).update(items)
    return {g: tuple(sorted(rs, key=_order)) for g, rs in found.items() if rs}


def _order(rejection: Rejection) -> tuple[int, str, str, str]:
    rank = TYPE_ORDER.index(rejection.type_url) if rejection.type_url in TYPE_ORDER else 99
    return (rank, rejection.version, rejection.message, rejection.node_id)


def _trim(message: str) -> str:
    text = " ".join(message.split())
    if len(text) > MAX_ENVOY_MESSAGE:
        return text[: MAX_ENVOY_MESSAGE - 3] + "..."
    return text


def rejected_message(found: Sequence[Rejection]) -> str:
    """Which proxies rejected which type and version, and why (bounded, stable)."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for r in found:
        groups.setdefault((r.type_url, r.version, r.message), []).append(r.node_id)
    parts = []
    for (type_url, version, message), nodes in list(groups.items())[:MAX_GROUPS]:
        names = ", ".join(sorted(set(nodes))[:MAX_NODES])
        if len(set(nodes)) > MAX_NODES:
            names += " and other proxies"
        kind = TYPE_KEYS.get(type_url, type_url)
        parts.append(f"{names} rejected {kind} version {version}: {_trim(message)}")
    if len(groups) > MAX_GROUPS:
        parts.append("and other rejections (see /api/clients)")
    return "; ".join(parts)


def condition(found: Sequence[Rejection], generation: int | None) -> dict[str, Any]:
    """The condition (without lastTransitionTime) for a Gateway with these rejections."""
    out: dict[str, Any] = {"type": CONDITION_TYPE}
    if found:
        out |= {"status": "False", "reason": "Rejected", "message": rejected_message(found)}
    else:
        out |= {"status": "True", "reason": "Accepted", "message": ACCEPTED_MESSAGE}
    if generation is not None:
        out["observedGeneration"] = generation
    return out


def gateway_key(entry: Mapping[str, Any]) -> str | None:
    """ "ns/name" of a Gateway status entry; None for other kinds."""
    if entry.get("kind") != "Gateway":
        return None
    metadata = entry.get("metadata", {})
    return f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"


def _generation(entry: Mapping[str, Any]) -> int | None:
    for c in entry.get("status", {}).get("conditions", ()):
        if isinstance(c.get("observedGeneration"), int):
            return int(c["observedGeneration"])
    return None


def _utc_now() -> datetime:
    return datetime.now(UTC)


class GatewayStatuses:
    """The status list shown by ``/api/status``: translator entries + ProxiesAccepted.

    ``set_translated`` may run on any thread (translation runs in an executor);
    ``set_rejections`` runs on the event loop. Both hold one lock for the merge only.
    """

    def __init__(self, clock: Callable[[], datetime] = _utc_now) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []
        self._positions: dict[str, int] = {}  # Gateway key -> index in _entries
        self._rejections: Mapping[str, tuple[Rejection, ...]] = {}  # local + peers
        self._local: Mapping[str, tuple[Rejection, ...]] = {}  # this replica's proxies
        self._peers: Mapping[str, tuple[Rejection, ...]] = {}  # other replicas' (if leading)

    @property
    def entries(self) -> list[dict[str, Any]]:
        """The current list (replaced, never mutated, on every change)."""
        return self._entries

    def rejections_of(self, gateway: str) -> tuple[Rejection, ...]:
        return self._rejections.get(gateway, ())

    @property
    def local_rejections(self) -> Mapping[str, tuple[Rejection, ...]]:
        """This replica's proxies' rejections (a new mapping whenever they change)."""
        return self._local

    def set_translated(self, entries: Iterable[dict[str, Any]]) -> None:
        """New translator entries (already stamped): merge the condition into each Gateway."""
        with self._lock:
            now = self._clock()
            previous = {key: self._entries[i] for key, i in self._positions.items()}
            merged: list[dict[str, Any]] = []
            positions: dict[str, int] = {}
            for entry in entries:
                key = gateway_key(entry)
                if key is not None:
                    positions[key] = len(merged)
                    merged.append(self._merge(entry, key, previous.get(key), now))
                else:
                    merged.append(entry)  # never mutated: shared, not copied
            self._entries, self._positions = merged, positions

    def set_rejections(self, found: Mapping[str, tuple[Rejection, ...]]) -> list[str]:
        """Replace this replica's standing rejections; the Gateways whose condition was redone."""
        with self._lock:
            if found == self._local:
                return []
            self._local = dict(found)
            return self._combine()

    def set_peer_rejections(self, found: Mapping[str, tuple[Rejection, ...]]) -> list[str]:
        """Replace the other replicas' rejections; the Gateways whose condition was redone."""
        with self._lock:
            if found == self._peers:
                return []
            self._peers = dict(found)
            return self._combine()

    def _combine(self) -> list[str]:
        """Redo the condition of each Gateway whose combined rejections changed (lock held)."""
        found = merge_rejections((self._local, self._peers))
        old, self._rejections = self._rejections, found
        changed = sorted(g for g in old.keys() | found.keys() if old.get(g) != found.get(g))
        due = [g for g in changed if g in self._positions]
        if due:
            now = self._clock()
            entries = list(self._entries)
            for key in due:
                index = self._positions[key]
                entries[index] = self._merge(entries[index], key, entries[index], now)
            self._entries = entries
        return due

    def _merge(
        self,
        entry: Mapping[str, Any],
        key: str,
        previous: Mapping[str, Any] | None,
        now: datetime,
    ) -> dict[str, Any]:
        """``entry`` with our condition (re)placed last, stamped against ``previous``."""
        body = entry.get("status", {})
        kept = [c for c in body.get("conditions", ()) if c.get("type") != CONDITION_TYPE]
        ours = condition(self._rejections.get(key, ()), _generation(entry))
        candidate = {**entry, "status": {**body, "conditions": [*kept, ours]}}
        before = {status.entry_key(previous): previous} if previous is not None else {}
        return status.stamp([candidate], before, now)[0]


class RejectionTracker:
    """Recounts rejections from ClientViews when told something changed (coalesced)."""

    def __init__(
        self,
        views: Callable[[], Sequence[ClientView]],
        statuses: GatewayStatuses,
        on_redone: Callable[[], None] = lambda: None,
    ) -> None:
        self._views = views
        self._statuses = statuses
        self._on_redone = on_redone  # a Gateway's condition changed (e.g. wake the writer)
        self._handle: asyncio.Handle | None = None
        self._not_before = 0.0  # loop time before which no recount starts

    def changed(self, _gateway: str | None = None) -> None:
        """The ``on_sync_change`` callback (event loop): schedule one recount."""
        if self._handle is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._not_before - loop.time())
        self._handle = loop.call_later(delay, self._run)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _run(self) -> None:
        self._handle = None
        started = time.perf_counter()
        try:
            self.recount()
        except Exception:  # a bug here must not stop the loop's other work
            log.exception("status.proxies_recount_failed")
        cost = time.perf_counter() - started
        self._not_before = asyncio.get_running_loop().time() + 9 * cost

    def recount(self) -> None:
        """Count rejections now: Gateway conditions and the rejecting-proxies gauge."""
        views = self._views()
        found = rejections(views)
        redone = self._statuses.set_rejections(found)
        for gateway in redone:
            log.info(
                "status.proxies_accepted", gateway=gateway, rejections=len(found.get(gateway, ()))
            )
        if redone:
            self._on_redone()
        counts = dict.fromkeys(TYPE_KEYS, 0)
        for view in views:
            for type_url, type_view in view.types.items():
                if type_view.nack is not None and type_url in counts:
                    counts[type_url] += 1
        for type_url, count in counts.items():
            app_metrics.REJECTING_PROXIES.labels(TYPE_KEYS[type_url]).set(count)
