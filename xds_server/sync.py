"""Is a proxy in sync? Per resource and per type, from a ClientView and the current snapshot.

Who calls it: every reader of "what does this proxy have compared with what we serve": the
admin API (``/api/clients``, which ``xdsctl proxy-status`` prints) and CSDS
(``xds_server.csds``). Pure functions of a ``ClientView`` (``xds_server.clients``) and the
cache's ``GatewaySnapshot`` of the proxy's Gateway; no I/O, no clock, no gRPC. ::

    ClientView.types[t] ─┐   type_resources() ──► ResourceSync(name, state, ...)  per resource
                         ├─►
    GatewaySnapshot ─────┘   type_sync() ───────► TypeSync(state, in_sync, ...)   per type

Resource states (the names of CSDS's ``ConfigStatus``):

- ``SYNCED``   the proxy ACKed exactly the content we serve now;
- ``STALE``    it has (or was sent and has not confirmed) other content, or holds a resource we
               no longer serve for it;
- ``NOT_SENT`` we serve it, the proxy asked for it (or for everything), nothing was sent yet;
- ``ERROR``    the proxy rejected the response carrying the content we serve now (``nack``
               holds Envoy's message). When Envoy's message names some of the rejected
               response's resources (it does for listeners and clusters) only those are
               ERROR; the others of that response are STALE (not confirmed).

A type's state for tables: ``NACKED`` while a rejection stands, ``IGNORED`` when the proxy
never subscribed to it (SDS of a Gateway without TLS; RDS before listeners), ``NOT SENT``
when it subscribed and nothing of that type was sent yet, else ``SYNCED`` when the version
the proxy ACKed is the version of what we serve it (versions are content hashes), else
``STALE``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from translator.result import CLUSTER_TYPE, LISTENER_TYPE, TYPE_ORDER
from xds_server.cache import GatewaySnapshot, Resource
from xds_server.clients import ClientView, Nack, TypeView

ResourceState = Literal["SYNCED", "STALE", "NOT_SENT", "ERROR"]
TypeState = Literal["SYNCED", "STALE", "NACKED", "NOT SENT", "IGNORED"]

_WILDCARD_TYPES = frozenset({CLUSTER_TYPE, LISTENER_TYPE})
# A mention of a name in Envoy's message must not be part of a longer name: no name character
# before it, and after it none, nor a "." or ":" that continues the name ("l2: cannot" is one).
_BEFORE = r"(?<![\w./:\-])"
_AFTER = r"(?![\w/\-]|[.:][\w/\-])"


@dataclass(frozen=True, slots=True)
class ResourceSync:
    """One resource of one proxy: what we serve, what it has, and how the two compare."""

    type_url: str
    name: str
    state: ResourceState
    current: Resource | None  # what we serve now (None: no longer served to this proxy)
    acked: Resource | None  # what the proxy last ACKed under this name
    sent: Resource | None  # what the last response sent carried under this name
    nack: Nack | None = None  # set when state is ERROR


@dataclass(frozen=True, slots=True)
class TypeSync:
    """One type of one proxy, summed up for tables (``type_resources`` has every resource)."""

    type_url: str
    state: TypeState
    in_sync: bool  # what the proxy ACKed is exactly what we serve it now
    current_version: str  # content version of what we serve it ("" without a snapshot)
    rejected: tuple[str, ...] = ()  # names of the resources in ERROR


def is_wildcard(view: TypeView) -> bool:
    """Whether the subscription asks for every resource of its type."""
    return "*" in view.names or (view.type_url in _WILDCARD_TYPES and not view.names)


def selection(view: TypeView, snapshot: GatewaySnapshot | None) -> Mapping[str, Resource]:
    """The resources of the snapshot this subscription selects (what we serve this proxy)."""
    if snapshot is None:
        return {}
    served = snapshot.types[view.type_url].by_name
    if is_wildcard(view):
        return served
    return {name: served[name] for name in view.names if name in served}


def _same(a: Resource | None, b: Resource | None) -> bool:
    return a is not None and b is not None and a.digest == b.digest


def _mentions(message: str, name: str) -> bool:
    if name not in message:  # the common case, without compiling a pattern per name
        return False
    return re.search(_BEFORE + re.escape(name) + _AFTER, message) is not None


def _rejected(view: TypeView) -> tuple[Mapping[str, Resource], frozenset[str] | None]:
    """The rejected response's resources (when it is the last sent) and Envoy's culprits."""
    nack = view.nack
    if nack is None or view.pending or nack.version != view.sent_version:
        return {}, None
    culprits = frozenset(
        n
        for n, r in view.sent.items()
        if not _same(view.acked.get(n), r) and _mentions(nack.message, n)
    )
    return view.sent, culprits or None


def _state(
    view: TypeView,
    name: str,
    current: Resource | None,
    rejected: Mapping[str, Resource],
    culprits: frozenset[str] | None,
) -> ResourceState:
    acked, sent = view.acked.get(name), view.sent.get(name)
    if current is None:
        return "STALE"
    if _same(acked, current):
        return "SYNCED"
    if _same(rejected.get(name), current):
        return "ERROR" if culprits is None or name in culprits else "STALE"
    if sent is not None or acked is not None:
        return "STALE"
    return "NOT_SENT"


def type_resources(view: TypeView, snapshot: GatewaySnapshot | None) -> tuple[ResourceSync, ...]:
    """Every resource we serve this subscription or it still holds, sorted by name."""
    current = selection(view, snapshot)
    wildcard = is_wildcard(view)
    held = {
        n for n in (*view.acked, *view.sent) if n not in current and (wildcard or n in view.names)
    }
    rejected, culprits = _rejected(view)
    out = []
    for name in sorted({*current, *held}):
        resource = current.get(name)
        state = _state(view, name, resource, rejected, culprits)
        out.append(
            ResourceSync(
                view.type_url,
                name,
                state,
                resource,
                view.acked.get(name),
                view.sent.get(name),
                view.nack if state == "ERROR" else None,
            )
        )
    return tuple(out)


def type_sync(view: TypeView, snapshot: GatewaySnapshot | None) -> TypeSync:
    """The sync of one type of one proxy.

    Versions are content versions (a hash of the sorted names and digests), so the proxy is
    in sync when the version of what it ACKed is the version of what we serve it: no
    per-resource work, except for the names in ERROR while a rejection stands.
    """
    version, in_sync = "", False
    if snapshot is not None:
        served = snapshot.types[view.type_url]
        selected = served if is_wildcard(view) else served.select(view.names)
        version = selected.version
        in_sync = view.acked_version == version or not (view.acked or selected.resources)
    state: TypeState
    if view.nack is not None:
        state = "NACKED"
    elif not (view.sent_version or view.pending or view.sent or view.acked):
        state = "NOT SENT" if view.subscribed else "IGNORED"
    else:
        state = "SYNCED" if in_sync else "STALE"
    rejected: tuple[str, ...] = ()
    if view.nack is not None:
        resources = type_resources(view, snapshot)
        rejected = tuple(r.name for r in resources if r.state == "ERROR")
    return TypeSync(view.type_url, state, in_sync, version, rejected)


def client_sync(view: ClientView, snapshot: GatewaySnapshot | None) -> dict[str, TypeSync]:
    """Every type of one proxy (in ``TYPE_ORDER``), against its Gateway's current snapshot."""
    return {t: type_sync(view.types[t], snapshot) for t in TYPE_ORDER if t in view.types}
