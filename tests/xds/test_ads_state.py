"""The SotW decision function and stream state, without sockets (apply_request/next_response)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from envoy.service.discovery.v3 import discovery_pb2
from support.xds_clients import QUIET, MemoryStream, snapshot
from test_ads_support import gateway, names, node, request

from translator.result import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    SECRET_TYPE,
)
from xds_server.ads import (
    AdsServer,
    Outcome,
    StreamState,
    apply_request,
    describe,
    encode_response,
    new_stream_state,
    next_response,
    record_sent,
)
from xds_server.cache import GatewaySnapshot, SnapshotCache

CDS, EDS, SDS, LDS, RDS = CLUSTER_TYPE, ENDPOINT_TYPE, SECRET_TYPE, LISTENER_TYPE, ROUTE_TYPE


@dataclass(frozen=True, slots=True)
class Pushed:
    type_url: str
    names: list[str]
    version: str
    nonce: str


class Stream:
    """A stream state driven by hand: requests in, decisions out, a fake clock."""

    def __init__(self) -> None:
        self.state: StreamState = new_stream_state(node("ns/gw"))
        self.now = 100.0

    def send(self, type_url: str, names_: tuple[str, ...] = (), **kwargs: Any) -> Outcome:
        self.now += 1
        return apply_request(self.state, request(type_url, names_, **kwargs), self.now, 0.0)

    def ack(self, pushed: Pushed, names_: tuple[str, ...] = ()) -> Outcome:
        return self.send(pushed.type_url, names_, nonce=pushed.nonce, version=pushed.version)

    def nack(self, pushed: Pushed, names_: tuple[str, ...] = ()) -> Outcome:
        return self.send(pushed.type_url, names_, nonce=pushed.nonce, error="rejected")

    def step(self, target: GatewaySnapshot | None) -> Pushed | None:
        response = next_response(self.state, target)
        if response is None:
            return None
        nonce = record_sent(self.state, response, self.now)
        parsed = discovery_pb2.DiscoveryResponse.FromString(encode_response(response, nonce))
        assert parsed.nonce == nonce
        return Pushed(response.type_url, names(parsed), parsed.version_info, nonce)

    def expect(self, target: GatewaySnapshot, type_url: str, expected: list[str]) -> Pushed:
        pushed = self.step(target)
        assert pushed is not None, f"expected {type_url}, nothing was due"
        assert (pushed.type_url, pushed.names) == (type_url, expected)
        return pushed


def settle(stream: Stream, target: GatewaySnapshot) -> None:
    """Bring a fresh stream to steady state the way Envoy starts: CDS, EDS, LDS, RDS."""
    stream.send(CDS)
    cds = stream.expect(target, CDS, ["c1"])
    stream.send(EDS, ("c1",))
    stream.ack(cds)
    eds = stream.expect(target, EDS, ["c1"])
    stream.ack(eds, ("c1",))
    stream.send(LDS)
    lds = stream.expect(target, LDS, ["l1"])
    stream.send(RDS, ("r1",))
    stream.ack(lds)
    rds = stream.expect(target, RDS, ["r1"])
    stream.ack(rds, ("r1",))
    assert stream.step(target) is None


def test_nothing_is_due_without_a_target() -> None:
    """With no snapshot for the stream's Gateway no response is due, whatever was requested."""
    stream = Stream()
    stream.send(CDS)
    stream.send(LDS)
    assert stream.step(None) is None


def test_startup_order_is_cds_eds_lds_rds() -> None:
    """CDS; EDS once subscribed (before the CDS ACK); LDS after CDS and EDS settle; then RDS."""
    target = snapshot(gateway())
    stream = Stream()
    stream.send(CDS)
    stream.send(LDS)
    cds = stream.expect(target, CDS, ["c1"])
    assert stream.step(target) is None  # EDS does not cover c1 yet; LDS waits for CDS
    stream.send(EDS, ("c1",))
    eds = stream.expect(target, EDS, ["c1"])  # Envoy ACKs CDS only once c1 has endpoints
    stream.ack(eds, ("c1",))
    assert stream.step(target) is None  # LDS waits for the CDS ACK
    stream.ack(cds)
    lds = stream.expect(target, LDS, ["l1"])
    stream.send(RDS, ("r1",))
    assert stream.step(target) is None  # RDS waits for LDS to settle
    stream.ack(lds)
    stream.expect(target, RDS, ["r1"])


def test_eds_waits_until_the_subscription_covers_the_clusters_sent() -> None:
    """EDS is not answered while the CLAs of the clusters sent are not all subscribed."""
    target = snapshot(gateway(clusters=("c1", "c2")))
    stream = Stream()
    stream.send(CDS)
    stream.expect(target, CDS, ["c1", "c2"])
    stream.send(EDS, ("c1",))
    assert stream.step(target) is None
    stream.send(EDS, ("c1", "c2"))
    stream.expect(target, EDS, ["c1", "c2"])


