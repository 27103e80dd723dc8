"""The delta decision function and stream state, without sockets: one test per rule.

Rules from Envoy's xDS protocol documentation (incremental xDS) and our ordering rules
(make-before-break, NACKed content never re-sent, at most one response pending per type).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from envoy.service.discovery.v3 import discovery_pb2
from support.xds_clients import QUIET, MemoryStream, snapshot
from test_ads_support import cluster, endpoints, gateway, listener, node
from test_delta_support import delta_request

from translator.result import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    SECRET_TYPE,
    TYPE_ORDER,
    GatewayResources,
)
from xds_server.ads import Outcome
from xds_server.cache import GatewaySnapshot, SnapshotCache, content_version
from xds_server.delta import DeltaServer, describe, view
from xds_server.delta_state import (
    DeltaStreamState,
    apply_request,
    encode_response,
    new_stream_state,
    next_response,
    record_sent,
)
from xds_server.delta_wire import resource_entry

CDS, EDS, SDS, LDS, RDS = CLUSTER_TYPE, ENDPOINT_TYPE, SECRET_TYPE, LISTENER_TYPE, ROUTE_TYPE


@dataclass(frozen=True, slots=True)
class Pushed:
    type_url: str
    added: list[str]
    removed: list[str]
    versions: dict[str, str]
    version: str
    nonce: str


class Stream:
    """A delta stream state driven by hand: requests in, decisions out, a fake clock."""

    def __init__(self, gateway_key: str = "ns/gw") -> None:
        self.state: DeltaStreamState = new_stream_state(node(gateway_key))
        self.now = 100.0

    def send(
        self,
        type_url: str,
        subscribe: tuple[str, ...] = (),
        unsubscribe: tuple[str, ...] = (),
        **kwargs: Any,
    ) -> Outcome:
        self.now += 1
        req = delta_request(type_url, subscribe, unsubscribe, **kwargs)
        return apply_request(self.state, req, self.now, 1000.0)

    def ack(self, pushed: Pushed, subscribe: tuple[str, ...] = (), **kwargs: Any) -> Outcome:
        return self.send(pushed.type_url, subscribe, nonce=pushed.nonce, **kwargs)

    def nack(self, pushed: Pushed) -> Outcome:
        return self.send(pushed.type_url, nonce=pushed.nonce, error="rejected")

    def step(self, target: GatewaySnapshot | None) -> Pushed | None:
        response = next_response(self.state, target)
        if response is None:
            return None
        nonce = record_sent(self.state, response, self.now)
        parsed = discovery_pb2.DeltaDiscoveryResponse.FromString(encode_response(response, nonce))
        assert (parsed.nonce, parsed.type_url) == (nonce, response.type_url)
        return Pushed(
            parsed.type_url,
            [r.name for r in parsed.resources],
            list(parsed.removed_resources),
            {r.name: r.version for r in parsed.resources},
            parsed.system_version_info,
            nonce,
        )

    def expect(
        self,
        target: GatewaySnapshot,
        type_url: str,
        added: list[str],
        removed: list[str] | None = None,
    ) -> Pushed:
        pushed = self.step(target)
        assert pushed is not None, f"expected {type_url}, nothing was due"
        got = (pushed.type_url, pushed.added, pushed.removed)
        assert got == (type_url, added, removed or []), got
        return pushed

    def holds(self, type_url: str) -> set[str]:
        return set(self.state.types[type_url].held)


def settle(stream: Stream, target: GatewaySnapshot, clusters: tuple[str, ...] = ("c1",)) -> None:
    """Bring a fresh stream to steady state the way Envoy starts (legacy wildcards)."""
    stream.send(CDS)
    cds = stream.expect(target, CDS, list(clusters))
    stream.send(EDS, clusters)
    stream.ack(stream.expect(target, EDS, list(clusters)))
    stream.ack(cds)
    stream.send(LDS)
    lds = stream.expect(target, LDS, ["l1"])
    stream.send(RDS, ("r1",))
    stream.ack(lds)
    stream.ack(stream.expect(target, RDS, ["r1"]))
    assert stream.step(target) is None


def test_nothing_is_due_without_a_target() -> None:
    """With no snapshot for the stream's Gateway no response is due, whatever was requested."""
    stream = Stream()
    stream.send(CDS)
    stream.send(LDS)
    stream.send(EDS, ("c1",))
    assert stream.step(None) is None


