"""The snapshot cache and its wire encoding: bytes, content versions, interning, watches."""

from __future__ import annotations

import threading

import pytest
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2
from prometheus_client import REGISTRY
from test_ads_support import cluster, endpoints, gateway, listener, route_config

from translator.result import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    TYPE_ORDER,
    GatewayResources,
)
from xds_server import wire
from xds_server.cache import SnapshotCache, TypeSet, content_version, eds_name, resource_name


def _expected_response(messages: list[object], version: str, type_url: str, nonce: str) -> bytes:
    expected = discovery_pb2.DiscoveryResponse(version_info=version, type_url=type_url, nonce=nonce)
    for message in messages:
        packed = any_pb2.Any()
        packed.Pack(message)
        expected.resources.append(packed)
    expected.control_plane.identifier = "gateway-xds"
    return bytes(expected.SerializeToString())


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 16_383, 16_384, 2**32, 2**63 - 1])
def test_varint_round_trips(value: int) -> None:
    """Varints are minimal base-128 little-endian groups with continuation bits."""
    ours = wire.varint(value)
    assert len(ours) == max(1, (value.bit_length() + 6) // 7)
    assert ours[-1] < 0x80
    assert all(b >= 0x80 for b in ours[:-1])
    decoded = sum((b & 0x7F) << (7 * i) for i, b in enumerate(ours))
    assert decoded == value


def test_response_bytes_parse_as_the_message_api_builds_them() -> None:
    """Concatenated chunks parse into exactly the DiscoveryResponse the message API builds."""
    cache = SnapshotCache()
    resources = gateway(routes=[("/a", "c1"), ("/b", "c2")], clusters=("c1", "c2"))
    cache.set_snapshot({"ns/gw": resources})
    snapshot = cache.get("ns/gw")
    assert snapshot is not None
    for type_url, messages in resources.by_type().items():
        typeset = snapshot.types[type_url]
        data = wire.discovery_response(
            typeset.version, (r.chunk for r in typeset.resources), type_url, "7"
        )
        expected = _expected_response(list(messages), typeset.version, type_url, "7")
        parsed = discovery_pb2.DiscoveryResponse.FromString(data)
        assert parsed == discovery_pb2.DiscoveryResponse.FromString(expected)
        assert data == expected


def test_empty_response_bytes_parse() -> None:
    """A response with no resources (deleting everything of a wildcard type) parses too."""
    data = wire.discovery_response("v", (), LISTENER_TYPE, "1")
    assert data == _expected_response([], "v", LISTENER_TYPE, "1")


def test_nothing_is_ready_before_the_first_snapshot() -> None:
    """Before set_snapshot the cache is not ready and has no Gateway; an empty one makes it so."""
    cache = SnapshotCache()
    assert not cache.ready
    assert cache.get("ns/gw") is None
    cache.set_snapshot({})
    assert cache.ready
    assert cache.get("ns/gw") is None


def test_versions_are_content_hashes_stable_across_caches() -> None:
    """Two caches given equal content (built separately) agree on every version."""
    first, second = SnapshotCache(), SnapshotCache()
    first.set_snapshot({"ns/gw": gateway()})
    second.set_snapshot({"other/gw": GatewayResources(), "ns/gw": gateway()})
    a, b = first.get("ns/gw"), second.get("ns/gw")
    assert a is not None
    assert b is not None
    assert a.versions == b.versions
    changed = SnapshotCache()
    changed.set_snapshot({"ns/gw": gateway(endpoint_port=9090)})
    c = changed.get("ns/gw")
    assert c is not None
    assert c.types[ENDPOINT_TYPE].version != a.types[ENDPOINT_TYPE].version
    for type_url in (CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE):
        assert c.types[type_url].version == a.types[type_url].version


def test_version_depends_on_content_not_order() -> None:
    """A TypeSet's version is that of its (name, digest) pairs, whatever the input order."""
    cache = SnapshotCache()
    cache.set_snapshot({"ns/gw": gateway(routes=[("/", "a")], clusters=("a", "b", "c"))})
    snapshot = cache.get("ns/gw")
    assert snapshot is not None
    clusters = snapshot.types[CLUSTER_TYPE]
    shuffled = TypeSet.of(CLUSTER_TYPE, reversed(clusters.resources))
    assert shuffled.version == clusters.version == content_version(clusters.resources)
    assert [r.name for r in shuffled.resources] == ["a", "b", "c"]
    assert clusters.select(frozenset({"b", "missing"})).version == content_version(
        [clusters.by_name["b"]]
    )
    assert clusters.select(frozenset({"a", "b", "c", "d"})) is clusters


def test_unchanged_content_reuses_resources_and_snapshots() -> None:
    """Identical content is not re-encoded: same Resource objects, across snapshots and Gateways."""
    cache = SnapshotCache()
    label = {"type": "clusters"}
    before = REGISTRY.get_sample_value("gateway_xds_resources_encoded_total", label) or 0.0
    cache.set_snapshot({"a/gw": gateway(clusters=("c1",)), "b/gw": gateway(clusters=("c1",))})
    after_first = REGISTRY.get_sample_value("gateway_xds_resources_encoded_total", label)
    assert after_first == before + 1
    first_a, first_b = cache.get("a/gw"), cache.get("b/gw")
    assert first_a is not None
    assert first_b is not None
    shared = first_a.types[CLUSTER_TYPE].resources[0]
    assert first_b.types[CLUSTER_TYPE].resources[0] is shared

    cache.set_snapshot({"a/gw": gateway(clusters=("c1",)), "b/gw": gateway(endpoint_port=1)})
    assert REGISTRY.get_sample_value("gateway_xds_resources_encoded_total", label) == after_first
    second_a, second_b = cache.get("a/gw"), cache.get("b/gw")
    assert second_a is first_a
    assert second_b is not None
    assert second_b is not first_b
    assert second_b.types[CLUSTER_TYPE].resources[0] is shared


def test_watches_fire_only_for_gateways_whose_content_changed() -> None:
    """A watch is notified when its Gateway appears, changes or goes; not for others' changes."""
    cache = SnapshotCache()
    calls: dict[str, int] = {"a/gw": 0, "b/gw": 0}

    def counter(key: str) -> None:
        calls[key] += 1

    watch_a = cache.watch("a/gw", lambda: counter("a/gw"))
    cache.watch("b/gw", lambda: counter("b/gw"))
    cache.set_snapshot({"a/gw": gateway()})
    assert calls == {"a/gw": 1, "b/gw": 0}
    cache.set_snapshot({"a/gw": gateway(), "b/gw": gateway()})
    assert calls == {"a/gw": 1, "b/gw": 1}
    cache.set_snapshot({"a/gw": gateway(), "b/gw": gateway(endpoint_port=1)})
    assert calls == {"a/gw": 1, "b/gw": 2}
    cache.cancel(watch_a)
    cache.cancel(watch_a)
    cache.set_snapshot({"b/gw": gateway(endpoint_port=1)})
    assert calls == {"a/gw": 1, "b/gw": 2}
    assert cache.get("a/gw") is None


def test_set_snapshot_from_another_thread() -> None:
    """set_snapshot may run on a worker thread; watches are called there."""
    cache = SnapshotCache()
    seen: list[str] = []
    cache.watch("ns/gw", lambda: seen.append(threading.current_thread().name))
    worker = threading.Thread(target=cache.set_snapshot, args=({"ns/gw": gateway()},), name="w")
    worker.start()
    worker.join(5)
    assert seen == ["w"]
    assert cache.ready


def test_bad_snapshots_are_refused_before_anything_changes() -> None:
    """Duplicate names or a message under the wrong type raise and leave the cache as it was."""
    cache = SnapshotCache()
    cache.set_snapshot({"ns/gw": gateway()})
    before = cache.get("ns/gw")
    duplicate = GatewayResources(clusters=(cluster("c1"), cluster("c1", connect_timeout=2)))
    with pytest.raises(ValueError, match="duplicate"):
        cache.set_snapshot({"ns/gw": duplicate})
    with pytest.raises(TypeError, match="Listener"):
        cache.set_snapshot({"ns/gw": GatewayResources(routes=(listener("l1", "r1"),))})
    assert cache.get("ns/gw") is before


def test_resource_and_eds_names() -> None:
    """Names: CLA by cluster_name, others by name; only EDS-over-ADS clusters have an EDS name."""
    assert resource_name(endpoints("c9")) == "c9"
    assert resource_name(route_config("r9", [])) == "r9"
    assert eds_name(cluster("c9")) == "c9"
    named = cluster("c9")
    named.eds_cluster_config.service_name = "svc"
    assert eds_name(named) == "svc"
    static = cluster("c9")
    static.type = static.STATIC
    assert eds_name(static) == ""
    assert eds_name(listener("l", "r")) == ""
    assert set(TYPE_ORDER) == set(GatewayResources().by_type())
