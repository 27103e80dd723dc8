"""CSDS over real gRPC: the status of every connected proxy's resources, NACKs included."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
import pytest
from envoy.admin.v3 import config_dump_shared_pb2 as dump_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.service.status.v3 import csds_pb2, csds_pb2_grpc
from envoy.type.matcher.v3 import node_pb2, string_pb2, struct_pb2
from support.xds_clients import DEADLINE, run
from test_ads_support import ack, gateway, handshake, nack, node, proxies, request
from test_delta_support import delta_handshake, delta_nack, delta_proxies

from translator.result import CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE
from xds_server.ads import add_ads_to_server
from xds_server.cache import SnapshotCache
from xds_server.csds import add_csds_to_server

T = TypeVar("T")
LDS_ERROR = "Error adding/updating listener(s) l1: cannot bind '127.0.0.1:10081': in use"


async def eventually(check: Callable[[], Awaitable[T | None]], within: float = DEADLINE) -> T:
    """Await ``check`` until it returns a value, with a deadline (backing off between tries)."""
    loop = asyncio.get_running_loop()
    deadline, pause = loop.time() + within, 0.005
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.2)


@contextlib.asynccontextmanager
async def xds_with_csds(cache: SnapshotCache) -> AsyncIterator[tuple[str, Any]]:
    """ADS and CSDS on one grpc.aio server (as the control plane runs them); a CSDS stub."""
    server = grpc.aio.server()
    ads = add_ads_to_server(server, cache)
    add_csds_to_server(server, ads.views, cache.get)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield f"127.0.0.1:{port}", csds_pb2_grpc.ClientStatusDiscoveryServiceStub(channel)
    finally:
        await channel.close()
        await ads.close(grace=1.0)
        await server.stop(None)


def by_id(node_id: str, kind: str = "exact") -> Any:
    return node_pb2.NodeMatcher(node_id=string_pb2.StringMatcher(**{kind: node_id}))


def resources(config: Any) -> dict[tuple[str, str], Any]:
    return {(g.type_url, g.name): g for g in config.generic_xds_configs}


@contextlib.asynccontextmanager
async def nacking_fleet() -> AsyncIterator[tuple[Any, SnapshotCache]]:
    """Two proxies of ns/gw after a listener change: proxy-1 NACKed it, other-2 ACKed it."""
    cache = SnapshotCache()
    cache.set_snapshot({"ns/gw": gateway()})
    async with (
        xds_with_csds(cache) as (target, stub),
        proxies(target, node("ns/gw", "proxy-1"), node("ns/gw", "other-2")) as clients,
    ):
        for proxy in clients:
            await handshake(proxy)
        cache.set_snapshot({"ns/gw": gateway(listener_port=10081)})
        for proxy, accept in zip(clients, (False, True), strict=True):
            lds = await proxy.recv()
            assert lds.type_url == LISTENER_TYPE
            proxy.send(ack(lds) if accept else nack(lds, LDS_ERROR))

        async def settled() -> bool:
            answer = await stub.FetchClientStatus(csds_pb2.ClientStatusRequest())
            statuses = [resources(c)[(LISTENER_TYPE, "l1")].config_status for c in answer.config]
            return sorted(statuses) == sorted([csds_pb2.SYNCED, csds_pb2.ERROR])

        await eventually(settled)
        yield stub, cache


def test_fetch_shows_the_nack_per_resource() -> None:
    """The rejecting proxy's listener is ERROR/NACKED with Envoy's message and the rejected
    content; what it ACKed is SYNCED/ACKED; the other proxy is SYNCED throughout."""

    async def scenario() -> None:
        async with nacking_fleet() as (stub, cache):
            answer = await stub.FetchClientStatus(csds_pb2.ClientStatusRequest())
            assert [c.node.id for c in answer.config] == ["other-2", "proxy-1"]
            rejecting = resources(answer.config[1])
            assert answer.config[1].node.metadata.fields["gateway"].string_value == "ns/gw"
            listener = rejecting[(LISTENER_TYPE, "l1")]
            current = cache.gateways["ns/gw"].types[LISTENER_TYPE].by_name["l1"]
            assert listener.config_status == csds_pb2.ERROR
            assert listener.client_status == dump_pb2.NACKED
            assert listener.version_info == current.digest
            assert listener.error_state.details == LDS_ERROR
            assert listener.error_state.version_info == cache.gateways["ns/gw"].versions[3]
            assert listener.error_state.last_update_attempt.seconds > 0
            sent = listener_pb2.Listener()
            assert listener.xds_config.Unpack(sent)
            assert sent.address.socket_address.port_value == 10081
            assert listener.error_state.failed_configuration == listener.xds_config
            for key in ((CLUSTER_TYPE, "c1"), (ROUTE_TYPE, "r1")):
                assert rejecting[key].config_status == csds_pb2.SYNCED
                assert rejecting[key].client_status == dump_pb2.ACKED
                assert not rejecting[key].HasField("error_state")
            accepting = resources(answer.config[0])
            assert accepting[(LISTENER_TYPE, "l1")].config_status == csds_pb2.SYNCED

    run(scenario)


def test_node_matchers_select_proxies() -> None:
    """Matchers are ORed: node id exact, prefix, and the gateway metadata; no match: no config."""

    async def scenario() -> None:
        async with nacking_fleet() as (stub, _cache):

            async def ids(*matchers: Any) -> list[str]:
                request = csds_pb2.ClientStatusRequest(node_matchers=list(matchers))
                answer = await stub.FetchClientStatus(request)
                return [c.node.id for c in answer.config]

            assert await ids(by_id("proxy-1")) == ["proxy-1"]
            assert await ids(by_id("proxy")) == []
            assert await ids(by_id("OTHER", "prefix")) == []
            assert await ids(by_id("proxy", "prefix"), by_id("other-2")) == ["other-2", "proxy-1"]
            gateway_matcher = struct_pb2.StructMatcher(
                path=[struct_pb2.StructMatcher.PathSegment(key="gateway")]
            )
            gateway_matcher.value.string_match.exact = "ns/gw"
            assert await ids(node_pb2.NodeMatcher(node_metadatas=[gateway_matcher])) == [
                "other-2",
                "proxy-1",
            ]
            gateway_matcher.value.string_match.exact = "ns/other"
            assert await ids(node_pb2.NodeMatcher(node_metadatas=[gateway_matcher])) == []

    run(scenario)


def test_unsupported_matchers_are_invalid_argument() -> None:
    """A metadata path other than [gateway] is refused with INVALID_ARGUMENT, not ignored."""

    async def scenario() -> None:
        async with nacking_fleet() as (stub, _cache):
            matcher = struct_pb2.StructMatcher(
                path=[struct_pb2.StructMatcher.PathSegment(key="zone")]
            )
            matcher.value.string_match.exact = "a"
            request = csds_pb2.ClientStatusRequest(
                node_matchers=[node_pb2.NodeMatcher(node_metadatas=[matcher])]
            )
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await stub.FetchClientStatus(request)
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "gateway" in str(error.value.details())

    run(scenario)


def test_stream_answers_each_request_and_can_exclude_contents() -> None:
    """StreamClientStatus answers every request; exclude_resource_contents drops the configs."""

    async def scenario() -> None:
        async with nacking_fleet() as (stub, _cache):
            call = stub.StreamClientStatus()
            await call.write(csds_pb2.ClientStatusRequest(node_matchers=[by_id("proxy-1")]))
            first = await asyncio.wait_for(call.read(), DEADLINE)
            listener = resources(first.config[0])[(LISTENER_TYPE, "l1")]
            assert listener.HasField("xds_config")
            light = csds_pb2.ClientStatusRequest(
                node_matchers=[by_id("other-2")], exclude_resource_contents=True
            )
            await call.write(light)
            second = await asyncio.wait_for(call.read(), DEADLINE)
            assert [c.node.id for c in second.config] == ["other-2"]
            assert not any(g.HasField("xds_config") for g in second.config[0].generic_xds_configs)
            await call.done_writing()
            assert await call.read() == grpc.aio.EOF

    run(scenario)


def test_a_proxy_waiting_for_its_gateway_has_nothing() -> None:
    """A proxy whose Gateway does not exist yet is listed with no resources."""

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot({"ns/gw": gateway()})
        async with (
            xds_with_csds(cache) as (target, stub),
            proxies(target, node("ns/later", "early")) as [proxy],
        ):
            proxy.send(request(CLUSTER_TYPE))

            async def listed() -> Any:
                answer = await stub.FetchClientStatus(csds_pb2.ClientStatusRequest())
                return answer.config

            [config] = await eventually(listed)
            assert config.node.id == "early"
            assert list(config.generic_xds_configs) == []

    run(scenario)


def test_a_delta_proxy_nack_is_an_error_too() -> None:
    """Delta streams are listed by the same views: a rejected listener is ERROR with the
    message, and the proxy's protocol does not change what CSDS says."""

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot({"ns/gw": gateway()})
        async with (
            xds_with_csds(cache) as (target, stub),
            delta_proxies(target, node("ns/gw", "delta-1")) as [proxy],
        ):
            await delta_handshake(proxy)
            cache.set_snapshot({"ns/gw": gateway(listener_port=10081)})
            lds = await proxy.recv()
            assert lds.type_url == LISTENER_TYPE
            proxy.send(delta_nack(lds, LDS_ERROR))

            async def errored() -> Any:
                answer = await stub.FetchClientStatus(csds_pb2.ClientStatusRequest())
                listener = resources(answer.config[0])[(LISTENER_TYPE, "l1")]
                return listener if listener.config_status == csds_pb2.ERROR else None

            listener = await eventually(errored)
            assert listener.client_status == dump_pb2.NACKED
            assert listener.error_state.details == LDS_ERROR
            answer = await stub.FetchClientStatus(csds_pb2.ClientStatusRequest())
            synced = resources(answer.config[0])[(ROUTE_TYPE, "r1")]
            assert synced.config_status == csds_pb2.SYNCED

    run(scenario)
