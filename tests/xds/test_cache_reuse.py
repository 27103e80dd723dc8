"""The snapshot cache redoes only what changed: reused tuples and messages are not re-encoded.

The incremental translator hands the cache the very same tuple for an unchanged type of
resources and the very same message objects for unchanged resources; the cache must then
keep its TypeSets and Resources, and what it builds must equal what a fresh cache builds
from the same content (versions, bytes).
"""

from __future__ import annotations

import dataclasses

from test_ads_support import cluster, endpoints, gateway

from translator.result import CLUSTER_TYPE, ENDPOINT_TYPE, TYPE_ORDER, GatewayResources
from xds_server.cache import GatewaySnapshot, SnapshotCache

NAMES = tuple(f"c{i:03}" for i in range(40))


def fresh(resources: dict[str, GatewayResources]) -> dict[str, GatewaySnapshot]:
    cache = SnapshotCache()
    cache.set_snapshot(resources)
    return dict(cache.gateways)


def same_content(got: GatewaySnapshot, expected: GatewaySnapshot) -> bool:
    return all(
        got.types[t].version == expected.types[t].version
        and [r.chunk for r in got.types[t].resources]
        == [r.chunk for r in expected.types[t].resources]
        for t in TYPE_ORDER
    )


def test_the_same_tuples_keep_their_type_sets() -> None:
    """Unchanged tuples of messages keep their TypeSets; changed ones do not."""
    cache = SnapshotCache()
    first = gateway(clusters=NAMES)
    cache.set_snapshot({"ns/gw": first})
    before = cache.get("ns/gw")
    assert before is not None
    edited = list(first.endpoints)
    edited[7] = endpoints(NAMES[7], port=9999)
    second = dataclasses.replace(first, endpoints=tuple(edited))
    cache.set_snapshot({"ns/gw": second})
    after = cache.get("ns/gw")
    assert after is not None
    assert after.types[CLUSTER_TYPE] is before.types[CLUSTER_TYPE]
    changed = after.types[ENDPOINT_TYPE]
    assert changed is not before.types[ENDPOINT_TYPE]
    old = before.types[ENDPOINT_TYPE].resources
    kept = [a is b for a, b in zip(changed.resources, old, strict=True)]
    assert kept == [index != 7 for index in range(len(NAMES))]
    assert same_content(after, fresh({"ns/gw": second})["ns/gw"])


def test_a_patched_set_equals_a_freshly_built_one() -> None:
    """Several messages replaced (same names, new content): versions and bytes as if new."""
    cache = SnapshotCache()
    first = gateway(clusters=NAMES)
    cache.set_snapshot({"ns/gw": first})
    edited = list(first.endpoints)
    for index in (0, 5, 39):
        edited[index] = endpoints(NAMES[index], port=7000 + index)
    second = dataclasses.replace(first, endpoints=tuple(edited))
    cache.set_snapshot({"ns/gw": second})
    after = cache.get("ns/gw")
    assert after is not None
    assert same_content(after, fresh({"ns/gw": second})["ns/gw"])


def test_replaced_names_and_new_lengths_are_built_like_a_fresh_cache() -> None:
    """A message of another name in place of one, and a longer tuple: still a fresh build."""
    cache = SnapshotCache()
    first = gateway(clusters=NAMES)
    cache.set_snapshot({"ns/gw": first})
    renamed = list(first.clusters)
    renamed[3] = cluster("zz-new")
    longer = (*first.endpoints, endpoints("zz-new"))
    second = dataclasses.replace(first, clusters=tuple(renamed), endpoints=longer)
    cache.set_snapshot({"ns/gw": second})
    after = cache.get("ns/gw")
    assert after is not None
    assert [r.name for r in after.types[CLUSTER_TYPE].resources][-1] == "zz-new"
    assert same_content(after, fresh({"ns/gw": second})["ns/gw"])


def test_interned_resources_follow_the_gateways_that_hold_them() -> None:
    """Content held by a Gateway that went is encoded anew; content still held is shared."""
    cache = SnapshotCache()
    cache.set_snapshot({"a/gw": gateway(clusters=("c1",)), "b/gw": gateway(clusters=("c1",))})
    a = cache.get("a/gw")
    assert a is not None
    shared = a.types[CLUSTER_TYPE].resources[0]
    cache.set_snapshot({"b/gw": gateway(clusters=("c1",))})
    b = cache.get("b/gw")
    assert b is not None
    assert b.types[CLUSTER_TYPE].resources[0] is shared  # b still holds it
    cache.set_snapshot({"c/gw": gateway(clusters=("c2",))})
    cache.set_snapshot({"d/gw": gateway(clusters=("c1",))})
    d = cache.get("d/gw")
    assert d is not None
    assert d.types[CLUSTER_TYPE].resources[0] is not shared  # nobody held it: released
    assert d.types[CLUSTER_TYPE].resources[0].digest == shared.digest
