"""ADS test clients and servers shared by the SotW and delta xDS tests (no tests here).

``AdsClient`` is a real grpc.aio client of one ADS method with a request queue, acting as
Envoy; ``test_ads_support.Proxy`` (StreamAggregatedResources) and
``test_delta_support.DeltaProxy`` (DeltaAggregatedResources) name the method and how a
response reads in a failure message. ``serving`` runs a real ADS server (SotW and delta) on
loopback; ``connected`` opens clients and closes them; ``envoy_handshake`` starts a stream
the way Envoy does, with the protocol's own request builders. ``XdsProtocol`` is one
protocol as the tests of rules common to SotW and delta drive it (``test_ads_support.SOTW``,
``test_delta_support.DELTA``); ``handle_until_quiet`` feeds responses to an Envoy-like
handler; ``MemoryStream`` lets a server loop run over queues instead of gRPC. ``snapshot``,
``run`` and ``metric`` are the small helpers the state and protocol tests of both protocols
use.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc
from prometheus_client import REGISTRY

from translator.result import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    GatewayResources,
)
from xds_server.ads import AdsServer, add_ads_to_server
from xds_server.cache import GatewaySnapshot, SnapshotCache

DEADLINE = 5.0  # seconds any expected response may take
QUIET = 0.3  # seconds of silence that show nothing more is sent


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    """Run an async test scenario to completion."""
    asyncio.run(scenario())


def metric(name: str, **labels: str) -> float:
    """A sample of the default Prometheus registry (0.0 when it was never set)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def snapshot(resources: GatewayResources, key: str = "ns/gw") -> GatewaySnapshot:
    """The cache's snapshot of ``resources`` as Gateway ``key``."""
    cache = SnapshotCache()
    cache.set_snapshot({key: resources})
    result = cache.get(key)
    assert result is not None
    return result


class AdsClient:
    """A grpc.aio ADS client acting as one Envoy: queue requests, await responses."""

    method: ClassVar[str]  # the AggregatedDiscoveryService method this client calls

    def __init__(self, target: str, node_msg: Any) -> None:
        self.node = node_msg
        self._channel = grpc.aio.insecure_channel(target)
        self._requests: asyncio.Queue[Any] = asyncio.Queue()
        self._responses: asyncio.Queue[Any] = asyncio.Queue()
        self._first = True
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(self._channel)
        self.call = getattr(stub, self.method)(self._request_iterator())
        self._reader = asyncio.create_task(self._read())

    def summary(self, response: Any) -> str:
        """How an unexpected response reads in a failure message."""
        return str(response.type_url)

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
            raise AssertionError(f"unexpected response: {self.summary(response)}")

    async def close(self) -> None:
        """End the stream from the client side and close the channel."""
        self._requests.put_nowait(None)
        self.call.cancel()
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
            await self._reader
        await self._channel.close()


class MemoryStream:
    """The two-method Stream (recv, send) over in-memory queues: a server loop, no sockets."""

    def __init__(self, response_type: Any) -> None:
        self.response_type = response_type  # the protobuf message sent bytes are parsed as
        self.requests: asyncio.Queue[Any] = asyncio.Queue()
        self.responses: asyncio.Queue[Any] = asyncio.Queue()

    async def recv(self) -> Any:
        return await self.requests.get()

    async def send(self, data: bytes) -> None:
        self.responses.put_nowait(self.response_type.FromString(data))


C = TypeVar("C", bound=AdsClient)


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
async def connected(kind: type[C], target: str, *nodes: Any) -> AsyncIterator[list[C]]:
    """Connected clients of ``kind``, one per node, closed on exit."""
    clients = [kind(target, n) for n in nodes]
    try:
        yield clients
    finally:
        for client in clients:
            await client.close()


async def envoy_handshake(
    proxy: AdsClient,
    subscribe: Callable[[str, Iterable[str]], Any],
    ack: Callable[[Any, Iterable[str]], Any],
    eds: Iterable[str],
    rds: Iterable[str],
) -> dict[str, Any]:
    """Start the way Envoy does (CDS, EDS, LDS, RDS, each ACKed); the last response by type.

    ``subscribe(type_url, names)`` builds a first request, ``ack(response, names)`` the ACK
    of a response while subscribed to ``names``.
    """
    proxy.send(subscribe(CLUSTER_TYPE, ()))
    cds = await proxy.recv()
    assert cds.type_url == CLUSTER_TYPE
    proxy.send(subscribe(ENDPOINT_TYPE, eds))
    proxy.send(ack(cds, ()))
    eds_response = await proxy.recv()
    assert eds_response.type_url == ENDPOINT_TYPE
    proxy.send(ack(eds_response, eds))
    proxy.send(subscribe(LISTENER_TYPE, ()))
    lds = await proxy.recv()
    assert lds.type_url == LISTENER_TYPE
    proxy.send(subscribe(ROUTE_TYPE, rds))
    proxy.send(ack(lds, ()))
    rds_response = await proxy.recv()
    assert rds_response.type_url == ROUTE_TYPE
    proxy.send(ack(rds_response, rds))
    return {
        CLUSTER_TYPE: cds,
        ENDPOINT_TYPE: eds_response,
        LISTENER_TYPE: lds,
        ROUTE_TYPE: rds_response,
    }


@dataclass(frozen=True, slots=True)
class XdsProtocol:
    """One xDS protocol (SotW or delta) as a test of a rule common to both drives it."""

    name: str  # "sotw" or "delta": the test id
    client: type[AdsClient]  # the client acting as Envoy
    subscribe: Callable[[str, Iterable[str]], Any]  # a first request: type_url, names
    ack: Callable[[Any, Iterable[str]], Any]  # the ACK of a response while subscribed to names
    names: Callable[[Any], list[str]]  # the names of the resources a response sends, in order
    version: Callable[[Any], str]  # the version of its type a response brings
    decode: Callable[[Any], list[Any]]  # the resources of a response as messages

    def connect(
        self, target: str, *nodes: Any
    ) -> contextlib.AbstractAsyncContextManager[list[AdsClient]]:
        """Connected clients, one per node, closed on exit."""
        return connected(self.client, target, *nodes)

    async def handshake(
        self, proxy: AdsClient, eds: Iterable[str] = ("c1",), rds: Iterable[str] = ("r1",)
    ) -> dict[str, Any]:
        """Start the way Envoy does (CDS, EDS, LDS, RDS, each ACKed); the last response by type."""
        return await envoy_handshake(proxy, self.subscribe, self.ack, eds, rds)


async def handle_until_quiet(
    proxy: AdsClient, handle: Callable[[Any], None], quiet: float = QUIET
) -> None:
    """Hand each response to ``handle`` until none comes for ``quiet`` seconds."""
    while True:
        try:
            response = await proxy.recv(within=quiet)
        except TimeoutError:
            return
        handle(response)