def test_a_first_request_without_names_is_a_legacy_wildcard_for_cds_and_lds() -> None:
    """CDS/LDS: no subscribe and no unsubscribe in the first request means every resource."""
    target = snapshot(GatewayResources(listeners=(listener("a", "r"), listener("b", "r", 2))))
    stream = Stream()
    stream.send(LDS)
    assert stream.state.types[LDS].wildcard
    stream.ack(stream.expect(target, LDS, ["a", "b"]))
    cla_only = snapshot(GatewayResources(endpoints=(endpoints("c1"),)))
    stream.send(EDS)  # not a wildcard type: an empty first request subscribes to nothing
    assert not stream.state.types[EDS].wildcard
    stream.expect(cla_only, EDS, [])  # but it is answered


def test_star_subscribes_to_the_wildcard_and_unsubscribing_it_ends_it() -> None:
    """'*' is the wildcard (with explicit names beside it); unsubscribing '*' keeps those."""
    target = snapshot(gateway(clusters=("a", "b", "c"), routes=[("/", "a")]))
    stream = Stream()
    stream.send(CDS, ("*", "a"))
    assert stream.state.types[CDS].wildcard
    stream.ack(stream.expect(target, CDS, ["a", "b", "c"]))
    stream.send(CDS, (), ("*",))
    assert stream.holds(CDS) == {"a"}  # the proxy drops what only the wildcard gave it
    assert stream.step(target) is None
    changed = gateway(clusters=("a", "b", "c"), routes=[("/", "a")])
    changed.clusters[1].connect_timeout.seconds = 9  # "b" changed: no longer subscribed
    assert stream.step(snapshot(changed)) is None


def test_the_first_wildcard_request_is_answered_even_when_empty() -> None:
    """A wildcard with nothing to send gets an empty response (Envoy's init waits for it)."""
    target = snapshot(GatewayResources())
    stream = Stream()
    stream.send(CDS)
    empty = stream.expect(target, CDS, [])
    assert empty.version == content_version(())
    stream.ack(empty)
    stream.send(LDS)
    stream.expect(target, LDS, [])
    assert stream.step(target) is None


def test_per_resource_versions_are_content_digests_and_only_changes_are_sent() -> None:
    """Each resource's version is its digest; a change re-sends only the changed resource."""
    stream = Stream()
    first = snapshot(gateway(extra_routes=("r2",)))
    settle(stream, first)
    stream.send(RDS, ("r2",))
    pushed = stream.expect(first, RDS, ["r2"])
    assert pushed.versions == {"r2": first.types[RDS].by_name["r2"].digest}
    assert pushed.version == first.types[RDS].version  # the proxy now holds all of them
    stream.ack(pushed)
    second = snapshot(gateway(routes=[("/x", "c1")], extra_routes=("r2",)))
    assert second.types[RDS].by_name["r2"].digest == first.types[RDS].by_name["r2"].digest
    changed = stream.expect(second, RDS, ["r1"])
    assert changed.versions["r1"] == second.types[RDS].by_name["r1"].digest


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
    stream.ack(eds)
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
    stream.send(EDS, ("c2",))
    stream.expect(target, EDS, ["c1", "c2"])


