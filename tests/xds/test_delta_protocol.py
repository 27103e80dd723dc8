"""Delta ADS over real gRPC: one test per protocol rule, a grpc.aio client acting as Envoy.

The rules are those of Envoy's xDS protocol documentation, "Incremental xDS" and the
sections it refers to (wildcard forms, knowing when a resource does not exist,
unsubscribing, reconnecting), plus ours: NACKed content never re-sent, one response per
type in flight. Rules delta shares with SotW (nothing before the first snapshot, the legacy
wildcard, each proxy only its own Gateway, unknown Gateways wait, slow proxies, close) are
tested for both protocols in test_rules_both_protocols.py.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from structlog.testing import capture_logs
from support.xds_clients import DEADLINE, metric, run, serving
from test_ads_support import Proxy, gateway, handshake, listener, node, request
from test_delta_support import (
    added,
    delta_ack,
    delta_decode,
    delta_handshake,
    delta_nack,
    delta_proxies,
    delta_request,
    removed,
    versions,
)

from translator.result import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    GatewayResources,
)
from xds_server.ads import AdsServer
from xds_server.cache import SnapshotCache

CDS, EDS, LDS, RDS = CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE


def delta_entry(ads: AdsServer, node_id: str = "proxy-1") -> dict[str, Any]:
    [entry] = [c for c in ads.clients() if c["node"]["id"] == node_id]
    assert entry["protocol"] == "delta"
    return dict(entry)


def test_star_is_a_wildcard_and_unsubscribing_it_keeps_explicit_names() -> None:
    """'*' subscribes to everything; unsubscribing '*' leaves the named resources only."""

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot({"ns/gw": gateway(clusters=("a", "b"), routes=[("/", "a")])})
        async with serving(cache) as (target, ads), delta_proxies(target, node("ns/gw")) as [p]:
            p.send(delta_request(CDS, ["*", "b"]))
            everything = await p.recv()
            assert added(everything) == ["a", "b"]
            p.send(delta_ack(everything, unsubscribe=["*"]))
            await p.expect_nothing()
            clusters = delta_entry(ads)["types"]["clusters"]
            assert (clusters["wildcard"], clusters["resource_names"]) == (False, ["b"])
            assert clusters["resources_sent"] == 1

    run(scenario)


def test_the_first_wildcard_request_is_answered_even_when_empty() -> None:
    """A Gateway with no listeners still answers the LDS wildcard: Envoy's init waits on it."""

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot({"ns/gw": GatewayResources()})
        async with serving(cache) as (target, _ads), delta_proxies(target, node("ns/gw")) as [p]:
            p.send(delta_request(CDS))
            cds = await p.recv()
            assert (cds.type_url, added(cds), removed(cds)) == (CDS, [], [])
            p.send(delta_ack(cds))
            p.send(delta_request(LDS))
            lds = await p.recv()
            assert (lds.type_url, added(lds), removed(lds)) == (LDS, [], [])
            p.send(delta_ack(lds))
            await p.expect_nothing()

    run(scenario)


def test_versions_are_content_hashes_and_only_changes_are_sent() -> None:
    """Per-resource versions are content digests; a change sends only the changed resource."""

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot({"ns/gw": gateway(clusters=("c1", "c2"))})
        async with serving(cache) as (target, _ads), delta_proxies(target, node("ns/gw")) as [p]:
            first = await delta_handshake(p, eds=("c1", "c2"))
            served = cache.gateways["ns/gw"].types
            assert versions(first[CDS]) == {n: r.digest for n, r in served[CDS].by_name.items()}
            assert first[CDS].system_version_info == served[CDS].version
            cache.set_snapshot({"ns/gw": gateway(clusters=("c1", "c2"), endpoint_port=9)})
            update = await p.recv()
            assert (update.type_url, added(update)) == (EDS, ["c1", "c2"])
            p.send(delta_ack(update))
            changed = gateway(clusters=("c1", "c2"), endpoint_port=9)
            changed.clusters[1].connect_timeout.seconds = 5
            cache.set_snapshot({"ns/gw": changed})
            cds = await p.recv()
            assert (cds.type_url, added(cds)) == (CDS, ["c2"])
            eds = await p.recv()  # the changed cluster warms until its endpoints come again
            assert (eds.type_url, added(eds)) == (EDS, ["c2"])
            p.send(delta_ack(eds))
            p.send(delta_ack(cds))
            await p.expect_nothing()

    run(scenario)


