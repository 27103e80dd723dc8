"""Rules SotW and delta ADS share, over real gRPC: each test runs once per protocol.

A test is here only when both protocols keep the rule with the same scenario; the proxy is
driven through ``XdsProtocol`` (``SOTW``, ``DELTA``), so requests, ACKs and the names a
response sends read the same for both. Rules of one protocol stay in test_ads_protocol.py
and test_delta_protocol.py (and the make-before-break order in the *_ordering.py files).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import grpc
import pytest
from support.xds_clients import DEADLINE, XdsProtocol, metric, run, serving
from test_ads_support import SOTW, gateway, listener, node
from test_delta_support import DELTA

from translator.result import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE
from xds_server.cache import SnapshotCache

CDS, EDS, LDS, RDS = CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE

both_protocols = pytest.mark.parametrize("xds", [SOTW, DELTA], ids=lambda p: p.name)


@both_protocols
def test_nothing_is_sent_before_the_first_snapshot(xds: XdsProtocol) -> None:
    """Requests before the first set_snapshot get nothing; the first snapshot answers them."""

    async def scenario() -> None:
        cache = SnapshotCache()
        async with serving(cache) as (target, _ads), xds.connect(target, node("ns/gw")) as [p]:
            p.send(xds.subscribe(CDS, ()))
            p.send(xds.subscribe(LDS, ()))
            await p.expect_nothing()
            cache.set_snapshot({"ns/gw": gateway()})
            response = await p.recv()
            assert (response.type_url, xds.names(response)) == (CDS, ["c1"])
            assert response.control_plane.identifier == "gateway-xds"

    run(scenario)


@both_protocols
def test_a_first_request_without_names_is_a_wildcard(xds: XdsProtocol) -> None:
    """Legacy wildcard: a first CDS/LDS request naming nothing gets every cluster and listener."""

    async def scenario() -> None:
        cache = SnapshotCache()
        resources = gateway(routes=[("/a", "a"), ("/b", "b")], clusters=("a", "b", "c"))
        second = listener("l2", "r1", 10081)
        cache.set_snapshot({"ns/gw": replace(resources, listeners=(*resources.listeners, second))})
        async with serving(cache) as (target, _ads), xds.connect(target, node("ns/gw")) as [p]:
            responses = await xds.handshake(p, eds=("a", "b", "c"))
            assert xds.names(responses[CDS]) == ["a", "b", "c"]
            assert xds.names(responses[LDS]) == ["l1", "l2"]
            assert xds.version(responses[CDS]) == cache.gateways["ns/gw"].types[CDS].version
            await p.expect_nothing()

    run(scenario)


@both_protocols
def test_an_ack_is_recorded_and_nothing_more_is_sent(xds: XdsProtocol) -> None:
    """An ACK records the version in the registry and metrics, and gets no response."""

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot({"ns/gw": gateway()})
        acks = metric("gateway_xds_acks_total", type="clusters")
        sent = metric("gateway_xds_responses_sent_total", type="clusters")
        connected = metric("gateway_xds_connected_proxies")
        async with serving(cache) as (target, ads), xds.connect(target, node("ns/gw")) as [p]:
            p.send(xds.subscribe(CDS, ()))
            cds = await p.recv()
            [entry] = ads.clients()
            assert entry["types"]["clusters"]["pending"] is True
            p.send(xds.ack(cds, ()))
            await p.expect_nothing()
            [entry] = ads.clients()
            assert (entry["node"]["id"], entry["gateway"]) == ("proxy-1", "ns/gw")
            assert [v.protocol for v in ads.views()] == [xds.name]
            clusters = entry["types"]["clusters"]
            assert xds.version(cds) == cache.gateways["ns/gw"].types[CDS].version
            assert clusters["acked_version"] == xds.version(cds)
            assert clusters["sent_nonce"] == cds.nonce
            assert clusters["pending"] is False
            assert metric("gateway_xds_acks_total", type="clusters") == acks + 1
            assert metric("gateway_xds_responses_sent_total", type="clusters") == sent + 1
            assert metric("gateway_xds_connected_proxies") == connected + 1

    run(scenario)


@both_protocols
def test_each_proxy_receives_only_its_own_gateway(xds: XdsProtocol) -> None:
    """Proxies of two Gateways get only their own resources, and only their own changes."""

    async def scenario() -> None:
        cache = SnapshotCache()
        gateway_a = gateway(clusters=("a1",), routes=[("/", "a1")])
        cache.set_snapshot(
            {"ns/a": gateway_a, "ns/b": gateway(clusters=("b1",), routes=[("/", "b1")])}
        )
        nodes = (node("ns/a", "proxy-a"), node("ns/b", "proxy-b"))
        async with serving(cache) as (target, ads), xds.connect(target, *nodes) as [a, b]:
            got_a = await xds.handshake(a, eds=("a1",))
            got_b = await xds.handshake(b, eds=("b1",))
            assert (xds.names(got_a[CDS]), xds.names(got_b[CDS])) == (["a1"], ["b1"])
            assert xds.names(got_a[EDS]) == ["a1"]
            moved_b = gateway(clusters=("b1",), routes=[("/", "b1")], endpoint_port=9)
            cache.set_snapshot({"ns/a": gateway_a, "ns/b": moved_b})
            update = await b.recv()
            assert (update.type_url, xds.names(update)) == (EDS, ["b1"])
            await a.expect_nothing()
            assert {c["gateway"] for c in ads.clients()} == {"ns/a", "ns/b"}

    run(scenario)


@both_protocols
def test_a_proxy_of_an_unknown_gateway_waits_for_it(xds: XdsProtocol) -> None:
    """A node naming no known Gateway gets nothing (stream kept open) until the Gateway exists;
    one naming none at all (no metadata, no "ns/name" cluster) keeps getting nothing."""

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot({"ns/other": gateway()})
        by_cluster = node(None, "proxy-2", cluster_field="ns/later")
        nodes = (node("ns/later"), by_cluster, node(None, "proxy-3"))
        async with serving(cache) as (target, _ads), xds.connect(target, *nodes) as clients:
            for client in clients:
                client.send(xds.subscribe(CDS, ()))
            for client in clients:
                await client.expect_nothing()
            cache.set_snapshot({"ns/other": gateway(), "ns/later": gateway(clusters=("x",))})
            for client in clients[:2]:
                assert xds.names(await client.recv()) == ["x"]
            await clients[2].expect_nothing()

    run(scenario)


@both_protocols
def test_a_slow_proxy_gets_only_the_newest_version(xds: XdsProtocol) -> None:
    """While a response awaits its ACK newer versions wait; the ACK brings only the newest."""

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot({"ns/gw": gateway()})
        async with serving(cache) as (target, _ads), xds.connect(target, node("ns/gw")) as [p]:
            await xds.handshake(p)
            cache.set_snapshot({"ns/gw": gateway(routes=[("/v2", "c1")])})
            unacked = await p.recv()
            assert unacked.type_url == RDS
            for version in range(3, 7):
                cache.set_snapshot({"ns/gw": gateway(routes=[(f"/v{version}", "c1")])})
            await p.expect_nothing()
            p.send(xds.ack(unacked, ["r1"]))
            newest = await p.recv()
            assert xds.version(newest) == cache.gateways["ns/gw"].types[RDS].version
            [config] = xds.decode(newest)
            assert config.virtual_hosts[0].routes[0].match.prefix == "/v6"
            p.send(xds.ack(newest, ["r1"]))
            await p.expect_nothing()

    run(scenario)


@both_protocols
def test_close_ends_every_stream_cleanly(xds: XdsProtocol) -> None:
    """AdsServer.close ends open streams with status OK and empties the registry."""

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot({"ns/gw": gateway()})
        async with serving(cache) as (target, ads):
            proxy = xds.client(target, node("ns/gw"))
            proxy.send(xds.subscribe(CDS, ()))
            await proxy.recv()
            await ads.close(grace=DEADLINE)
            assert await asyncio.wait_for(proxy.call.code(), DEADLINE) == grpc.StatusCode.OK
            assert ads.clients() == []
            await proxy.close()

    run(scenario)