def test_a_change_adds_clusters_first_and_removes_them_last() -> None:
    """Moving r1 to c2: CDS +c2, EDS c2, RDS, then CDS -c1 and (still subscribed) EDS -c1."""
    stream = Stream()
    settle(stream, snapshot(gateway()))
    target = snapshot(gateway(routes=[("/", "c2")], clusters=("c2",)))
    cds = stream.expect(target, CDS, ["c2"])  # nothing removed yet
    assert stream.step(target) is None
    stream.send(EDS, ("c2",))
    eds = stream.expect(target, EDS, ["c2"])
    stream.ack(eds)
    stream.ack(cds)
    rds = stream.expect(target, RDS, ["r1"])
    assert stream.step(target) is None  # removals wait for the routes' ACK
    stream.ack(rds)
    removal = stream.expect(target, CDS, [], ["c1"])
    assert stream.step(target) is None  # endpoints are removed after the clusters
    stream.ack(removal)
    stream.expect(target, EDS, [], ["c1"])


def test_an_unsubscribed_cla_is_forgotten_not_removed() -> None:
    """When Envoy unsubscribes the CLA of a removed cluster, nothing more is said about it."""
    stream = Stream()
    settle(stream, snapshot(gateway()))
    target = snapshot(gateway(routes=[("/", "c2")], clusters=("c2",)))
    cds = stream.expect(target, CDS, ["c2"])
    stream.send(EDS, ("c2",))
    stream.ack(stream.expect(target, EDS, ["c2"]))
    stream.ack(cds)
    stream.ack(stream.expect(target, RDS, ["r1"]))
    removal = stream.expect(target, CDS, [], ["c1"])
    stream.send(EDS, (), ("c1",))
    stream.ack(removal)
    assert stream.step(target) is None
    assert stream.holds(EDS) == {"c2"}


def test_a_changed_cluster_gets_its_endpoints_again() -> None:
    """A cluster whose content changed is followed by its unchanged CLA, so it warms."""
    stream = Stream()
    settle(stream, snapshot(gateway()))
    changed = gateway()
    changed.clusters[0].connect_timeout.seconds = 7
    target = snapshot(changed)
    cds = stream.expect(target, CDS, ["c1"])
    eds = stream.expect(target, EDS, ["c1"])  # no new subscription: Envoy already has one
    assert eds.versions["c1"] == target.types[EDS].by_name["c1"].digest
    stream.ack(eds)
    stream.ack(cds)
    assert stream.step(target) is None


def test_a_nacked_resource_is_never_resent_and_the_next_content_is() -> None:
    """After a NACK its content is not sent again (not even on resubscription); a change is."""
    stream = Stream()
    settle(stream, snapshot(gateway()))
    bad = snapshot(gateway(routes=[("/bad", "c1")]))
    rds = stream.expect(bad, RDS, ["r1"])
    outcome = stream.nack(rds)
    assert (outcome.kind, outcome.version, outcome.message) == ("nack", rds.version, "rejected")
    assert stream.step(bad) is None
    stream.send(RDS, ("r1",))  # asks again: the rejected content stays unsent
    assert stream.step(bad) is None
    types = view(stream.state).types[RDS]
    assert types.nack is not None
    assert types.nack.version == types.sent_version  # the rejected response is the last sent
    good = snapshot(gateway(routes=[("/good", "c1")]))
    fixed = stream.expect(good, RDS, ["r1"])
    assert stream.ack(fixed).kind == "ack"
    after = view(stream.state).types[RDS]
    assert after.nack is None
    assert after.last_nack is not None
    assert after.acked_version == good.types[RDS].version


def test_a_nacked_listener_keeps_old_clusters_until_a_good_version() -> None:
    """A NACKed LDS does not block RDS, but old clusters stay while the proxy may use them."""
    stream = Stream()
    settle(stream, snapshot(gateway()))
    target = snapshot(gateway(routes=[("/", "c2")], clusters=("c2",), listener_port=1))
    cds = stream.expect(target, CDS, ["c2"])
    stream.send(EDS, ("c2",))
    stream.ack(stream.expect(target, EDS, ["c2"]))
    stream.ack(cds)
    stream.nack(stream.expect(target, LDS, ["l1"]))
    stream.ack(stream.expect(target, RDS, ["r1"]))
    assert stream.step(target) is None  # the proxy still runs its old listener: keep c1
    fixed = snapshot(gateway(routes=[("/", "c2")], clusters=("c2",), listener_port=2))
    stream.ack(stream.expect(fixed, LDS, ["l1"]))
    stream.expect(fixed, CDS, [], ["c1"])