def test_a_nack_is_logged_shown_and_its_content_never_resent() -> None:
    """A NACK is logged, counted and shown; the rejected content is not sent again, even
    when asked for again; the next different content is."""

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot({"ns/gw": gateway()})
        nacks = metric("gateway_xds_nacks_total", type="routes")
        async with serving(cache) as (target, ads), delta_proxies(target, node("ns/gw")) as [p]:
            good = (await delta_handshake(p))[RDS]
            cache.set_snapshot({"ns/gw": gateway(routes=[("/bad", "c1")])})
            bad = await p.recv()
            with capture_logs() as logs:
                p.send(delta_nack(bad, "route is invalid"))
                await p.expect_nothing()
            [event] = [e for e in logs if e["event"] == "xds.nack"]
            assert (event["message"], event["gateway"]) == ("route is invalid", "ns/gw")
            assert metric("gateway_xds_nacks_total", type="routes") == nacks + 1
            routes = delta_entry(ads)["types"]["routes"]
            assert routes["nack"]["message"] == "route is invalid"
            assert routes["acked_version"] == good.system_version_info
            p.send(delta_request(RDS, ["r1"]))  # asking again does not bring it back
            await p.expect_nothing()
            [client] = ads.views()
            assert set(client.rejected) == {RDS}
            cache.set_snapshot({"ns/gw": gateway(routes=[("/fixed", "c1")])})
            fixed = await p.recv()
            assert (fixed.type_url, added(fixed)) == (RDS, ["r1"])
            [config] = delta_decode(fixed)
            assert config.virtual_hosts[0].routes[0].match.prefix == "/fixed"
            p.send(delta_ack(fixed))
            await p.expect_nothing()
            assert ads.views()[0].rejected == {}

    run(scenario)


def test_a_stale_nonce_is_no_ack_but_its_subscription_change_is_honoured() -> None:
    """Docs: subscription changes count whatever the nonce; it only pairs ACKs with responses."""

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot({"ns/gw": gateway(extra_routes=("r2",))})
        async with serving(cache) as (target, ads), delta_proxies(target, node("ns/gw")) as [p]:
            first = (await delta_handshake(p))[RDS]
            cache.set_snapshot({"ns/gw": gateway(routes=[("/x", "c1")], extra_routes=("r2",))})
            second = await p.recv()
            p.send(delta_request(RDS, ["r2"], nonce=first.nonce))
            await p.expect_nothing()  # the response in flight is not acknowledged by it
            assert delta_entry(ads)["types"]["routes"]["pending"] is True
            p.send(delta_ack(second))
            subscribed = await p.recv()
            assert (subscribed.type_url, added(subscribed)) == (RDS, ["r2"])

    run(scenario)


def test_subscribing_and_unsubscribing_names() -> None:
    """A new name is sent (even one the proxy was sent before); an unsubscribed one no more."""

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot({"ns/gw": gateway(extra_routes=("r2",))})
        async with serving(cache) as (target, _ads), delta_proxies(target, node("ns/gw")) as [p]:
            await delta_handshake(p)
            p.send(delta_request(RDS, ["r2", "r1"]))
            again = await p.recv()
            assert added(again) == ["r1", "r2"]  # r1 again: the proxy may have forgotten it
            p.send(delta_ack(again, unsubscribe=["r2"]))
            await p.expect_nothing()  # unsubscribing is not answered
            changed = gateway(extra_routes=("r2",))
            changed.routes[1].virtual_hosts[0].name = "changed"
            cache.set_snapshot({"ns/gw": changed})
            await p.expect_nothing()

    run(scenario)


def test_unknown_names_are_answered_as_removed_and_sent_once_they_exist() -> None:
    """Docs: a subscribed resource that does not exist is named in removed_resources."""

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot({"ns/gw": gateway()})
        async with serving(cache) as (target, _ads), delta_proxies(target, node("ns/gw")) as [p]:
            await delta_handshake(p)
            p.send(delta_request(RDS, ["later"]))
            missing = await p.recv()
            assert (added(missing), removed(missing)) == ([], ["later"])
            p.send(delta_ack(missing))
            await p.expect_nothing()
            cache.set_snapshot({"ns/gw": gateway(extra_routes=("later",))})
            appeared = await p.recv()
            assert (added(appeared), removed(appeared)) == (["later"], [])

    run(scenario)


def test_removed_resources_name_what_no_longer_exists() -> None:
    """A listener gone is removed with the listeners; a cluster gone after the routes moved."""

    async def scenario() -> None:
        cache = SnapshotCache()
        base = gateway(clusters=("c1", "c2"))
        two = replace(base, listeners=(*base.listeners, listener("l2", "r1", 10081)))
        cache.set_snapshot({"ns/gw": two})
        async with serving(cache) as (target, _ads), delta_proxies(target, node("ns/gw")) as [p]:
            await delta_handshake(p, eds=("c1", "c2"))
            cache.set_snapshot({"ns/gw": gateway(clusters=("c1",))})
            lds = await p.recv()
            assert (lds.type_url, added(lds), removed(lds)) == (LDS, [], ["l2"])
            p.send(delta_ack(lds))
            cds = await p.recv()
            assert (cds.type_url, added(cds), removed(cds)) == (CDS, [], ["c2"])
            p.send(delta_ack(cds))
            eds = await p.recv()  # the proxy did not unsubscribe c2's endpoints
            assert (eds.type_url, added(eds), removed(eds)) == (EDS, [], ["c2"])

    run(scenario)


