"""Per-resource and per-type sync status (xds_server.sync): ClientView vs the current snapshot."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from test_ads_support import ack, gateway, listener, nack, node, request

from translator.result import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, SECRET_TYPE, TYPE_ORDER
from xds_server import ads
from xds_server.cache import GatewaySnapshot, Resource, SnapshotCache, TypeSet
from xds_server.clients import ClientView, Nack, TypeView
from xds_server.sync import client_sync, type_resources, type_sync

CDS, EDS, LDS, SDS = CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, SECRET_TYPE
BIND_ERROR = "Error adding/updating listener(s) l2: cannot bind '127.0.0.1:10082': in use"


def snapshot(**kwargs: int) -> GatewaySnapshot:
    """A Gateway with listeners l1 (on ``l1``'s port), l2 and l3, and clusters c1, c2."""
    base = gateway(clusters=("c1", "c2"), listener_port=kwargs.get("l1", 10080))
    more = tuple(listener(n, "r1", kwargs.get(n, port)) for n, port in (("l2", 1), ("l3", 2)))
    cache = SnapshotCache()
    cache.set_snapshot({"ns/gw": replace(base, listeners=(*base.listeners, *more))})
    result = cache.get("ns/gw")
    assert result is not None
    return result


OLD = snapshot()
NEW = snapshot(l1=10081, l2=10082, l3=10083)


def pick(snap: GatewaySnapshot, type_url: str, *names: str) -> list[Resource]:
    return [snap.types[type_url].by_name[n] for n in names]


def view(
    type_url: str = LDS,
    *,
    sent: Iterable[Resource] | None = None,
    acked: Iterable[Resource] | None = None,
    pending: bool = False,
    nack_message: str | None = None,
    names: Iterable[str] = (),
    subscribed: bool = True,
) -> TypeView:
    sent_set = TypeSet.of(type_url, sent) if sent is not None else None
    acked_set = TypeSet.of(type_url, acked) if acked is not None else None
    rejection = None
    if nack_message is not None:
        assert sent_set is not None
        rejection = Nack(sent_set.version, nack_message, 1000.0)
    return TypeView(
        type_url=type_url,
        subscribed=subscribed,
        names=frozenset(names),
        sent_version=sent_set.version if sent_set else "",
        sent=sent_set.by_name if sent_set else {},
        pending=pending,
        acked_version=acked_set.version if acked_set else "",
        acked=acked_set.by_name if acked_set else {},
        nack=rejection,
        last_nack=rejection,
    )


def states(type_view: TypeView, snap: GatewaySnapshot | None = NEW) -> dict[str, str]:
    return {r.name: r.state for r in type_resources(type_view, snap)}


CASES = [
    ("acked-current", {"acked": NEW, "sent": NEW}, {"l1": "SYNCED"}),
    ("nothing-sent", {}, {"l1": "NOT_SENT"}),
    ("awaiting-ack", {"acked": OLD, "sent": NEW, "pending": True}, {"l1": "STALE"}),
    ("acked-older", {"acked": OLD, "sent": OLD}, {"l1": "STALE"}),
    ("rejected-current", {"acked": OLD, "sent": NEW, "nack": "bad"}, {"l1": "ERROR"}),
]


@pytest.mark.parametrize(("given", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_one_resource_state(given: dict[str, object], expected: dict[str, str]) -> None:
    """Each state follows from what was sent, ACKed and rejected versus the current content."""
    acked, sent = given.get("acked"), given.get("sent")
    type_view = view(
        sent=pick(sent, LDS, "l1") if isinstance(sent, GatewaySnapshot) else None,
        acked=pick(acked, LDS, "l1") if isinstance(acked, GatewaySnapshot) else None,
        pending=bool(given.get("pending")),
        nack_message=given.get("nack") if isinstance(given.get("nack"), str) else None,
    )
    current = {"l1": NEW.types[LDS].by_name["l1"]}
    assert {n: s for n, s in states(type_view).items() if n in current} == expected


def test_a_nack_naming_one_listener_errors_only_that_one() -> None:
    """Envoy names the listener it refused: that one is ERROR, the others of the response are
    STALE (not confirmed) or SYNCED (ACKed before with the same content)."""
    sent = [*pick(OLD, LDS, "l1"), *pick(NEW, LDS, "l2", "l3")]
    type_view = view(sent=sent, acked=pick(OLD, LDS, "l1"), nack_message=BIND_ERROR)
    current = snapshot(l2=10082, l3=10083)  # l1 unchanged from OLD
    assert states(type_view, current) == {"l1": "SYNCED", "l2": "ERROR", "l3": "STALE"}
    [error] = [r for r in type_resources(type_view, current) if r.state == "ERROR"]
    assert error.nack is not None
    assert error.nack.message == BIND_ERROR
    assert type_sync(type_view, current).rejected == ("l2",)


def test_a_name_inside_another_name_is_not_a_mention() -> None:
    """ "l2" in a message about "l22" does not make l2 a culprit (names are whole words)."""
    type_view = view(sent=pick(NEW, LDS, "l2", "l3"), nack_message="listener l22 refused")
    assert states(type_view)["l2"] == "ERROR"  # no culprit named: every unconfirmed one
    assert states(type_view)["l3"] == "ERROR"


def test_after_a_nack_a_newer_pending_response_is_stale_not_error() -> None:
    """Only the rejected response's content is ERROR; a newer response awaiting ACK is STALE."""
    rejected = view(sent=pick(OLD, LDS, "l1", "l2", "l3"), nack_message="bad")
    newer = replace(
        rejected,
        sent=TypeSet.of(LDS, pick(NEW, LDS, "l1", "l2", "l3")).by_name,
        sent_version=NEW.types[LDS].version,
        pending=True,
    )
    assert set(states(newer).values()) == {"STALE"}
    assert type_sync(newer, NEW).state == "NACKED"  # the rejection stands until an ACK


def test_resources_held_but_no_longer_served_are_stale() -> None:
    """A cluster the proxy ACKed that we no longer serve it is listed, STALE, without current."""
    clusters = pick(OLD, CDS, "c1", "c2")
    served = snapshot()  # same clusters
    cache = SnapshotCache()
    cache.set_snapshot({"ns/gw": gateway(clusters=("c1",))})
    fewer = cache.get("ns/gw")
    assert fewer is not None
    type_view = view(CDS, sent=clusters, acked=clusters)
    assert states(type_view, served) == {"c1": "SYNCED", "c2": "SYNCED"}
    [held] = [r for r in type_resources(type_view, fewer) if r.name == "c2"]
    assert (held.state, held.current, held.acked) == ("STALE", None, clusters[1])
    assert not type_sync(type_view, fewer).in_sync


def test_named_subscriptions_select_only_their_names() -> None:
    """EDS lists only subscribed names that exist; unsubscribed held ones are not listed, but
    the type is in sync only once the proxy ACKed the response for its new subscription."""
    endpoints = pick(NEW, EDS, "c1", "c2")
    type_view = view(EDS, sent=endpoints, acked=endpoints, names=("c1", "missing"))
    assert states(type_view) == {"c1": "SYNCED"}
    summary = type_sync(type_view, NEW)
    assert summary.current_version == NEW.types[EDS].select(frozenset({"c1"})).version
    assert not summary.in_sync  # it still holds c2: a response without it is owed
    narrowed = view(EDS, sent=endpoints[:1], acked=endpoints[:1], names=("c1", "missing"))
    assert type_sync(narrowed, NEW).in_sync


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (
            {"sent": list(NEW.types[LDS].resources), "acked": list(NEW.types[LDS].resources)},
            "SYNCED",
        ),
        ({}, "NOT SENT"),
        ({"sent": list(NEW.types[LDS].resources), "pending": True}, "STALE"),
        ({"sent": list(NEW.types[LDS].resources), "nack_message": "bad"}, "NACKED"),
    ],
    ids=["synced", "not-sent", "stale", "nacked"],
)
def test_type_summary(kwargs: dict[str, object], expected: str) -> None:
    """A type is NACKED while a rejection stands, NOT SENT if never sent, SYNCED or STALE."""
    summary = type_sync(view(**kwargs), NEW)
    assert summary.state == expected
    assert summary.in_sync == (expected == "SYNCED")
    assert summary.current_version == NEW.types[LDS].version


def test_without_a_snapshot_nothing_is_in_sync() -> None:
    """A proxy whose Gateway is unknown is not in sync; never sent means NOT SENT."""
    summary = type_sync(view(), None)
    assert (summary.state, summary.in_sync, summary.current_version) == ("NOT SENT", False, "")


def test_views_of_the_real_state_machine() -> None:
    """A NACK folded in by ads.apply_request shows as ERROR on the refused listener only."""
    state = ads.new_stream_state(node("ns/gw"))
    now = 1.0

    def push(snap: GatewaySnapshot) -> object | None:
        """Send the next due response; return it as the proxy saw it."""
        response = ads.next_response(state, snap)
        if response is None:
            return None
        nonce = ads.record_sent(state, response, now)
        return discovery_pb2.DiscoveryResponse(
            type_url=response.type_url, nonce=nonce, version_info=response.resources.version
        )

    for type_url, names in ((CDS, ()), (EDS, ("c1", "c2")), (LDS, ())):
        ads.apply_request(state, request(type_url, names), now, now)
    while (sent := push(OLD)) is not None:
        ads.apply_request(state, ack(sent, ("c1", "c2") if sent.type_url == EDS else ()), now, now)
    current = snapshot(l2=10082)
    rejected = push(current)
    assert rejected is not None
    assert rejected.type_url == LDS
    ads.apply_request(state, nack(rejected, BIND_ERROR), now, 1234.0)
    client = ads.view(state)
    syncs = client_sync(client, current)
    assert list(syncs) == list(TYPE_ORDER)
    assert {r.name: r.state for r in type_resources(client.types[LDS], current)} == {
        "l1": "SYNCED",
        "l2": "ERROR",
        "l3": "SYNCED",
    }
    assert (syncs[LDS].state, syncs[LDS].rejected) == ("NACKED", ("l2",))
    assert (syncs[CDS].state, syncs[EDS].state) == ("SYNCED", "SYNCED")
    assert syncs[SDS].state == "IGNORED"  # never subscribed


def test_client_view_types_cover_every_type() -> None:
    """client_sync answers every type the view has (nothing subscribed yet: IGNORED)."""
    state = ads.new_stream_state(base_pb2.Node(id="x"))
    client: ClientView = ads.view(state)
    assert {t.state for t in client_sync(client, None).values()} == {"IGNORED"}


@pytest.mark.parametrize(
    ("sent", "acked", "names"),
    [
        (NEW, NEW, ()),
        (OLD, OLD, ()),
        (NEW, OLD, ()),
        (None, None, ()),
        (NEW, NEW, ("l1",)),
        (NEW, NEW, ("l1", "gone")),
        (OLD, OLD, ("l2",)),
    ],
    ids=["same", "older", "pending", "nothing", "one-named", "named-missing", "named-older"],
)
def test_in_sync_by_versions_agrees_with_every_resource(
    sent: GatewaySnapshot | None, acked: GatewaySnapshot | None, names: tuple[str, ...]
) -> None:
    """The summary's version comparison says in sync exactly when every resource is SYNCED."""

    def chosen(snap: GatewaySnapshot | None) -> list[Resource] | None:
        if snap is None:
            return None
        found = snap.types[LDS].resources
        return [r for r in found if not names or r.name in names]

    type_view = view(sent=chosen(sent), acked=chosen(acked), names=names)
    every = all(r.state == "SYNCED" for r in type_resources(type_view, NEW))
    assert type_sync(type_view, NEW).in_sync == every
