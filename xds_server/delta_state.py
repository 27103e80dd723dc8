"""Delta (incremental) ADS: the per-stream state machine, without I/O or clock.

The delta server (``xds_server.delta``) folds each DeltaDiscoveryRequest in with
``apply_request`` and asks ``next_response`` what to send towards the stream's Gateway
snapshot; ``record_sent`` notes a response before it is written. Tests drive the same
three functions by hand. ::

    DeltaDiscoveryRequest ─► apply_request ─► subscriptions (wildcard, names, owed answers),
                                               ACK / NACK of the one pending response
    GatewaySnapshot ─────────► next_response ─► DeltaResponse(resources, removed) | None
                                               record_sent ─► what the proxy now holds

Per resource the version is the cache's content digest, so "changed" means "other bytes".
Per type the stream keeps what the proxy holds once every response sent is applied
(``held``), what it ACKed (``acked``), the content it rejected (``rejected``: never sent
again; the next different content is), and the names owed an answer even when unchanged
(a new subscription, an explicit unsubscription under a wildcard, a cluster's endpoints
after the cluster was re-sent). What differs for one type is ``delta_diff``'s answer:
once the proxy holds exactly what the target selects, later changes are read from the
shared snapshot-to-snapshot difference, not by comparing everything, and ``held`` (once
ACKed, ``acked`` too) is the snapshot's own immutable mapping, shared, not a copy.

Following Envoy's xDS protocol documentation (incremental xDS):

- a type's first request with neither subscriptions nor unsubscriptions is a wildcard
  (legacy) for LDS and CDS; "*" subscribes to the wildcard for any type, and
  unsubscribing "*" ends it; the first request is answered even when there is nothing;
- ``initial_resource_versions`` of the first request tell what a reconnecting proxy
  holds: only what differs is sent and what no longer exists is removed;
- subscribing to a name always answers it: the resource, or its name in
  ``removed_resources`` when it does not exist (sent when it appears later);
- subscription changes are honoured whatever nonce the request carries; the nonce only
  pairs an ACK or NACK with the response it answers;
- ``system_version_info`` is the content version of what the proxy holds once it applied
  the response (for debugging, and what a NACK's version refers to).

Ordering is make-before-break, as in ``xds_server.ads``: new and changed clusters first;
endpoints (and secrets) once the EDS subscription covers the clusters the proxy has or
warms (not after the CDS ACK, which Envoy withholds until they warmed), and the endpoints
of every re-sent EDS cluster again so that it finishes warming; listeners after clusters
and endpoints settled; routes after listeners; then removals of clusters, endpoints,
secrets and routes, only once the proxy told us its listeners and the route configs
they load, took the new ones, and rejects none of the target's. Listener removals go with
the listeners. At most one response per type awaits its ACK; what is due is recomputed
from the newest snapshot, never queued.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from translator.result import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    SECRET_TYPE,
    TYPE_ORDER,
)
from xds_server import delta_diff, delta_index, delta_wire
from xds_server.ads import Outcome, node_gateway
from xds_server.cache import GatewaySnapshot, Resource, TypeSet, content_version
from xds_server.clients import Nack
from xds_server.delta_diff import (
    Changes,
    DeltaResponse,
    DeltaTypeState,
    own,
    selection,
    selects_all,
)
from xds_server.streams import shared_names

__all__ = [
    "WILDCARD",
    "DeltaResponse",
    "DeltaStreamState",
    "DeltaTypeState",
    "apply_request",
    "encode_response",
    "new_stream_state",
    "next_response",
    "record_sent",
    "rejecting",
]

WILDCARD = "*"
_LEGACY_WILDCARD_TYPES = frozenset({CLUSTER_TYPE, LISTENER_TYPE})


@dataclass(slots=True)
class DeltaStreamState:
    """Everything the decision function knows about one delta stream."""

    node_id: str
    node_cluster: str
    gateway: str | None
    peer: str = ""
    connected_at: float = 0.0  # wall clock
    types: dict[str, DeltaTypeState] = field(default_factory=dict)
    nonces: int = 0
    eds_needed: frozenset[str] = frozenset()  # EDS names of the clusters Envoy has or warms
    eds_covered: bool = True


def new_stream_state(node: Any, peer: str = "", now: float = 0.0) -> DeltaStreamState:
    """The state of a delta stream whose first request came from ``node``."""
    return DeltaStreamState(
        node_id=str(node.id),
        node_cluster=str(node.cluster),
        gateway=node_gateway(node),
        peer=peer,
        connected_at=now,
        types={t: DeltaTypeState(t) for t in TYPE_ORDER},
    )


# -- requests ---------------------------------------------------------------------------


def _update_coverage(state: DeltaStreamState) -> None:
    eds = state.types[ENDPOINT_TYPE]
    state.eds_covered = eds.wildcard or state.eds_needed <= eds.names


def _set_clusters(state: DeltaStreamState, clusters: Mapping[str, Resource]) -> None:
    """Envoy has (or warms) ``clusters``: EDS must cover their CLAs before it is sent."""
    state.eds_needed = shared_names(r.eds_name for r in clusters.values() if r.eds_name)
    _update_coverage(state)


def _send_clusters(state: DeltaStreamState, response: DeltaResponse) -> None:
    """``_set_clusters`` for the ACKed clusters and ``response``'s, from the change alone.

    ``eds_needed`` holds the EDS names of the ACKed clusters whenever CDS has nothing
    pending (set here, kept by the ACK, recomputed after a NACK or an unsubscription).
    """
    acked = state.types[CLUSTER_TYPE].acked
    touched = {r.name for r in response.resources} | set(response.removed)
    added = {r.eds_name for r in response.resources if r.eds_name}
    dropped = {acked[n].eds_name for n in touched if n in acked and acked[n].eds_name} - added
    if dropped:  # another cluster may load the same CLA
        dropped -= {r.eds_name for n, r in acked.items() if n not in touched}
    if dropped or not added <= state.eds_needed:
        state.eds_needed = shared_names((state.eds_needed - dropped) | added)
    eds = state.types[ENDPOINT_TYPE]
    if state.eds_covered and not dropped:
        state.eds_covered = eds.wildcard or added <= eds.names
    else:
        _update_coverage(state)


def _clusters_in_envoy(cds: DeltaTypeState) -> dict[str, Resource]:
    """The clusters the proxy has ACKed or warms (those of the pending response)."""
    clusters = dict(cds.acked)
    if cds.pending is not None:
        clusters.update((r.name, r) for r in cds.pending.resources if cds.covers(r.name))
        for name in cds.pending.removed:
            clusters.pop(name, None)
    return clusters


def _forget(ts: DeltaTypeState, name: str) -> None:
    """The proxy drops ``name`` (no longer subscribed): nothing more is said about it."""
    if name in ts.held:
        ts.held = held = own(ts.held)
        del held[name]
    if name in ts.acked:
        ts.acked = acked = own(ts.acked)
        del acked[name]
    ts.unknown.pop(name, None)
    ts.rejected.pop(name, None)
    ts.owed.discard(name)


def _first_request(ts: DeltaTypeState, req: Any) -> None:
    subscribe, unsubscribe = req.resource_names_subscribe, req.resource_names_unsubscribe
    if not subscribe and not unsubscribe and ts.type_url in _LEGACY_WILDCARD_TYPES:
        ts.wildcard = True
    ts.wildcard = ts.wildcard or WILDCARD in subscribe
    ts.names = shared_names(set(subscribe) - {WILDCARD} - set(unsubscribe))
    initial = req.initial_resource_versions
    ts.unknown = {name: str(v) for name, v in initial.items() if ts.covers(name)}
    ts.owed = set(ts.names - ts.unknown.keys())
    ts.answer = not initial


def _change_subscription(ts: DeltaTypeState, subscribe: set[str], unsubscribe: set[str]) -> None:
    names = set(ts.names)
    if WILDCARD in subscribe:
        ts.wildcard = True
    for name in unsubscribe - subscribe - {WILDCARD}:
        if name not in names:
            continue  # a phantom unsubscription: nothing to do
        names.discard(name)
        if ts.wildcard:  # the proxy cannot tell whether the wildcard still covers it
            ts.owed.add(name)
        else:
            _forget(ts, name)
    if WILDCARD in unsubscribe - subscribe and ts.wildcard:
        ts.wildcard = False
        for name in list(ts.held.keys() | ts.unknown.keys() | ts.owed):
            if name not in names:
                _forget(ts, name)
    names |= subscribe - {WILDCARD}
    ts.owed |= subscribe - {WILDCARD}  # answered even if the proxy seems to have it
    ts.names = shared_names(names)


def apply_request(state: DeltaStreamState, req: Any, now: float, wall: float) -> Outcome:
    """Fold one DeltaDiscoveryRequest into the stream (``now`` monotonic, ``wall`` epoch)."""
    ts = state.types.get(req.type_url)
    if ts is None:
        return Outcome("unknown_type", req.type_url)
    first = not ts.subscribed
    ts.subscribed = True
    subscribe, unsubscribe = req.resource_names_subscribe, req.resource_names_unsubscribe
    if first or subscribe or unsubscribe:
        if first:
            _first_request(ts, req)
        else:
            _change_subscription(ts, set(subscribe), set(unsubscribe))
        ts.touch()
        if ts.type_url == ENDPOINT_TYPE:
            _update_coverage(state)
        elif ts.type_url == CLUSTER_TYPE and not first:  # clusters may have been dropped
            _set_clusters(state, _clusters_in_envoy(ts))
    pending = ts.pending
    if not req.response_nonce:
        return Outcome("initial" if first else "update", ts.type_url)
    if pending is None or req.response_nonce != ts.nonce:
        return Outcome("stale", ts.type_url)  # subscription changes were applied above
    ts.pending = None
    latency = now - ts.sent_at
    if req.HasField("error_detail"):
        nack = _nacked(state, ts, pending, req, wall)
        return Outcome("nack", ts.type_url, nack.version, nack.message, latency)
    _acked(ts, pending)
    return Outcome("ack", ts.type_url, pending.version, latency=latency)


def _acked(ts: DeltaTypeState, response: DeltaResponse) -> None:
    rejected = len(ts.rejected)
    if ts.acked_after is not None and ts.acked_after is ts.held:  # a shared mapping
        ts.acked = ts.held
        ts.acked_after = None
    else:
        ts.acked = acked = own(ts.acked)  # what it no longer asks for, it dropped
        acked.update((r.name, r) for r in response.resources if ts.covers(r.name))
        for name in response.removed:
            acked.pop(name, None)
    if rejected:  # accepted new content; a removal leaves the rejected content rejected
        for resource in response.resources:
            ts.rejected.pop(resource.name, None)
    ts.nack_standing = False
    ts.acks += 1
    if len(ts.rejected) != rejected:
        ts.touch()
    # The clusters' EDS names are those set when the response was sent (_send_clusters).


def _nacked(
    state: DeltaStreamState, ts: DeltaTypeState, response: DeltaResponse, req: Any, wall: float
) -> Nack:
    for resource in response.resources:
        ts.rejected[resource.name] = resource.digest
    ts.nack = Nack(response.version, str(req.error_detail.message), wall)
    ts.nack_standing = True
    ts.acked_after = None
    ts.touch()
    if ts.type_url == CLUSTER_TYPE:  # only the clusters Envoy accepted need endpoints
        _set_clusters(state, ts.acked)
    return ts.nack


# -- decisions --------------------------------------------------------------------------


def _adopt(state: DeltaStreamState, ts: DeltaTypeState, target: TypeSet) -> None:
    """A reconnecting proxy that named the version we would send holds that resource."""
    adopted = False
    for name, version in list(ts.unknown.items()):
        resource = target.by_name.get(name)
        if resource is not None and resource.digest == version:
            del ts.unknown[name]
            held, acked = own(ts.held), own(ts.acked)
            held[name] = acked[name] = resource
            ts.held, ts.acked = held, acked
            adopted = True
    if adopted:
        ts.touch()
        if ts.type_url == CLUSTER_TYPE:
            _set_clusters(state, ts.acked)


def _due(ts: DeltaTypeState, changes: Changes, removals: bool) -> Changes | None:
    """What is due for one type now (``removals``: held resources may be removed)."""
    if not ts.subscribed or ts.pending is not None:
        return None
    removed = changes.removed_now + changes.removed_later if removals else changes.removed_now
    if not (changes.updates or removed or ts.answer):
        return None
    return Changes(changes.updates, removed, ())


def _settled(ts: DeltaTypeState, changes: Changes) -> bool:
    return ts.pending is None and _due(ts, changes, removals=False) is None


def _version_after(ts: DeltaTypeState, due: Changes, complete: bool, target: TypeSet) -> str:
    """The content version of what the proxy holds once it applied ``due``."""
    if complete:  # it then holds exactly the selection
        if selects_all(ts, target):
            return target.version
        return content_version(selection(ts, target).values())
    after = {**ts.held, **{r.name: r for r in due.updates}}
    for name in due.removed_now:
        after.pop(name, None)
    return content_version(after.values())


def _rejects(ts: DeltaTypeState, target: TypeSet) -> bool:
    """Whether the proxy rejected content the target still has (it runs older content)."""
    by_name = target.by_name
    return any(
        (r := by_name.get(name)) is not None and r.digest == digest
        for name, digest in ts.rejected.items()
    )


def _routing_known(lds: DeltaTypeState, rds: DeltaTypeState) -> bool:
    """Whether the proxy told us its listeners and every route config they load.

    Until then it may route with configuration this stream has not heard of (a reconnect
    sends all its subscriptions at once, but the first one is handled alone).
    """
    if not lds.subscribed:
        return False
    return rds.wildcard or all(
        delta_index.route_names(listener) <= rds.names for listener in lds.held.values()
    )


def next_response(state: DeltaStreamState, target: GatewaySnapshot | None) -> DeltaResponse | None:
    """The next response this stream should get towards ``target``, or None for now."""
    if target is None:
        return None
    types, sets = state.types, target.types
    for type_url in TYPE_ORDER:
        if types[type_url].unknown:
            _adopt(state, types[type_url], sets[type_url])
    changes = {t: delta_diff.changes(types[t], sets[t]) for t in TYPE_ORDER}

    def settled(type_url: str) -> bool:
        return _settled(types[type_url], changes[type_url])

    lds, rds = types[LISTENER_TYPE], types[ROUTE_TYPE]
    covered = state.eds_covered
    clusters_done = covered and settled(CLUSTER_TYPE)
    endpoints_done = clusters_done and settled(ENDPOINT_TYPE) and settled(SECRET_TYPE)
    listeners_done = endpoints_done and settled(LISTENER_TYPE)
    # What the proxy no longer needs goes only once it took the new listeners and routes:
    # after a NACK it still runs its old ones, which may use the old clusters.
    cleanup = (
        listeners_done
        and settled(ROUTE_TYPE)
        and _routing_known(lds, rds)
        and not _rejects(lds, sets[LISTENER_TYPE])
        and not _rejects(rds, sets[ROUTE_TYPE])
    )
    allowed = {
        CLUSTER_TYPE: True,
        ENDPOINT_TYPE: covered,
        SECRET_TYPE: covered,
        LISTENER_TYPE: endpoints_done,
        ROUTE_TYPE: listeners_done,
    }
    cds_pending = types[CLUSTER_TYPE].pending is not None
    for type_url in TYPE_ORDER:
        ts, found = types[type_url], changes[type_url]
        removals = cleanup and (type_url == CLUSTER_TYPE or not cds_pending)
        due = _due(ts, found, removals) if allowed[type_url] else None
        if due is not None:
            complete = removals or not found.removed_later
            version = _version_after(ts, due, complete, sets[type_url])
            return DeltaResponse(type_url, version, due.updates, due.removed_now)
    return None


def _refresh_endpoints(state: DeltaStreamState, before: Mapping[str, Resource], sent: Any) -> None:
    """Re-send the CLA of each EDS cluster added or changed: Envoy warms it until then."""
    eds = state.types[ENDPOINT_TYPE]
    for resource in sent:
        old = before.get(resource.name)
        changed = old is None or old.digest != resource.digest
        if resource.eds_name and changed and eds.covers(resource.eds_name):
            eds.owed.add(resource.eds_name)


def _completes(ts: DeltaTypeState, response: DeltaResponse) -> TypeSet | None:
    """The target whose selection the proxy holds once ``response`` is applied, if any."""
    memo = ts.memo
    if memo is None or memo[1] != ts.generation or memo[2] != ts.owed:
        return None
    changes = memo[3]
    complete = changes.exact and changes.removed_now + changes.removed_later == response.removed
    return memo[0] if complete and changes.updates == response.resources else None


def record_sent(state: DeltaStreamState, response: DeltaResponse, now: float) -> str:
    """Record ``response`` as sent (before writing it: the ACK may come back at once)."""
    state.nonces += 1
    nonce = str(state.nonces)
    ts = state.types[response.type_url]
    reached = _completes(ts, response)
    if response.type_url == CLUSTER_TYPE:
        _refresh_endpoints(state, ts.held, response.resources)
    if ts.unknown or ts.owed:
        for name in (*(r.name for r in response.resources), *response.removed):
            ts.unknown.pop(name, None)
            ts.owed.discard(name)
        if not ts.owed:
            ts.owed = set()  # a set keeps its table when emptied: let it go
    in_step = ts.held is ts.acked  # the proxy holds what it ACKed: so it will once more
    if reached is not None and not ts.unknown and selects_all(ts, reached):
        ts.held = reached.by_name  # exactly the target: share the snapshot's mapping
    else:
        ts.held = held = own(ts.held)
        held.update((r.name, r) for r in response.resources)
        for name in response.removed:
            held.pop(name, None)
    ts.acked_after = ts.held if in_step and not isinstance(ts.held, dict) else None
    if response.type_url == CLUSTER_TYPE:  # the ACKed clusters and those now warming
        _send_clusters(state, response)
    ts.version, ts.nonce, ts.pending, ts.sent_at = response.version, nonce, response, now
    ts.answer = False
    ts.touch()
    ts.base = (reached, ts.generation) if reached is not None else None
    return nonce


def encode_response(response: DeltaResponse, nonce: str) -> bytes:
    """The serialized DeltaDiscoveryResponse (shared resource bytes, framed)."""
    return delta_wire.delta_response(
        response.version, response.resources, response.type_url, nonce, response.removed
    )


def rejecting(state: DeltaStreamState) -> bool:
    """Whether the proxy rejected a response of some type and ACKed none of it since."""
    return any(ts.nack_standing for ts in state.types.values())
