"""Rejections of other replicas' proxies: the report format, the merge, and how they change
the ProxiesAccepted condition (the API side runs against a real API server in tests/kube)."""

from __future__ import annotations

from test_proxy_conditions import BIND, client, gateway_entry, ours

from translator.result import LISTENER_TYPE, ROUTE_TYPE
from xds_server.proxy_conditions import (
    MAX_ENVOY_MESSAGE,
    GatewayStatuses,
    Rejection,
    merge_rejections,
    rejections,
)
from xds_server.replica_reports import MAX_REPORTED, decode, encode, report_name

LOCAL = Rejection("proxy-on-a", LISTENER_TYPE, "v1", BIND)
PEER = Rejection("proxy-on-b", LISTENER_TYPE, "v1", BIND)
PEER_ROUTES = Rejection("proxy-on-b", ROUTE_TYPE, "v2", "bad route")


def test_report_round_trips_and_a_bad_one_counts_as_none() -> None:
    found = {"ns/gw": (PEER, PEER_ROUTES), "ns/other": (LOCAL,)}
    text = encode(found)
    assert decode(text) == found
    assert encode(decode(text)) == text  # stable: an unchanged report writes the same bytes
    for bad in ("", None, "not json", "[1, 2]", '{"ns/gw": [[1, 2]]}', '{"ns/gw": 5}'):
        assert decode(bad) == {}


def test_report_names_are_valid_object_names_per_identity() -> None:
    a = report_name("gateway-xds-status-writer", "controlplane-7d9f-abcde_1a2b3c4d")
    b = report_name("gateway-xds-status-writer", "controlplane-7d9f-fghij_5e6f7a8b")
    assert a != b
    assert a.startswith("gateway-xds-status-writer-report-")
    assert a.replace("-", "").isalnum()
    assert a == a.lower()
    assert len(a) <= 253


def test_merge_is_a_sorted_union() -> None:
    merged = merge_rejections([{"ns/gw": (PEER_ROUTES, PEER)}, {"ns/gw": (LOCAL, PEER)}, {}])
    assert merged == {"ns/gw": (LOCAL, PEER, PEER_ROUTES)}  # listeners before routes, by node
    assert merge_rejections([{"ns/gw": ()}]) == {}


def test_peer_rejections_change_the_condition_and_go_away_again() -> None:
    board = GatewayStatuses()
    board.set_translated([gateway_entry()])
    assert board.set_rejections({}) == []  # nothing anywhere: nothing redone
    assert ours(board.entries[0])["status"] == "True"

    assert board.set_peer_rejections({"ns/gw": (PEER,)}) == ["ns/gw"]
    condition = ours(board.entries[0])
    assert condition["status"] == "False"
    assert "proxy-on-b" in condition["message"]
    assert board.local_rejections == {}  # what this replica reports stays its own

    assert board.set_rejections({"ns/gw": (LOCAL,)}) == ["ns/gw"]
    message = ours(board.entries[0])["message"]
    assert "proxy-on-a" in message
    assert "proxy-on-b" in message
    assert board.local_rejections == {"ns/gw": (LOCAL,)}
    assert board.set_peer_rejections({"ns/gw": (PEER,)}) == []  # the same again: nothing

    assert board.set_peer_rejections({}) == ["ns/gw"]
    assert board.set_rejections({}) == ["ns/gw"]
    assert ours(board.entries[0])["status"] == "True"


def test_reports_are_bounded() -> None:
    """A fleet-wide NACK storm cannot make a report outgrow an annotation."""
    many = tuple(Rejection(f"proxy-{i:03}", LISTENER_TYPE, "v1", BIND) for i in range(150))
    assert len(decode(encode({"ns/gw": many}))["ns/gw"]) == MAX_REPORTED
    long_nack = {LISTENER_TYPE: "x" * 5000}
    [rejection] = rejections([client("p", nacks=long_nack)])["ns/gw"]
    assert len(rejection.message) <= MAX_ENVOY_MESSAGE