def test_a_nacked_cds_does_not_wait_for_endpoints_of_rejected_clusters() -> None:
    """After a CDS NACK only the clusters Envoy accepted need EDS coverage; the rest moves on."""
    stream = Stream()
    settle(stream, snapshot(gateway()))
    target = snapshot(gateway(routes=[("/", "c2")], clusters=("c2",)))
    added = stream.expect(target, CDS, ["c2"])
    assert stream.step(target) is None  # waiting for Envoy to subscribe to c2
    stream.nack(added)
    rds = stream.expect(target, RDS, ["r1"])  # a NACK settles CDS: routes follow
    stream.ack(rds)
    stream.expect(target, CDS, [], ["c1"])  # c2 is not re-sent: it was rejected


def test_a_stale_nonce_is_no_ack_but_its_subscription_change_is_honoured() -> None:
    """A request quoting an older nonce acknowledges nothing, yet its new names count."""
    stream = Stream()
    settle(stream, snapshot(gateway(extra_routes=("r2",))))
    old = stream.state.types[RDS].nonce
    target = snapshot(gateway(routes=[("/x", "c1")], extra_routes=("r2",)))
    rds = stream.expect(target, RDS, ["r1"])
    outcome = stream.send(RDS, ("r2",), nonce=old)
    assert outcome.kind == "stale"
    assert stream.state.types[RDS].pending is not None
    assert stream.state.types[RDS].names == {"r1", "r2"}
    assert stream.step(target) is None  # one response per type in flight
    stream.ack(rds)
    stream.expect(target, RDS, ["r2"])


def test_unknown_names_are_answered_as_removed_and_sent_once_they_exist() -> None:
    """A subscription to a missing name gets it in removed_resources, once; it comes later."""
    stream = Stream()
    settle(stream, snapshot(gateway()))
    stream.send(RDS, ("r9",))
    target = snapshot(gateway())
    missing = stream.expect(target, RDS, [], ["r9"])
    stream.ack(missing)
    assert stream.step(target) is None
    later = snapshot(gateway(extra_routes=("r9",)))
    stream.expect(later, RDS, ["r9"])


def test_subscribing_again_resends_what_the_proxy_seems_to_have() -> None:
    """The server must answer a subscription even if it believes the proxy is up to date."""
    stream = Stream()
    target = snapshot(gateway())
    settle(stream, target)
    stream.send(RDS, ("r1",))
    stream.expect(target, RDS, ["r1"])


def test_an_unsubscription_gets_no_response_and_its_resource_no_updates() -> None:
    """Unsubscribing (phantom names too) is not answered; the resource is no longer sent."""
    stream = Stream()
    settle(stream, snapshot(gateway(extra_routes=("r2",))))
    stream.send(RDS, ("r2",))
    stream.ack(stream.expect(snapshot(gateway(extra_routes=("r2",))), RDS, ["r2"]))
    stream.send(RDS, (), ("r2", "never-subscribed"))
    assert stream.holds(RDS) == {"r1"}
    changed = gateway(extra_routes=("r2",))
    changed.routes[1].virtual_hosts[0].name = "changed"
    assert stream.step(snapshot(changed)) is None


def test_unsubscribing_a_name_under_a_wildcard_is_answered() -> None:
    """With '*' and a name, unsubscribing the name re-sends it (in the wildcard) or removes it."""
    target = snapshot(gateway(clusters=("a",), routes=[("/", "a")]))
    stream = Stream()
    stream.send(CDS, ("*", "a", "x"))
    stream.ack(stream.expect(target, CDS, ["a"], ["x"]))
    stream.send(CDS, (), ("a", "x"))
    stream.expect(target, CDS, ["a"], ["x"])