def test_a_nacked_cds_does_not_wait_for_endpoints_of_rejected_clusters() -> None:
    """After a CDS NACK only the clusters Envoy kept need EDS coverage; the rest moves on."""
    stream = Stream()
    settle(stream, snapshot(gateway()))
    target = snapshot(gateway(routes=[("/", "c2")], clusters=("c2",)))
    union = stream.expect(target, CDS, ["c1", "c2"])
    assert stream.step(target) is None  # waiting for Envoy to subscribe to c2
    stream.nack(union)
    eds = stream.expect(target, EDS, [])  # c1's CLA left the target (Envoy keeps its copy)
    stream.ack(eds, ("c1",))
    rds = stream.expect(target, RDS, ["r1"])  # a NACK settles CDS: routes follow
    stream.ack(rds, ("r1",))
    stream.expect(target, CDS, ["c2"])  # the target's clusters: new content, may be retried


def test_a_change_goes_union_eds_routes_then_removal() -> None:
    """Adding c2 and routing to it: CDS(c1+c2), EDS, RDS, then CDS(c2) removes c1."""
    stream = Stream()
    settle(stream, snapshot(gateway()))
    target = snapshot(gateway(routes=[("/", "c2")], clusters=("c2",)))
    union = stream.expect(target, CDS, ["c1", "c2"])
    assert stream.step(target) is None
    stream.send(EDS, ("c1", "c2"), nonce=stream.state.types[EDS].nonce)
    stream.ack(union)
    eds = stream.expect(target, EDS, ["c2"])  # c1's CLA is gone: Envoy keeps what it has
    stream.ack(eds, ("c1", "c2"))
    rds = stream.expect(target, RDS, ["r1"])
    assert stream.step(target) is None
    stream.ack(rds, ("r1",))
    removal = stream.expect(target, CDS, ["c2"])
    stream.send(EDS, ("c2",), nonce=eds.nonce)
    stream.ack(removal)
    assert stream.step(target) is None  # c2's endpoints were sent already


def test_a_changed_cluster_gets_its_endpoints_again() -> None:
    """A cluster whose content changed is followed by EDS even though EDS's version is the same."""
    stream = Stream()
    settle(stream, snapshot(gateway()))
    before = stream.state.types[EDS].version
    changed = gateway()
    changed.clusters[0].connect_timeout.seconds = 7
    target = snapshot(changed)
    cds = stream.expect(target, CDS, ["c1"])
    stream.ack(cds)
    eds = stream.expect(target, EDS, ["c1"])
    assert eds.version == before
    stream.ack(eds, ("c1",))
    assert stream.step(target) is None


def test_a_nack_is_not_answered_with_the_same_content() -> None:
    """After a NACK nothing is re-sent until the content changes; then the new version goes."""
    stream = Stream()
    settle(stream, snapshot(gateway()))
    bad = snapshot(gateway(routes=[("/bad", "c1")]))
    rds = stream.expect(bad, RDS, ["r1"])
    outcome = stream.nack(rds, ("r1",))
    assert (outcome.kind, outcome.version, outcome.message) == ("nack", rds.version, "rejected")
    assert stream.step(bad) is None
    stream.send(RDS, ("r1",), nonce=rds.nonce)  # a later subscription update: still nothing
    assert stream.step(bad) is None
    good = snapshot(gateway(routes=[("/good", "c1")]))
    fixed = stream.expect(good, RDS, ["r1"])
    assert fixed.version != rds.version
    assert stream.ack(fixed, ("r1",)).kind == "ack"
    assert stream.state.types[RDS].acked_version == fixed.version


def test_a_stale_nonce_is_ignored_entirely() -> None:
    """A request quoting an older nonce changes nothing: not the pending state, not the names."""
    stream = Stream()
    settle(stream, snapshot(gateway(extra_routes=("r2",))))
    old = stream.state.types[RDS].nonce
    target = snapshot(gateway(routes=[("/x", "c1")], extra_routes=("r2",)))
    rds = stream.expect(target, RDS, ["r1"])
    outcome = stream.send(RDS, ("r1", "r2"), nonce=old)
    assert outcome.kind == "stale"
    assert stream.state.types[RDS].pending
    assert stream.state.types[RDS].names == {"r1"}
    assert stream.step(target) is None
    stream.ack(rds, ("r1", "r2"))
    stream.expect(target, RDS, ["r1", "r2"])


def test_only_requested_names_that_exist_are_sent() -> None:
    """RDS/EDS responses hold the requested resources that exist, nothing else."""
    stream = Stream()
    target = snapshot(gateway(clusters=("c1", "c2")))
    stream.send(CDS)
    cds = stream.expect(target, CDS, ["c1", "c2"])
    stream.send(EDS, ("c2", "missing", "c1"))
    stream.ack(cds)
    stream.expect(target, EDS, ["c1", "c2"])
    stream.send(SDS, ("nope",))
    stream.expect(target, SDS, [])


def test_a_subscription_change_is_answered_only_when_content_changes() -> None:
    """An ACK adding an existing name gets a response; adding a missing name does not."""
    stream = Stream()
    target = snapshot(gateway(extra_routes=("r2",)))
    settle(stream, target)
    rds = stream.state.types[RDS]
    assert stream.send(RDS, ("r1", "r9"), nonce=rds.nonce).kind == "update"
    assert stream.step(target) is None
    stream.send(RDS, ("r1", "r2"), nonce=rds.nonce)
    stream.expect(target, RDS, ["r1", "r2"])


