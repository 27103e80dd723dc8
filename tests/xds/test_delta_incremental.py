"""The delta state machine's incremental diff always equals comparing everything.

Once a proxy holds exactly what a target selects, later changes are read from the shared
snapshot-to-snapshot difference (``delta_index.changes``). Random sequences of snapshots,
subscription changes, ACKs and NACKs check that this shortcut answers exactly what a full
comparison of every resource would, and that a stream always converges to the target.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_ads_support import cluster, endpoints, listener, node, route_config
from test_delta_support import delta_request

from translator.result import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    TYPE_ORDER,
    GatewayResources,
)
from xds_server import delta_diff, delta_state
from xds_server.cache import GatewaySnapshot, SnapshotCache

CDS, EDS, LDS, RDS = CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE
CLUSTERS = ("a", "b", "c", "d")


@st.composite
def gateways(draw: Any) -> GatewayResources:
    """A listener, a route config to some clusters, and clusters with varying content."""
    names = draw(st.lists(st.sampled_from(CLUSTERS), min_size=1, unique=True))
    variant = draw(st.integers(0, 2))
    return GatewayResources(
        listeners=(listener("l1", "r1"),),
        routes=(route_config("r1", [(f"/{n}", n) for n in sorted(names)]),),
        clusters=tuple(cluster(n, connect_timeout=1 + variant) for n in sorted(names)),
        endpoints=tuple(endpoints(n, 8000 + draw(st.integers(0, 1))) for n in sorted(names)),
    )


Step = tuple[str, Any]
steps = st.lists(
    st.one_of(
        st.tuples(st.just("snapshot"), gateways()),
        st.tuples(st.just("subscribe"), st.sampled_from(CLUSTERS)),
        st.tuples(st.just("unsubscribe"), st.sampled_from(CLUSTERS)),
        st.tuples(st.just("answer"), st.sampled_from(("ack", "nack"))),
    ),
    min_size=1,
    max_size=12,
)


def assert_incremental_equals_full(
    state: delta_state.DeltaStreamState, target: GatewaySnapshot
) -> None:
    for type_url in TYPE_ORDER:
        ts = state.types[type_url]
        quick = delta_diff.changes(ts, target.types[type_url])
        full = delta_diff.full_changes(ts, target.types[type_url])
        assert quick == full, type_url


class Driver:
    """One stream fed by a script: every decision checked against the full comparison."""

    def __init__(self, first: GatewayResources) -> None:
        self.cache = SnapshotCache()
        self.cache.set_snapshot({"ns/gw": first})
        self.state = delta_state.new_stream_state(node("ns/gw"))
        self.pending: list[tuple[str, str]] = []
        self.sent: dict[str, delta_diff.DeltaResponse] = {}  # by nonce
        self.acked: dict[str, dict[str, str]] = {t: {} for t in TYPE_ORDER}  # a model
        for req in (
            delta_request(CDS),
            delta_request(EDS, CLUSTERS),
            delta_request(LDS),
            delta_request(RDS, ["r1"]),
        ):
            self.request(req)

    @property
    def target(self) -> GatewaySnapshot:
        target = self.cache.get("ns/gw")
        assert target is not None
        return target

    def request(self, req: Any) -> None:
        delta_state.apply_request(self.state, req, 0.0, 0.0)

    def step(self, kind: str, value: Any) -> None:
        if kind == "snapshot":
            self.cache.set_snapshot({"ns/gw": value})
        elif kind == "subscribe":
            self.request(delta_request(EDS, [value]))
        elif kind == "unsubscribe":
            self.request(delta_request(EDS, (), [value]))
            self.acked[EDS].pop(value, None)
        elif self.pending:
            type_url, nonce = self.pending.pop(0)
            self.answer(type_url, nonce, value == "nack")
        self.send()

    def answer(self, type_url: str, nonce: str, nack: bool) -> None:
        """ACK or NACK a response; the model applies what an ACK confirms."""
        self.request(delta_request(type_url, nonce=nonce, error="rejected" if nack else None))
        if not nack:
            response, ts = self.sent[nonce], self.state.types[type_url]
            self.acked[type_url].update(
                (r.name, r.digest) for r in response.resources if ts.covers(r.name)
            )
            for name in response.removed:
                self.acked[type_url].pop(name, None)
        for checked in TYPE_ORDER:
            got = {n: r.digest for n, r in self.state.types[checked].acked.items()}
            assert got == self.acked[checked], checked

    def send(self) -> None:
        """Send whatever is due, checking before and after each response."""
        assert_incremental_equals_full(self.state, self.target)
        while (response := delta_state.next_response(self.state, self.target)) is not None:
            nonce = delta_state.record_sent(self.state, response, 0.0)
            self.sent[nonce] = response
            self.pending.append((response.type_url, nonce))
            assert_incremental_equals_full(self.state, self.target)

    def settle(self) -> None:
        """Subscribe to every CLA (as Envoy does for its clusters), ACK until nothing is due."""
        self.request(delta_request(EDS, CLUSTERS))
        for _ in range(20):
            for type_url, nonce in self.pending:
                self.answer(type_url, nonce, nack=False)
            self.pending = []
            self.send()
            if not self.pending:
                return

    def rejecting(self) -> bool:
        """Whether the proxy rejected listeners or routes the target still has."""
        for type_url in (LDS, RDS):
            wanted = self.target.types[type_url].by_name
            rejected = self.state.types[type_url].rejected
            if any(n in wanted and wanted[n].digest == d for n, d in rejected.items()):
                return True
        return False


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=gateways(), script=steps)
def test_the_incremental_diff_equals_the_full_comparison(
    first: GatewayResources, script: list[Step]
) -> None:
    """Whatever happens, the shortcut's answer is the full comparison's, what is recorded as
    ACKed is what the ACKs confirmed, and once the proxy ACKs everything it holds the target
    (but rejected content, and old clusters while it rejects listeners or routes)."""
    driver = Driver(first)
    for kind, value in script:
        driver.step(kind, value)
    driver.settle()
    for type_url in (CDS, LDS, RDS):
        ts = driver.state.types[type_url]
        held = {n: r.digest for n, r in ts.held.items()}
        wanted = {n: r.digest for n, r in driver.target.types[type_url].by_name.items()}
        missing = {n for n, d in wanted.items() if held.get(n) != d and ts.rejected.get(n) != d}
        assert missing == set()
        extra = held.keys() - wanted.keys()
        assert not extra or (type_url == CDS and driver.rejecting()), extra
