"""ADS SotW over real gRPC: one test per protocol rule, a grpc.aio client acting as Envoy.

Rules SotW shares with delta (nothing before the first snapshot, the legacy wildcard, each
proxy only its own Gateway, unknown Gateways wait, slow proxies, close) are tested for both
protocols in test_rules_both_protocols.py.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from envoy.config.core.v3 import base_pb2
from structlog.testing import capture_logs
from support.xds_clients import metric, run
from test_ads_support import (
    ack,
    ads_server,
    cluster,
    endpoints,
    gateway,
    handshake,
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
