"""ADS SotW over real gRPC: one test per protocol rule, a grpc.aio client acting as Envoy."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from structlog.testing import capture_logs
from support.xds_clients import DEADLINE, metric, run
from test_ads_support import (
    Proxy,
    ack,
    ads_server,
    cluster,
    endpoints,
    gateway,
    handshake,
    listener,
    nack,
    names,
    node,
    proxies,
    request,
    route_config,
)

from translator.result import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
)
from xds_server.ads import AdsServer, node_gateway
from xds_server.cache import SnapshotCache

CDS, EDS, LDS, RDS = CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE


def client_entry(ads: AdsServer, node_id: str = "proxy-1") -> dict[str, object]:
    [entry] = [c for c in ads.clients() if c["node"]["id"] == node_id]
    return entry


def test_nothing_is_sent_before_the_first_snapshot() -> None:
    """Requests before the first set_snapshot get nothing; the first snapshot answers them."""

    async def scenario() -> None:
        cache = SnapshotCache()
        async with ads_server(cache) as (target, _ads), proxies(target, node("ns/gw")) as [proxy]:
            proxy.send(request(CDS))
            proxy.send(request(LDS))
            await proxy.expect_nothing()
            cache.set_snapshot({"ns/gw": gateway()})
            response = await proxy.recv()
            assert (response.type_url, names(response)) == (CDS, ["c1"])
            assert response.control_plane.identifier == "gateway-xds"

    run(scenario)


def test_initial_wildcard_requests_are_answered_with_everything() -> None:
    """Empty resource_names on CDS and LDS is a wildcard: every cluster and listener is sent."""

    async def scenario() -> None:
        cache = SnapshotCache()
        resources = gateway(routes=[("/a", "a"), ("/b", "b")], clusters=("a", "b", "c"))
        second = listener("l2", "r1", 10081)
        resources = replace(resources, listeners=(*resources.listeners, second))
        cache.set_snapshot({"ns/gw": resources})
        async with ads_server(cache) as (target, _ads), proxies(target, node("ns/gw")) as [proxy]:
            responses = await handshake(proxy, eds=("a", "b", "c"))
            assert names(responses[CDS]) == ["a", "b", "c"]
            assert names(responses[LDS]) == ["l1", "l2"]
            assert responses[CDS].version_info == cache.gateways["ns/gw"].types[CDS].version

    run(scenario)


def test_wildcard_forms_star_explicit_names_and_the_legacy_empty_list() -> None:
    """CDS: "*" is a wildcard (with or without other names); explicit names select; once a
    request named resources, an empty list unsubscribes instead of meaning the wildcard."""

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot({"ns/gw": gateway(clusters=("a", "b", "c"))})
        async with ads_server(cache) as (target, _ads), proxies(target, node("ns/gw")) as [proxy]:
            everything = (await handshake(proxy, eds=("a", "b", "c")))[CDS]  # legacy: no names
            assert names(everything) == ["a", "b", "c"]
            proxy.send(ack(everything, ["*"]))
            await proxy.expect_nothing()  # the same wildcard: nothing new to send
            proxy.send(ack(everything, ["*", "a"]))
            await proxy.expect_nothing()
            proxy.send(ack(everything, ["b"]))
            only_b = await proxy.recv()
            assert (only_b.type_url, names(only_b)) == (CDS, ["b"])
            proxy.send(ack(only_b, []))
            unsubscribed = await proxy.recv()
            assert (unsubscribed.type_url, names(unsubscribed)) == (CDS, [])  # not a wildcard
            proxy.send(ack(unsubscribed, []))
            await proxy.expect_nothing()

    run(scenario)


def test_unknown_names_are_not_sent_until_they_exist() -> None:
    """An EDS name that does not exist gets nothing; once it appears it is sent."""

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot({"ns/gw": gateway(clusters=("c1",))})
        async with ads_server(cache) as (target, _ads), proxies(target, node("ns/gw")) as [proxy]:
            proxy.send(request(EDS, ["later"]))
            empty = await proxy.recv()  # the initial request is answered, with what exists
            assert names(empty) == []
            proxy.send(ack(empty, ["later"]))
            await proxy.expect_nothing()
            base = gateway(clusters=("c1",))
            cache.set_snapshot(
                {"ns/gw": replace(base, endpoints=(*base.endpoints, endpoints("later")))}
            )
            appeared = await proxy.recv()
            assert (appeared.type_url, names(appeared)) == (EDS, ["later"])

    run(scenario)


def test_rds_and_eds_send_only_requested_names_that_exist() -> None:
    """RDS and EDS responses hold exactly the requested resources that exist."""

    async def scenario() -> None:
        cache = SnapshotCache()
        base = gateway(clusters=("c1", "c2"), extra_routes=("r2",))
        resources = replace(base, endpoints=(*base.endpoints, endpoints("unrequested")))
        cache.set_snapshot({"ns/gw": resources})
        async with ads_server(cache) as (target, _ads), proxies(target, node("ns/gw")) as [proxy]:
            responses = await handshake(proxy, eds=("c1", "c2", "missing"), rds=("r1", "gone"))
            assert names(responses[EDS]) == ["c1", "c2"]
            assert names(responses[RDS]) == ["r1"]
            await proxy.expect_nothing()

    run(scenario)


def test_an_ack_is_recorded_and_nothing_more_is_sent() -> None:
    """An ACK records the version in the registry and metrics, and gets no response."""

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot({"ns/gw": gateway()})
        acks = metric("gateway_xds_acks_total", type="clusters")
        sent = metric("gateway_xds_responses_sent_total", type="clusters")
        connected = metric("gateway_xds_connected_proxies")
        async with ads_server(cache) as (target, ads), proxies(target, node("ns/gw")) as [proxy]:
            proxy.send(request(CDS))
            cds = await proxy.recv()
            assert client_entry(ads)["types"]["clusters"]["pending"] is True
            proxy.send(ack(cds))
            await proxy.expect_nothing()
            entry = client_entry(ads)
            assert entry["gateway"] == "ns/gw"
            clusters = entry["types"]["clusters"]
            assert clusters["acked_version"] == cds.version_info
            assert clusters["sent_nonce"] == cds.nonce
            assert clusters["pending"] is False
            assert metric("gateway_xds_acks_total", type="clusters") == acks + 1
            assert metric("gateway_xds_responses_sent_total", type="clusters") == sent + 1
            assert metric("gateway_xds_connected_proxies") == connected + 1

    run(scenario)


def test_a_nack_is_logged_shown_and_not_answered_with_the_same_content() -> None:
    """A NACK is logged, counted and shown per client; only the next new version is sent."""

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot({"ns/gw": gateway()})
        nacks = metric("gateway_xds_nacks_total", type="routes")
        async with ads_server(cache) as (target, ads), proxies(target, node("ns/gw")) as [proxy]:
            good = (await handshake(proxy))[RDS]
            cache.set_snapshot({"ns/gw": gateway(routes=[("/bad", "c1")])})
            bad = await proxy.recv()
            with capture_logs() as logs:
                proxy.send(nack(bad, "route is invalid", good.version_info, ["r1"]))
                await proxy.expect_nothing()
            [event] = [e for e in logs if e["event"] == "xds.nack"]
            assert event["version"] == bad.version_info
            assert event["message"] == "route is invalid"
            assert event["node"] == "proxy-1"
            assert event["gateway"] == "ns/gw"
            assert metric("gateway_xds_nacks_total", type="routes") == nacks + 1
            routes = client_entry(ads)["types"]["routes"]
            assert routes["nack"]["message"] == "route is invalid"
            assert routes["nack"]["version"] == bad.version_info
            assert routes["acked_version"] == good.version_info

            cache.set_snapshot({"ns/gw": gateway(routes=[("/bad", "c1")], endpoint_port=1)})
            endpoint_update = await proxy.recv()  # endpoints changed; routes did not
            assert endpoint_update.type_url == EDS
            proxy.send(ack(endpoint_update, ["c1"]))
            await proxy.expect_nothing()
            cache.set_snapshot({"ns/gw": gateway(routes=[("/fixed", "c1")], endpoint_port=1)})
            fixed = await proxy.recv()
            assert fixed.type_url == RDS
            assert fixed.version_info not in (bad.version_info, good.version_info)

    run(scenario)


def test_a_stale_nonce_is_ignored() -> None:
    """A request quoting an older nonce gets no response, even if it changes the names."""

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot({"ns/gw": gateway(extra_routes=("r2",))})
        async with ads_server(cache) as (target, _ads), proxies(target, node("ns/gw")) as [proxy]:
            first = (await handshake(proxy))[RDS]
            cache.set_snapshot({"ns/gw": gateway(routes=[("/x", "c1")], extra_routes=("r2",))})
            second = await proxy.recv()
            proxy.send(request(RDS, ["r1", "r2"], nonce=first.nonce, version=first.version_info))
            await proxy.expect_nothing()
            proxy.send(ack(second, ["r1"]))
            await proxy.expect_nothing()

    run(scenario)


def test_each_proxy_receives_only_its_own_gateway() -> None:
    """Proxies of two Gateways get only their own resources, and only their own changes."""

    async def scenario() -> None:
        cache = SnapshotCache()
        gateway_a = gateway(clusters=("a1",), routes=[("/", "a1")])
        cache.set_snapshot(
            {"ns/a": gateway_a, "ns/b": gateway(clusters=("b1",), routes=[("/", "b1")])}
        )
        async with (
            ads_server(cache) as (target, ads),
            proxies(target, node("ns/a", "proxy-a"), node("ns/b", "proxy-b")) as [a, b],
        ):
            got_a = await handshake(a, eds=("a1",))
            got_b = await handshake(b, eds=("b1",))
            assert names(got_a[CDS]) == ["a1"]
            assert names(got_b[CDS]) == ["b1"]
            assert names(got_a[EDS]) == ["a1"]
            moved_b = gateway(clusters=("b1",), routes=[("/", "b1")], endpoint_port=9)
            cache.set_snapshot({"ns/a": gateway_a, "ns/b": moved_b})
            update = await b.recv()
            assert (update.type_url, names(update)) == (EDS, ["b1"])
            await a.expect_nothing()
            assert {c["gateway"] for c in ads.clients()} == {"ns/a", "ns/b"}

    run(scenario)


def test_a_proxy_of_an_unknown_gateway_waits_for_it() -> None:
    """A node naming no known Gateway gets nothing (stream kept open) until the Gateway exists."""

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot({"ns/other": gateway()})
        by_cluster = node(None, "proxy-2", cluster_field="ns/later")
        async with (
            ads_server(cache) as (target, _ads),
            proxies(target, node("ns/later"), by_cluster, node(None, "proxy-3")) as clients,
        ):
            for client in clients:
                client.send(request(CDS))
            for client in clients:
                await client.expect_nothing()
            cache.set_snapshot({"ns/other": gateway(), "ns/later": gateway(clusters=("x",))})
            for client in clients[:2]:
                assert names(await client.recv()) == ["x"]
            await clients[2].expect_nothing()

    run(scenario)


def test_a_reconnecting_proxy_is_not_sent_what_it_has() -> None:
    """Versions are content hashes: a new stream quoting the current versions gets nothing."""

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot({"ns/gw": gateway()})
        async with ads_server(cache) as (target, _ads):
            async with proxies(target, node("ns/gw")) as [proxy]:
                had = await handshake(proxy)
            restarted = SnapshotCache()  # another process, same content
            restarted.set_snapshot({"ns/gw": gateway()})
        async with (
            ads_server(restarted) as (target, _ads),
            proxies(target, node("ns/gw")) as [proxy],
        ):
            for type_url, subscribed in ((CDS, []), (EDS, ["c1"]), (LDS, []), (RDS, ["r1"])):
                proxy.send(request(type_url, subscribed, version=had[type_url].version_info))
            await proxy.expect_nothing()
            restarted.set_snapshot({"ns/gw": gateway(endpoint_port=1)})
            assert (await proxy.recv()).type_url == EDS

    run(scenario)


def test_close_ends_every_stream_cleanly() -> None:
    """AdsServer.close ends open streams with status OK and empties the registry."""

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot({"ns/gw": gateway()})
        async with ads_server(cache) as (target, ads):
            proxy = Proxy(target, node("ns/gw"))
            proxy.send(request(CDS))
            await proxy.recv()
            await ads.close(grace=DEADLINE)
            assert await asyncio.wait_for(proxy.call.code(), DEADLINE) == grpc.StatusCode.OK
            assert ads.clients() == []
            await proxy.close()

    run(scenario)


@pytest.mark.parametrize(
    ("metadata", "cluster_field", "expected"),
    [
        ("ns/gw", "", "ns/gw"),
        ("ns/gw", "ns/other", "ns/gw"),
        (None, "ns/fallback", "ns/fallback"),
        ("not-a-key", "ns/fallback", "ns/fallback"),
        (None, "envoy-fleet", None),
        (None, "", None),
        ("a/b/c", "", None),
    ],
    ids=["metadata", "metadata-wins", "cluster", "bad-metadata", "no-slash", "empty", "extra"],
)
def test_node_gateway(metadata: str | None, cluster_field: str, expected: str | None) -> None:
    """The Gateway comes from node metadata "gateway", else node.cluster, if "ns/name"."""
    assert node_gateway(node(metadata, cluster_field=cluster_field)) == expected
    assert node_gateway(base_pb2.Node()) is None


def test_builders_make_valid_resources() -> None:
    """The hand-built resources name what they reference (guards the other tests' fixtures)."""
    assert route_config("r", [("/", "c")]).virtual_hosts[0].routes[0].route.cluster == "c"
    assert cluster("c").eds_cluster_config.eds_config.HasField("ads")
