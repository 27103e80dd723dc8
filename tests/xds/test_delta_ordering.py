"""Delta make-before-break over real gRPC: the order of a change, under rapid changes too."""

from __future__ import annotations

import asyncio
from typing import Any

from support.xds_clients import QUIET, handle_until_quiet, serving
from test_ads_ordering import rds_names, split_gateway
from test_ads_support import gateway, node
from test_delta_support import (
    DeltaProxy,
    added,
    delta_ack,
    delta_decode,
    delta_proxies,
    delta_request,
    removed,
)

from translator.result import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, TYPE_KEYS
from xds_server.cache import SnapshotCache

CDS, EDS, LDS, RDS = CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE


class DeltaEnvoyLike:
    """Answers as Envoy 1.40 does over delta ADS, and records every unsafe configuration.

    CDS adds/changes clusters and removes the named ones; it subscribes to the CLA of each
    new cluster and unsubscribes those of removed ones. New or changed EDS clusters warm
    until their CLA arrives, and the CDS ACK waits until all warmed. LDS is requested once
    the first clusters are ACKed; listeners subscribe to their route configs. A route to a
    cluster that is not active (warmed), or a cluster removed while routed to, is a
    violation.
    """

    def __init__(self, proxy: DeltaProxy) -> None:
        self.proxy = proxy
        self.transcript: list[tuple[str, list[str], list[str]]] = []
        self.violations: list[str] = []
        self.known: dict[str, bytes] = {}  # cluster name -> content (active or warming)
        self.warming: set[str] = set()
        self.unacked_cds: list[Any] = []
        self.routes: dict[str, set[str]] = {}  # route config -> clusters it routes to
        self.listeners: dict[str, tuple[str, ...]] = {}
        self.rds_names: set[str] = set()
        self.lds_started = False

    @property
    def active(self) -> set[str]:
        return set(self.known) - self.warming

    @property
    def routed(self) -> set[str]:
        return set().union(*self.routes.values()) if self.routes else set()

    def start(self) -> None:
        self.proxy.send(delta_request(CDS))

    async def run_until_quiet(self, quiet: float = QUIET) -> list[tuple[str, list[str], list[str]]]:
        start = len(self.transcript)
        await handle_until_quiet(self.proxy, self.handle, quiet)
        return self.transcript[start:]

    def _clusters(self, response: Any) -> None:
        gone = set(removed(response)) & set(self.known)
        if gone & self.routed:
            self.violations.append(f"clusters removed while routed to: {gone & self.routed}")
        new = []
        for message in delta_decode(response):
            data = message.SerializeToString(deterministic=True)
            if self.known.get(message.name) != data:
                self.warming.add(message.name)
            if message.name not in self.known:
                new.append(message.name)
            self.known[message.name] = data
        for name in gone:
            del self.known[name]
            self.warming.discard(name)
        if new or gone:
            self.proxy.send(delta_request(EDS, sorted(new), sorted(gone)))
        self.unacked_cds.append(response)

    def _listeners(self, response: Any) -> None:
        for name in removed(response):
            self.listeners.pop(name, None)
        for message in delta_decode(response):
            self.listeners[message.name] = rds_names(message)
        wanted = {r for names in self.listeners.values() for r in names}
        for name in self.rds_names - wanted:
            self.routes.pop(name, None)
        new, gone = wanted - self.rds_names, self.rds_names - wanted
        self.rds_names = wanted
        if new or gone:
            self.proxy.send(delta_request(RDS, sorted(new), sorted(gone)))
        self.proxy.send(delta_ack(response))

    def _routes(self, response: Any) -> None:
        for config in delta_decode(response):
            targets = {r.route.cluster for h in config.virtual_hosts for r in h.routes}
            if targets - self.active:
                self.violations.append(f"routes to inactive clusters: {targets - self.active}")
            if config.name in self.rds_names:
                self.routes[config.name] = targets
        self.proxy.send(delta_ack(response))

    def handle(self, response: Any) -> None:
        type_url = response.type_url
        self.transcript.append((TYPE_KEYS[type_url], added(response), removed(response)))
        if type_url == CDS:
            self._clusters(response)
        elif type_url == EDS:
            self.warming -= set(added(response)) | set(removed(response))
            self.proxy.send(delta_ack(response))
        elif type_url == LDS:
            self._listeners(response)
        elif type_url == RDS:
            self._routes(response)
        if not self.warming:
            for pending in self.unacked_cds:
                self.proxy.send(delta_ack(pending))
            if self.unacked_cds and not self.lds_started:
                self.lds_started = True
                self.proxy.send(delta_request(LDS))
            self.unacked_cds = []


def test_a_change_adds_clusters_first_and_removes_them_last() -> None:
    """CDS +c2 -> EDS c2 -> LDS +l2 -> RDS r1 r2 -> CDS -c1; the CLA c1 is unsubscribed."""

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot({"ns/gw": gateway()})
        async with serving(cache) as (target, _ads), delta_proxies(target, node("ns/gw")) as [p]:
            envoy = DeltaEnvoyLike(p)
            envoy.start()
            assert await envoy.run_until_quiet() == [
                ("clusters", ["c1"], []),
                ("endpoints", ["c1"], []),
                ("listeners", ["l1"], []),
                ("routes", ["r1"], []),
            ]
            cache.set_snapshot({"ns/gw": split_gateway()})
            assert await envoy.run_until_quiet() == [
                ("clusters", ["c2"], []),
                ("endpoints", ["c2"], []),
                ("listeners", ["l2"], []),
                ("routes", ["r1", "r2"], []),
                ("clusters", [], ["c1"]),
            ]
            assert envoy.violations == []

    asyncio.run(scenario())


def test_rapid_changes_never_route_to_inactive_or_removed_clusters() -> None:
    """Snapshots replaced faster than the proxy ACKs still keep make-before-break."""

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_snapshot({"ns/gw": gateway()})
        async with serving(cache) as (target, _ads), delta_proxies(target, node("ns/gw")) as [p]:
            envoy = DeltaEnvoyLike(p)
            envoy.start()
            await envoy.run_until_quiet()
            for i in range(2, 10):
                name = f"c{i}"
                clusters = (name, f"c{i - 1}") if i % 3 == 0 else (name,)
                changed = gateway(routes=[("/", name)], clusters=clusters, endpoint_port=i)
                cache.set_snapshot({"ns/gw": changed})
                await envoy.run_until_quiet(quiet=0.01)  # interleave: changes land mid-transition
            await envoy.run_until_quiet()
            assert envoy.violations == []
            assert envoy.active == {"c8", "c9"}  # the last snapshot keeps c8 unrouted
            assert envoy.routed == {"c9"}

    asyncio.run(scenario())
