"""Make-before-break over real gRPC: the order of a change, under rapid changes too.

``rds_names``/``listener_routes`` and ``split_gateway`` serve the delta ordering tests too;
that a slow proxy gets only the newest version is in test_rules_both_protocols.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from support.xds_clients import QUIET, handle_until_quiet
from test_ads_support import (
    Proxy,
    ack,
    ads_server,
    cluster,
    decode,
    endpoints,
    gateway,
    listener,
    names,
    node,
    proxies,
    request,
    route_clusters,
    route_config,
)

from translator.result import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    TYPE_KEYS,
    GatewayResources,
)
from xds_server.cache import SnapshotCache

CDS, EDS, LDS, RDS = CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE


def rds_names(message: Any) -> tuple[str, ...]:
    """The route configs a Listener's HTTP connection managers load over RDS."""
    found = set()
    for chain in message.filter_chains:
        for network_filter in chain.filters:
            manager = hcm_pb2.HttpConnectionManager()
            network_filter.typed_config.Unpack(manager)
            found.add(manager.rds.route_config_name)
    return tuple(sorted(found))


def listener_routes(response: Any) -> tuple[str, ...]:
    """The RDS names the listeners of an LDS response subscribe to."""
    return tuple(sorted({name for item in decode(response) for name in rds_names(item)}))


class EnvoyLike:
    """Answers as Envoy 1.40 does, and records every unsafe configuration it is sent.

    While processing a CDS (LDS) response Envoy subscribes to the CLAs (route configs) it
    references. New or changed EDS clusters warm until their CLA arrives, and Envoy holds
    the CDS ACK until every cluster has warmed. It asks for listeners once its first
    clusters are ACKed. A route naming a cluster not yet ACKed, or a cluster removed while
    the ACKed routes still use it, is a violation.
    """

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.transcript: list[tuple[str, list[str]]] = []
        self.violations: list[str] = []
        self.clusters: set[str] = set()
        self.routed: set[str] = set()
        self.subscribed: dict[str, tuple[str, ...]] = {}
        self.last: dict[str, Any] = {}
        self.known: dict[str, bytes] = {}  # cluster name -> content last received
        self.warming: set[str] = set()
        self.unacked_cds: Any = None

    def start(self) -> None:
        self.proxy.send(request(CDS))

    async def run_until_quiet(self, quiet: float = QUIET) -> list[tuple[str, list[str]]]:
        """Handle responses until none comes for ``quiet`` seconds; the (type, names) handled."""
        start = len(self.transcript)
        await handle_until_quiet(self.proxy, self.handle, quiet)
        return self.transcript[start:]

    def _subscribe(self, type_url: str, wanted: tuple[str, ...]) -> None:
        if self.subscribed.get(type_url) != wanted:
            self.subscribed[type_url] = wanted
            last = self.last.get(type_url)
            nonce, version = (last.nonce, last.version_info) if last is not None else ("", "")
            self.proxy.send(request(type_url, wanted, nonce=nonce, version=version))

    def _ack(self, response: Any) -> None:
        self.proxy.send(ack(response, self.subscribed.get(response.type_url, ())))

    def _clusters(self, response: Any) -> None:
        got = {c.name: c.SerializeToString(deterministic=True) for c in decode(response)}
        removed_in_use = (self.clusters - got.keys()) & self.routed
        if removed_in_use:
            self.violations.append(f"clusters removed while routed to: {removed_in_use}")
        self.warming = {name for name, data in got.items() if self.known.get(name) != data}
        self.known = got
        self._subscribe(EDS, tuple(sorted(got)))
        self.unacked_cds = response

    def _cds_warmed(self) -> None:
        if self.unacked_cds is not None and not self.warming:
            self.clusters = set(names(self.unacked_cds))
            self._ack(self.unacked_cds)
            self.unacked_cds = None
            if LDS not in self.subscribed:
                self._subscribe(LDS, ())

    def handle(self, response: Any) -> None:
        type_url = response.type_url
        self.transcript.append((TYPE_KEYS[type_url], names(response)))
        self.last[type_url] = response
        if type_url == CDS:
            self._clusters(response)
        elif type_url == EDS:
            self.warming -= set(names(response))
            self._ack(response)
        elif type_url == LDS:
            self._subscribe(RDS, listener_routes(response))
            self._ack(response)
        elif type_url == RDS:
            unknown = route_clusters(response) - self.clusters
            if unknown:
                self.violations.append(f"routes to clusters not ACKed yet: {unknown}")
            self.routed = route_clusters(response)
            self._ack(response)
        self._cds_warmed()


def split_gateway() -> GatewayResources:
    """Version 2: r1 moves to new cluster c2, a new listener l2 with route config r2 uses c2."""
    return GatewayResources(
        listeners=(listener("l1", "r1"), listener("l2", "r2", 10081)),
        routes=(route_config("r1", [("/", "c2")]), route_config("r2", [("/", "c2")])),
        clusters=(cluster("c2"),),
        endpoints=(endpoints("c2"),),
    )


def test_a_change_adds_clusters_first_and_removes_them_last() -> None:
    """CDS(union) -> EDS -> LDS -> RDS -> CDS(removal); no route before its cluster's ACK."""

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot({"ns/gw": gateway()})
        async with ads_server(cache) as (target, _ads), proxies(target, node("ns/gw")) as [proxy]:
            envoy = EnvoyLike(proxy)
            envoy.start()
            assert await envoy.run_until_quiet() == [
                ("clusters", ["c1"]),
                ("endpoints", ["c1"]),
                ("listeners", ["l1"]),
                ("routes", ["r1"]),
            ]
            cache.set_snapshot({"ns/gw": split_gateway()})
            assert await envoy.run_until_quiet() == [
                ("clusters", ["c1", "c2"]),
                ("endpoints", ["c2"]),
                ("listeners", ["l1", "l2"]),
                ("routes", ["r1", "r2"]),
                ("clusters", ["c2"]),
            ]
            assert envoy.violations == []

    asyncio.run(scenario())


def test_rapid_changes_never_route_to_unacked_or_removed_clusters() -> None:
    """Snapshots replaced faster than the proxy ACKs still keep make-before-break."""

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot({"ns/gw": gateway()})
        async with ads_server(cache) as (target, _ads), proxies(target, node("ns/gw")) as [proxy]:
            envoy = EnvoyLike(proxy)
            envoy.start()
            await envoy.run_until_quiet()
            for i in range(2, 8):
                name = f"c{i}"
                cache.set_snapshot({"ns/gw": gateway(routes=[("/", name)], clusters=(name,))})
                await envoy.run_until_quiet(quiet=0.01)  # interleave: changes land mid-transition
            await envoy.run_until_quiet()
            assert envoy.violations == []
            assert envoy.clusters == {"c7"}
            assert envoy.routed == {"c7"}

    asyncio.run(scenario())
