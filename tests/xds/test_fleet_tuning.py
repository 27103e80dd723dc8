"""Fleet tuning of the SotW ADS server: shared subscriptions, shared response bodies, options.

What lets one control plane serve a thousand proxies: streams of one Gateway share their
subscribed name sets and the bytes of each response body, and the server runs with the
control plane's gRPC options (benchmarks/fanout.py measures the effect).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import weakref
from collections.abc import AsyncIterator
from typing import Any

import grpc
from envoy.service.discovery.v3 import discovery_pb2
from support.xds_clients import DEADLINE
from test_ads_support import cluster, endpoints, gateway, handshake, node, proxies, request

from translator.result import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    GatewayResources,
)
from xds_server import streams
from xds_server.ads import (
    AdsServer,
    Response,
    add_ads_to_server,
    apply_request,
    encode_response,
    new_stream_state,
)
from xds_server.app import GRPC_SERVER_OPTIONS
from xds_server.cache import SnapshotCache
from xds_server.streams import shared_names

GW = "ns/gw"


def test_equal_name_sets_are_one_object() -> None:
    """Equal subscriptions give the same frozenset; different ones do not."""
    first = shared_names(["b", "a", "c"])
    assert shared_names(iter(["a", "b", "c"])) is first
    assert shared_names(["a", "b"]) is not first
    assert shared_names(["a", "b"]) == frozenset({"a", "b"})


def test_shared_name_sets_are_held_weakly() -> None:
    """Once no stream holds a name set, the sharing table lets it go."""
    held = shared_names(["weakly-held-name"])
    key = hash(held)
    assert streams._SHARED_NAMES.get(key) is held
    del held
    gc.collect()
    assert streams._SHARED_NAMES.get(key) is None


def test_streams_of_one_gateway_share_their_eds_subscription() -> None:
    """Two proxies subscribing to the same 1,000 EDS names hold one set between them."""
    names = [f"cluster-{i}" for i in range(1000)]
    states = [new_stream_state(node(GW, f"proxy-{i}")) for i in range(2)]
    for state in states:
        apply_request(state, request(ENDPOINT_TYPE, list(names)), 0.0, 0.0)
    first, second = (s.types[ENDPOINT_TYPE].names for s in states)
    assert first == frozenset(names)
    assert first is second


@contextlib.asynccontextmanager
async def _tuned_server(cache: SnapshotCache) -> AsyncIterator[str]:
    """ADS on a grpc.aio server built with the control plane's GRPC_SERVER_OPTIONS."""
    server = grpc.aio.server(options=GRPC_SERVER_OPTIONS)
    sotw = add_ads_to_server(server, cache)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await sotw.close(grace=1.0)
        await server.stop(None)


def _snapshot(resources: GatewayResources) -> SnapshotCache:
    cache = SnapshotCache()
    cache.set_snapshot({GW: resources})
    return cache


def test_encoded_responses_equal_protobuf_serialization() -> None:
    """The shared body plus each stream's nonce is byte for byte what protobuf would write."""
    cache = _snapshot(gateway(clusters=("c1", "c2")))
    snapshot = cache.get(GW)
    assert snapshot is not None
    response = Response(CLUSTER_TYPE, snapshot.types[CLUSTER_TYPE])
    for nonce in ("1", "42", "1"):
        data = encode_response(response, nonce)
        parsed = discovery_pb2.DiscoveryResponse.FromString(data)
        assert parsed.nonce == nonce
        assert parsed.version_info == snapshot.types[CLUSTER_TYPE].version
        assert [r.type_url for r in parsed.resources] == [CLUSTER_TYPE, CLUSTER_TYPE]
        assert parsed.SerializeToString() == data


def test_a_changed_type_set_is_encoded_anew() -> None:
    """The body memo is keyed by the TypeSet itself: new content never reuses old bytes."""
    old = _snapshot(gateway(clusters=("c1",))).get(GW)
    new = _snapshot(
        GatewayResources(clusters=(cluster("c1", connect_timeout=7),), endpoints=(endpoints("c1"),))
    ).get(GW)
    assert old is not None
    assert new is not None
    before = encode_response(Response(CLUSTER_TYPE, old.types[CLUSTER_TYPE]), "1")
    after = encode_response(Response(CLUSTER_TYPE, new.types[CLUSTER_TYPE]), "1")
    assert before != after
    parsed = discovery_pb2.DiscoveryResponse.FromString(after)
    assert parsed.version_info == new.types[CLUSTER_TYPE].version


def test_handshake_through_the_tuned_server() -> None:
    """The whole Envoy-like start (CDS, EDS, LDS, RDS, each ACKed) works with the options."""

    async def scenario() -> None:
        async with (
            _tuned_server(_snapshot(gateway())) as target,
            proxies(target, node(GW)) as [proxy],
        ):
            last = await handshake(proxy)
            assert set(last) == {CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE}

    asyncio.run(scenario())


class _Weakly:
    """A DiscoveryRequest that can be weakly referenced (protobuf messages cannot)."""

    def __init__(self, message: Any) -> None:
        self._message = message

    def __getattr__(self, name: str) -> Any:
        return getattr(self._message, name)


class _QueueStream:
    """The two-method ``Stream``: requests from a queue, responses into a list."""

    def __init__(self) -> None:
        self.requests: asyncio.Queue[Any] = asyncio.Queue()
        self.sent: list[bytes] = []

    async def recv(self) -> Any:
        return await self.requests.get()

    async def send(self, data: bytes) -> None:
        self.sent.append(data)


def test_an_idle_stream_keeps_no_request_alive() -> None:
    """Parsed requests (one name per resource: tens of KB) are dropped once handled."""

    async def scenario() -> None:
        server = AdsServer(_snapshot(gateway()))
        stream = _QueueStream()
        first = _Weakly(request(CLUSTER_TYPE, node_msg=node(GW)))
        second = _Weakly(request(LISTENER_TYPE))
        refs = [weakref.ref(first), weakref.ref(second)]
        stream.requests.put_nowait(first)
        stream.requests.put_nowait(second)
        del first, second
        serving = asyncio.create_task(server.serve(stream))
        deadline = asyncio.get_running_loop().time() + DEADLINE
        while not (stream.sent and stream.requests.empty()):  # both read, CDS answered
            assert asyncio.get_running_loop().time() < deadline, stream.sent
            await asyncio.sleep(0.01)
        gc.collect()
        assert [ref() for ref in refs] == [None, None]
        stream.requests.put_nowait(None)
        await asyncio.wait_for(serving, DEADLINE)
        await server.close(grace=1.0)

    asyncio.run(scenario())