def test_a_reconnect_gets_only_what_differs_and_removals_of_what_is_gone() -> None:
    """initial_resource_versions: equal versions are adopted, others sent, the gone removed."""
    before = snapshot(gateway(routes=[("/", "old")], clusters=("c1", "old"), extra_routes=("r2",)))
    after = snapshot(gateway(routes=[("/", "c1")], clusters=("c1",), extra_routes=("r2",)))
    versions = {t: {n: r.digest for n, r in before.types[t].by_name.items()} for t in (CDS, LDS)}
    stream = Stream()
    stream.send(CDS, initial=versions[CDS])
    stream.send(EDS, ("c1", "old"), initial={"c1": before.types[EDS].by_name["c1"].digest})
    stream.send(LDS, initial={**versions[LDS], "gone": "v0"})
    rds_versions = {n: r.digest for n, r in before.types[RDS].by_name.items()}
    stream.send(RDS, ("r1", "r2"), initial=rds_versions)
    assert stream.holds(CDS) == set()  # adopted when a target is known
    eds = stream.expect(after, EDS, [], ["old"])  # c1 is adopted; "old" has no CLA any more
    stream.ack(eds)
    lds = stream.expect(after, LDS, [], ["gone"])
    stream.ack(lds)
    rds = stream.expect(after, RDS, ["r1"])  # r2 is adopted, r1 changed
    stream.ack(rds)
    stream.expect(after, CDS, [], ["old"])  # clusters go last
    assert stream.state.types[CDS].acked.keys() == {"c1"}  # "old" was held, not known
    assert stream.holds(CDS) == {"c1"}


def test_removals_wait_until_the_proxy_told_its_listeners_and_routes() -> None:
    """A reconnect's CDS request comes alone: no cluster goes before LDS and RDS are known."""
    before = snapshot(gateway(routes=[("/", "old")], clusters=("c1", "old")))
    after = snapshot(gateway(routes=[("/", "c1")], clusters=("c1",)))
    digests = {t: {n: r.digest for n, r in before.types[t].by_name.items()} for t in TYPE_ORDER}
    stream = Stream()
    stream.send(CDS, initial=digests[CDS])
    assert stream.step(after) is None  # "old" may still be routed to by the proxy
    stream.send(EDS, ("c1", "old"), initial=digests[EDS])
    assert stream.step(after) is None
    stream.send(LDS, initial=digests[LDS])
    assert stream.step(after) is None  # l1 loads r1, whose subscription has not come yet
    stream.send(RDS, ("r1",), initial=digests[RDS])
    stream.ack(stream.expect(after, RDS, ["r1"]))
    stream.ack(stream.expect(after, CDS, [], ["old"]))
    stream.expect(after, EDS, [], ["old"])  # endpoints go after their cluster


def test_a_slow_proxy_gets_only_the_newest_version() -> None:
    """Versions produced while a response awaits its ACK are skipped; the newest is sent."""
    stream = Stream()
    settle(stream, snapshot(gateway()))
    first = stream.expect(snapshot(gateway(routes=[("/1", "c1")])), RDS, ["r1"])
    for i in range(2, 6):
        assert stream.step(snapshot(gateway(routes=[(f"/{i}", "c1")]))) is None
    newest = snapshot(gateway(routes=[("/5", "c1")]))
    stream.ack(first)
    last = stream.expect(newest, RDS, ["r1"])
    assert last.versions["r1"] == newest.types[RDS].by_name["r1"].digest
    assert stream.step(newest) is None


def test_unknown_types_and_repeated_acks_change_nothing() -> None:
    """Requests of unknown types are ignored; an ACK of nothing pending is stale."""
    stream = Stream()
    target = snapshot(gateway())
    settle(stream, target)
    assert stream.send("type.googleapis.com/example.Unknown").kind == "unknown_type"
    cds = stream.state.types[CDS]
    assert stream.send(CDS, nonce=cds.nonce).kind == "stale"
    assert stream.step(target) is None


