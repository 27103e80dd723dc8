"""A gRPC delta-ADS test proxy and request builders, shared by the delta tests (no tests here).

``DeltaProxy`` is a real grpc.aio client of ``DeltaAggregatedResources`` with a request
queue, acting as Envoy; tests drive its subscriptions, ACKs and NACKs by hand. Resource
builders come from ``test_ads_support``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from test_ads_support import DEADLINE, MESSAGE_CLASSES, QUIET

from translator.result import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE
from xds_server.ads import AdsServer, add_ads_to_server
from xds_server.cache import SnapshotCache, resource_name


def delta_request(
    type_url: str,
    subscribe: Iterable[str] = (),
    unsubscribe: Iterable[str] = (),
    *,
    nonce: str = "",
    initial: Mapping[str, str] | None = None,
    error: str | None = None,
    node_msg: Any = None,
) -> Any:
    """A DeltaDiscoveryRequest; with ``nonce`` an ACK, with ``error`` too a NACK."""
    req = discovery_pb2.DeltaDiscoveryRequest(
        type_url=type_url,
        resource_names_subscribe=list(subscribe),
        resource_names_unsubscribe=list(unsubscribe),
        response_nonce=nonce,
    )
    for name, version in (initial or {}).items():
        req.initial_resource_versions[name] = version
    if node_msg is not None:
        req.node.CopyFrom(node_msg)
    if error is not None:
        req.error_detail.code = 13
        req.error_detail.message = error
    return req


def delta_ack(response: Any, subscribe: Iterable[str] = (), unsubscribe: Iterable[str] = ()) -> Any:
    """The ACK of ``response``, optionally changing the subscription."""
    return delta_request(response.type_url, subscribe, unsubscribe, nonce=response.nonce)


def delta_nack(response: Any, message: str) -> Any:
    """The NACK of ``response``."""
    return delta_request(response.type_url, nonce=response.nonce, error=message)


def added(response: Any) -> list[str]:
    """The names of the resources a DeltaDiscoveryResponse adds or changes, in order."""
    return [r.name for r in response.resources]


def removed(response: Any) -> list[str]:
    return list(response.removed_resources)


def versions(response: Any) -> dict[str, str]:
    """name -> per-resource version of a DeltaDiscoveryResponse."""
    return {r.name: r.version for r in response.resources}


def delta_decode(response: Any) -> list[Any]:
    """The resources of a DeltaDiscoveryResponse as messages (names checked)."""
    out = []
    for entry in response.resources:
        message = MESSAGE_CLASSES[entry.resource.type_url]()
        entry.resource.Unpack(message)
        assert resource_name(message) == entry.name
        out.append(message)
    return out


class DeltaProxy:
    """A grpc.aio delta ADS client acting as one Envoy: queue requests, await responses."""

    def __init__(self, target: str, node_msg: Any) -> None:
        self.node = node_msg
        self._channel = grpc.aio.insecure_channel(target)
        self._requests: asyncio.Queue[Any] = asyncio.Queue()
        self._responses: asyncio.Queue[Any] = asyncio.Queue()
        self._first = True
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(self._channel)
        self.call = stub.DeltaAggregatedResources(self._request_iterator())
        self._reader = asyncio.create_task(self._read())

    async def _request_iterator(self) -> AsyncIterator[Any]:
        while (req := await self._requests.get()) is not None:
            yield req

    async def _read(self) -> None:
        while (response := await self.call.read()) is not grpc.aio.EOF:
            self._responses.put_nowait(response)

    def send(self, req: Any) -> None:
        """Queue a request; the first one carries the node, as Envoy's does."""
        if self._first:
            req.node.CopyFrom(self.node)
            self._first = False
        self._requests.put_nowait(req)

    async def recv(self, within: float = DEADLINE) -> Any:
        """The next response; fails the test if none arrives before the deadline."""
        return await asyncio.wait_for(self._responses.get(), within)

    async def expect_nothing(self, quiet: float = QUIET) -> None:
        """Fail if any response arrives within ``quiet`` seconds."""
        with contextlib.suppress(TimeoutError):
            response = await asyncio.wait_for(self._responses.get(), quiet)
            raise AssertionError(
                f"unexpected response: {response.type_url} +{added(response)} -{removed(response)}"
            )

    async def close(self) -> None:
        """End the stream from the client side and close the channel."""
        self._requests.put_nowait(None)
        self.call.cancel()
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
            await self._reader
        await self._channel.close()


@contextlib.asynccontextmanager
async def serving(
    cache: SnapshotCache, on_sync_change: Callable[[str | None], None] | None = None
) -> AsyncIterator[tuple[str, AdsServer]]:
    """A real grpc.aio server with ADS (SotW and delta) on 127.0.0.1, port chosen by the OS."""
    server = grpc.aio.server()
    ads = add_ads_to_server(server, cache, on_sync_change)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}", ads
    finally:
        await ads.close(grace=1.0)
        await server.stop(None)


@contextlib.asynccontextmanager
async def delta_proxies(target: str, *nodes: Any) -> AsyncIterator[list[DeltaProxy]]:
    """Connected DeltaProxies, closed on exit."""
    clients = [DeltaProxy(target, n) for n in nodes]
    try:
        yield clients
    finally:
        for client in clients:
            await client.close()


async def delta_handshake(
    proxy: DeltaProxy, eds: Iterable[str] = ("c1",), rds: Iterable[str] = ("r1",)
) -> dict[str, Any]:
    """Start the way Envoy does (legacy wildcard CDS, EDS, LDS, RDS, each ACKed)."""
    proxy.send(delta_request(CLUSTER_TYPE))
    cds = await proxy.recv()
    assert cds.type_url == CLUSTER_TYPE
    proxy.send(delta_request(ENDPOINT_TYPE, eds))
    proxy.send(delta_ack(cds))
    eds_response = await proxy.recv()
    assert eds_response.type_url == ENDPOINT_TYPE
    proxy.send(delta_ack(eds_response))
    proxy.send(delta_request(LISTENER_TYPE))
    lds = await proxy.recv()
    assert lds.type_url == LISTENER_TYPE
    proxy.send(delta_request(ROUTE_TYPE, rds))
    proxy.send(delta_ack(lds))
    rds_response = await proxy.recv()
    assert rds_response.type_url == ROUTE_TYPE
    proxy.send(delta_ack(rds_response))
    return {
        CLUSTER_TYPE: cds,
        ENDPOINT_TYPE: eds_response,
        LISTENER_TYPE: lds,
        ROUTE_TYPE: rds_response,
    }