def test_unsubscribing_a_name_under_a_wildcard_is_answered() -> None:
    """Docs: with '*' and a name, unsubscribing the name gets the resource or its removal."""

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot({"ns/gw": gateway(clusters=("a",), routes=[("/", "a")])})
        async with serving(cache) as (target, _ads), delta_proxies(target, node("ns/gw")) as [p]:
            p.send(delta_request(CDS, ["*", "a", "x"]))
            first = await p.recv()
            assert (added(first), removed(first)) == (["a"], ["x"])
            p.send(delta_ack(first, unsubscribe=["a", "x"]))
            answer = await p.recv()
            assert (added(answer), removed(answer)) == (["a"], ["x"])

    run(scenario)


def test_a_reconnect_with_stale_versions_gets_only_what_differs() -> None:
    """initial_resource_versions: equal versions are not re-sent, others are, the gone removed."""

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot({"ns/gw": gateway(clusters=("c1", "c2"), extra_routes=("r2",))})
        async with serving(cache) as (target, _ads):
            async with delta_proxies(target, node("ns/gw")) as [p]:
                had = await delta_handshake(p, eds=("c1", "c2"), rds=("r1", "r2"))
            moved = gateway(routes=[("/y", "c1")], clusters=("c1",), extra_routes=("r2",))
            cache.set_snapshot({"ns/gw": moved})
            async with delta_proxies(target, node("ns/gw")) as [p]:
                p.send(delta_request(CDS, initial=versions(had[CDS])))
                p.send(delta_request(EDS, ["c1"], initial={"c1": versions(had[EDS])["c1"]}))
                p.send(delta_request(LDS, initial={**versions(had[LDS]), "gone": "x"}))
                p.send(delta_request(RDS, ["r1", "r2"], initial=versions(had[RDS])))
                lds = await p.recv()
                assert (lds.type_url, added(lds), removed(lds)) == (LDS, [], ["gone"])
                p.send(delta_ack(lds))
                rds = await p.recv()
                assert (rds.type_url, added(rds), removed(rds)) == (RDS, ["r1"], [])
                p.send(delta_ack(rds))
                cds = await p.recv()
                assert (cds.type_url, added(cds), removed(cds)) == (CDS, [], ["c2"])
                p.send(delta_ack(cds))
                await p.expect_nothing()

    run(scenario)


def test_sync_changes_are_reported_on_connect_nack_recovery_and_disconnect() -> None:
    """on_sync_change(gateway) fires on connect, a NACK, the first ACK after it, disconnect."""

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot({"ns/gw": gateway()})
        calls: list[str | None] = []
        called = asyncio.Event()

        def on_sync_change(gateway_key: str | None) -> None:
            calls.append(gateway_key)
            called.set()

        async with serving(cache, on_sync_change) as (target, _ads):
            async with delta_proxies(target, node("ns/gw")) as [p]:
                await delta_handshake(p)
                assert calls == ["ns/gw"]
                cache.set_snapshot({"ns/gw": gateway(routes=[("/bad", "c1")])})
                p.send(delta_nack(await p.recv(), "bad"))
                await p.expect_nothing()
                assert calls == ["ns/gw", "ns/gw"]
                cache.set_snapshot({"ns/gw": gateway(routes=[("/good", "c1")])})
                p.send(delta_ack(await p.recv()))
                await p.expect_nothing()
                assert calls == ["ns/gw"] * 3
            while len(calls) < 4:  # the disconnect is noticed by the server's reader
                called.clear()
                await asyncio.wait_for(called.wait(), DEADLINE)
            assert calls == ["ns/gw"] * 4

    run(scenario)


def test_the_registry_lists_sotw_and_delta_streams_with_distinct_ids() -> None:
    """AdsServer.clients() and views() show both protocols; stream ids never collide."""

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot({"ns/gw": gateway()})
        async with (
            serving(cache) as (target, ads),
            delta_proxies(target, node("ns/gw", "delta-1")) as [d],
        ):
            sotw = Proxy(target, node("ns/gw", "sotw-1"))
            await handshake(sotw)
            await delta_handshake(d)
            views = {v.node_id: v for v in ads.views()}
            assert {n: v.protocol for n, v in views.items()} == {
                "sotw-1": "sotw",
                "delta-1": "delta",
            }
            assert len({v.stream_id for v in views.values()}) == 2
            assert (
                views["delta-1"].types[CDS].acked_version
                == views["sotw-1"].types[CDS].acked_version
            )  # the same content has the same version in both protocols
            assert {c["node"]["id"] for c in ads.clients()} == {"sotw-1", "delta-1"}
            await sotw.close()

    run(scenario)


def test_sotw_requests_are_unaffected() -> None:
    """The SotW service still answers on the same server (guards the shared registration)."""

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot({"ns/gw": gateway()})
        async with serving(cache) as (target, _ads):
            sotw = Proxy(target, node("ns/gw"))
            sotw.send(request(CDS))
            response = await sotw.recv()
            assert response.version_info == cache.gateways["ns/gw"].types[CDS].version
            await sotw.close()

    run(scenario)