def test_a_slow_proxy_gets_only_the_newest_version() -> None:
    """Versions produced while a response awaits its ACK are skipped; the newest is sent."""
    stream = Stream()
    settle(stream, snapshot(gateway()))
    first = stream.expect(snapshot(gateway(routes=[("/1", "c1")])), RDS, ["r1"])
    for i in range(2, 6):
        assert stream.step(snapshot(gateway(routes=[(f"/{i}", "c1")]))) is None
    newest = snapshot(gateway(routes=[("/5", "c1")]))
    stream.ack(first, ("r1",))
    last = stream.expect(newest, RDS, ["r1"])
    assert last.version == newest.types[RDS].version
    assert stream.step(newest) is None


def test_a_reconnecting_proxy_that_has_the_content_gets_nothing() -> None:
    """Initial requests naming the current versions are taken as ACKed: nothing is re-sent."""
    target = snapshot(gateway())
    stream = Stream()
    stream.send(CDS, version=target.types[CDS].version)
    stream.send(EDS, ("c1",), version=target.types[EDS].version)
    stream.send(LDS, version=target.types[LDS].version)
    stream.send(RDS, ("r1",), version=target.types[RDS].version)
    assert stream.step(target) is None
    assert stream.state.types[CDS].acked.keys() == {"c1"}
    moved = snapshot(gateway(routes=[("/", "c2")], clusters=("c2",)))
    stream.expect(moved, CDS, ["c1", "c2"])  # the adopted clusters are kept until cleanup


def test_a_nacked_listener_keeps_old_clusters_until_a_good_version() -> None:
    """A NACKed LDS does not block RDS, but old clusters stay while the proxy may use them."""
    stream = Stream()
    settle(stream, snapshot(gateway()))
    target = snapshot(gateway(routes=[("/", "c2")], clusters=("c2",), listener_port=1))
    union = stream.expect(target, CDS, ["c1", "c2"])
    stream.send(EDS, ("c1", "c2"), nonce=stream.state.types[EDS].nonce)
    stream.ack(union)
    stream.ack(stream.expect(target, EDS, ["c2"]), ("c1", "c2"))
    stream.nack(stream.expect(target, LDS, ["l1"]))
    stream.ack(stream.expect(target, RDS, ["r1"]), ("r1",))
    assert stream.step(target) is None  # the proxy still runs its old listener: keep c1
    fixed = snapshot(gateway(routes=[("/", "c2")], clusters=("c2",), listener_port=2))
    stream.ack(stream.expect(fixed, LDS, ["l1"]))
    stream.expect(fixed, CDS, ["c2"])


def test_unknown_types_and_late_acks_change_nothing() -> None:
    """Requests of unknown types are ignored; a repeated ACK is a subscription update only."""
    stream = Stream()
    target = snapshot(gateway())
    settle(stream, target)
    assert stream.send("type.googleapis.com/example.Unknown").kind == "unknown_type"
    cds = stream.state.types[CDS]
    outcome = stream.send(CDS, nonce=cds.nonce, version=cds.version)
    assert outcome.kind == "update"
    assert stream.step(target) is None


def test_describe_is_json() -> None:
    """The registry entry of a stream is JSON-able and shows sent, ACKed and NACKed versions."""
    stream = Stream()
    settle(stream, snapshot(gateway()))
    rds = stream.expect(snapshot(gateway(routes=[("/b", "c1")])), RDS, ["r1"])
    stream.nack(rds, ("r1",))
    entry = json.loads(json.dumps(describe(stream.state)))
    assert entry["gateway"] == "ns/gw"
    assert entry["node"]["id"] == "proxy-1"
    assert entry["types"]["routes"]["nack"]["message"] == "rejected"
    assert entry["types"]["routes"]["nack"]["version"] == rds.version
    assert entry["types"]["clusters"]["acked_version"] == stream.state.types[CDS].version


def test_the_server_loop_runs_over_any_stream() -> None:
    """AdsServer.serve answers, waits for a snapshot, and ends when the proxy closes its side."""

    async def scenario() -> None:
        cache = SnapshotCache()
        ads = AdsServer(cache)
        stream = MemoryStream(discovery_pb2.DiscoveryResponse)
        first = request(CDS, node_msg=node("ns/gw"))
        stream.requests.put_nowait(first)
        serving = asyncio.create_task(ads.serve(stream, "memory"))
        await asyncio.sleep(0)
        assert [c["peer"] for c in ads.clients()] == ["memory"]
        assert stream.responses.empty()
        cache.set_snapshot({"ns/gw": gateway()})
        response = await asyncio.wait_for(stream.responses.get(), 5)
        assert names(response) == ["c1"]
        stream.requests.put_nowait(None)
        await asyncio.wait_for(serving, 5)
        assert ads.clients() == []
        await asyncio.sleep(QUIET / 10)

    asyncio.run(scenario())
