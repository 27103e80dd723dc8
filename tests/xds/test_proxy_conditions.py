"""The gateway-xds.io/ProxiesAccepted condition: rejections from views, merged into status."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import REGISTRY

from translator.result import CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE, TYPE_ORDER
from xds_server.clients import ClientView, Nack, TypeView
from xds_server.proxy_conditions import (
    ACCEPTED_MESSAGE,
    CONDITION_TYPE,
    MAX_ENVOY_MESSAGE,
    GatewayStatuses,
    Rejection,
    RejectionTracker,
    condition,
    rejections,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BIND = "Error adding/updating listener(s) http-8080: cannot bind '0.0.0.0:8080': in use\n"


def client(
    node_id: str, gateway: str | None = "ns/gw", nacks: dict[str, str] | None = None
) -> ClientView:
    types = {t: TypeView(t) for t in TYPE_ORDER}
    for type_url, message in (nacks or {}).items():
        rejection = Nack("v1", message, 1.0)
        types[type_url] = replace(types[type_url], nack=rejection, last_nack=rejection)
    return ClientView(1, "sotw", node_id, "", gateway, "peer", 0.0, types)


def gateway_entry(name: str = "gw", generation: int = 3) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"namespace": "ns", "name": name},
        "status": {
            "conditions": [
                {
                    "type": "Accepted",
                    "status": "True",
                    "reason": "Accepted",
                    "message": "Gateway is accepted",
                    "observedGeneration": generation,
                    "lastTransitionTime": "2025-12-31T00:00:00Z",
                }
            ],
            "listeners": [],
        },
    }


ROUTE_ENTRY = {"kind": "HTTPRoute", "metadata": {"namespace": "ns", "name": "r"}, "status": {}}


def ours(entry: dict[str, Any]) -> dict[str, Any]:
    [found] = [c for c in entry["status"]["conditions"] if c["type"] == CONDITION_TYPE]
    return found


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_rejections_by_gateway_sorted_and_deduplicated() -> None:
    """Standing NACKs group by Gateway; proxies without a Gateway or NACK are left out."""
    views = [
        client("b", nacks={ROUTE_TYPE: "bad route"}),
        client("a", nacks={LISTENER_TYPE: BIND, CLUSTER_TYPE: "bad cluster"}),
        client("a", nacks={LISTENER_TYPE: BIND}),  # the same node id twice: one rejection
        client("c", "ns/other"),
        client("d", None, nacks={LISTENER_TYPE: BIND}),
    ]
    found = rejections(views)
    assert list(found) == ["ns/gw"]
    assert [(r.node_id, r.type_url) for r in found["ns/gw"]] == [
        ("a", CLUSTER_TYPE),
        ("a", LISTENER_TYPE),
        ("b", ROUTE_TYPE),
    ]


def test_condition_true_and_false() -> None:
    """True/Accepted with a fixed message; False/Rejected naming node, type, version, reason."""
    accepted = condition((), 3)
    assert accepted == {
        "type": CONDITION_TYPE,
        "status": "True",
        "reason": "Accepted",
        "message": ACCEPTED_MESSAGE,
        "observedGeneration": 3,
    }
    rejected = condition((Rejection("proxy-1", LISTENER_TYPE, "abc123", BIND),), None)
    assert (rejected["status"], rejected["reason"]) == ("False", "Rejected")
    assert rejected["message"] == (
        "proxy-1 rejected listeners version abc123: Error adding/updating listener(s) "
        "http-8080: cannot bind '0.0.0.0:8080': in use"
    )
    assert "observedGeneration" not in rejected


def test_condition_message_is_bounded() -> None:
    """Long Envoy messages are trimmed; many proxies or rejections are summarised."""
    many = tuple(Rejection(f"p{i}", LISTENER_TYPE, "v", "x" * 5000) for i in range(50))
    others = tuple(Rejection("p", ROUTE_TYPE, f"v{i}", "bad") for i in range(10))
    message = condition(many + others, 1)["message"]
    assert "p0, p1, p10 and other proxies rejected listeners version v: " in message
    assert "x" * MAX_ENVOY_MESSAGE not in message
    assert message.endswith("and other rejections (see /api/clients)")
    assert len(message) < 1500


def test_merged_into_gateways_only_and_stamped_on_transitions() -> None:
    """Gateways get the condition (other kinds are untouched); its lastTransitionTime moves
    only when its status flips, as status.py stamps; translator conditions are kept."""
    clock = Clock()
    board = GatewayStatuses(clock)
    board.set_translated([gateway_entry(), ROUTE_ENTRY])
    gw, route = board.entries
    assert route == ROUTE_ENTRY
    assert gw["status"]["conditions"][0]["type"] == "Accepted"
    assert ours(gw) == {**condition((), 3), "lastTransitionTime": "2026-01-01T00:00:00Z"}

    clock.now += timedelta(hours=1)
    assert board.set_rejections(rejections([client("p", nacks={LISTENER_TYPE: BIND})])) == ["ns/gw"]
    flipped = ours(board.entries[0])
    assert (flipped["status"], flipped["lastTransitionTime"]) == ("False", "2026-01-01T01:00:00Z")

    clock.now += timedelta(hours=1)
    board.set_translated([gateway_entry(generation=4), ROUTE_ENTRY])  # a new translation
    kept = ours(board.entries[0])
    assert (kept["status"], kept["observedGeneration"]) == ("False", 4)
    assert kept["lastTransitionTime"] == "2026-01-01T01:00:00Z"
    assert board.set_rejections(rejections([client("p", nacks={LISTENER_TYPE: BIND})])) == []

    clock.now += timedelta(hours=1)
    assert board.set_rejections({}) == ["ns/gw"]
    back = ours(board.entries[0])
    assert (back["status"], back["lastTransitionTime"]) == ("True", "2026-01-01T03:00:00Z")
    assert len(board.entries[0]["status"]["conditions"]) == 2


def test_rejections_of_gateways_not_in_status_change_nothing() -> None:
    """A proxy naming a Gateway we do not own adds no status entry."""
    board = GatewayStatuses()
    board.set_translated([ROUTE_ENTRY])
    assert board.set_rejections(rejections([client("p", "ns/x", {LISTENER_TYPE: BIND})])) == []
    assert board.entries == [ROUTE_ENTRY]


def test_translation_thread_and_event_loop_never_lose_an_update() -> None:
    """set_translated (another thread) and set_rejections interleave; the result always shows
    the latest rejections on the latest translation."""
    board = GatewayStatuses()
    board.set_translated([gateway_entry()])
    stop = threading.Event()

    def translate() -> None:
        generation = 0
        while not stop.is_set():
            generation += 1
            board.set_translated([gateway_entry(generation=generation)])

    thread = threading.Thread(target=translate)
    thread.start()
    try:
        for i in range(300):
            nacks = {LISTENER_TYPE: BIND} if i % 2 == 0 else {}
            board.set_rejections(rejections([client("p", nacks=nacks)]))
            assert ours(board.entries[0])["status"] == ("False" if i % 2 == 0 else "True")
    finally:
        stop.set()
        thread.join(10)
    assert ours(board.entries[0])["status"] == "True"


def gauge(type_key: str) -> float:
    value = REGISTRY.get_sample_value("gateway_xds_proxies_rejecting", {"type": type_key})
    return value or 0.0


def test_tracker_coalesces_callbacks_and_sets_the_gauge() -> None:
    """A burst of on_sync_change callbacks costs one recount; the gauge counts proxies per type."""
    board = GatewayStatuses()
    board.set_translated([gateway_entry()])
    views = [
        client("a", nacks={LISTENER_TYPE: BIND}),
        client("b", nacks={LISTENER_TYPE: BIND, ROUTE_TYPE: "bad"}),
    ]
    calls = []
    redone = []

    def list_views() -> list[ClientView]:
        calls.append(1)
        return views

    async def scenario() -> None:
        tracker = RejectionTracker(list_views, board, on_redone=lambda: redone.append(1))
        for _ in range(100):
            tracker.changed("ns/gw")
        for _ in range(100):  # loop turns (not time) until the scheduled recount ran
            if calls:
                break
            await asyncio.sleep(0)
        for _ in range(5):  # and a few more turns: nothing else is scheduled
            await asyncio.sleep(0)
        tracker.close()

    asyncio.run(scenario())
    assert len(calls) == 1
    assert ours(board.entries[0])["status"] == "False"
    assert len(redone) == 1  # the condition changed: whoever writes status is told once
    tracker_again = RejectionTracker(list_views, board, on_redone=lambda: redone.append(1))
    tracker_again.recount()  # the same rejections: the condition stays, nobody is told
    assert len(redone) == 1
    assert (gauge("listeners"), gauge("routes"), gauge("clusters")) == (2.0, 1.0, 0.0)