def test_each_stream_is_fed_only_its_gateway() -> None:
    """The target is the node's Gateway; a node naming none gets nothing (isolation)."""
    stream = Stream("ns/a")
    assert stream.state.gateway == "ns/a"
    nameless = new_stream_state(node(None))
    assert nameless.gateway is None


def test_the_encoding_equals_the_protobuf_serialization() -> None:
    """Framed chunks give exactly the bytes DeltaDiscoveryResponse.SerializeToString gives."""
    resources = GatewayResources(
        listeners=(listener("l1", "r1"),),
        clusters=(cluster("c1"), cluster("c2")),
        endpoints=(endpoints("c1"),),
    )
    target = snapshot(resources)
    stream = Stream()
    stream.send(CDS, ("c1", "c2", "gone"))
    response = next_response(stream.state, target)
    assert response is not None
    data = encode_response(response, "7")
    parsed = discovery_pb2.DeltaDiscoveryResponse.FromString(data)
    assert parsed.SerializeToString() == data
    assert list(parsed.removed_resources) == ["gone"]
    assert parsed.control_plane.identifier == "gateway-xds"
    entry = discovery_pb2.Resource.FromString(
        resource_entry(target.types[CDS].by_name["c1"])[2:]  # tag and 1-byte length
    )
    assert (entry.name, entry.version) == ("c1", target.types[CDS].by_name["c1"].digest)


def test_views_and_describe_show_what_is_held_acked_and_rejected() -> None:
    """view() is a ClientView (protocol "delta"); describe() is JSON of the same."""
    stream = Stream()
    target = snapshot(gateway())
    assert view(stream.state).types[CDS].sent_version == ""
    settle(stream, target)
    bad = snapshot(gateway(routes=[("/b", "c1")]))
    stream.nack(stream.expect(bad, RDS, ["r1"]))
    client = view(stream.state, 42)
    assert (client.stream_id, client.protocol, client.gateway) == (42, "delta", "ns/gw")
    assert set(client.rejected) == {RDS}
    assert client.types[CDS].names == {"*"}
    assert client.types[CDS].acked_version == target.types[CDS].version
    assert client.types[RDS].sent["r1"].digest == bad.types[RDS].by_name["r1"].digest
    assert client.types[RDS].acked["r1"].digest == target.types[RDS].by_name["r1"].digest
    assert client.types[SDS].sent_version == ""
    entry = json.loads(json.dumps(describe(stream.state)))
    assert entry["protocol"] == "delta"
    assert entry["types"]["routes"]["nack"]["message"] == "rejected"
    assert entry["types"]["clusters"]["wildcard"] is True
    assert entry["types"]["clusters"]["resources_acked"] == 1


def test_the_server_loop_runs_over_any_stream() -> None:
    """DeltaServer.serve answers, waits for a snapshot, and ends when the proxy closes."""

    async def scenario() -> None:
        cache = SnapshotCache()
        changes: list[str | None] = []
        delta = DeltaServer(cache, changes.append)
        stream = MemoryStream(discovery_pb2.DeltaDiscoveryResponse)
        stream.requests.put_nowait(delta_request(CDS, node_msg=node("ns/gw")))
        serving = asyncio.create_task(delta.serve(stream, "memory"))
        await asyncio.sleep(0)
        assert [c["peer"] for c in delta.clients()] == ["memory"]
        assert [v.protocol for v in delta.views()] == ["delta"]
        assert stream.responses.empty()
        cache.set_snapshot({"ns/gw": gateway()})
        response = await asyncio.wait_for(stream.responses.get(), 5)
        assert [r.name for r in response.resources] == ["c1"]
        stream.requests.put_nowait(None)
        await asyncio.wait_for(serving, 5)
        assert delta.clients() == []
        assert changes == ["ns/gw", "ns/gw"]  # connect, disconnect
        await asyncio.sleep(QUIET / 10)

    asyncio.run(scenario())
