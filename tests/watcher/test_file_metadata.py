"""Metadata an API server would add: uid, generation, creationTimestamp, resourceVersion."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from watcher.metadata import History, format_timestamp, observe, observe_changes
from watcher.objects import ObjectKey

KEY = ObjectKey("HTTPRoute", "default", "r")
START = datetime(2026, 11, 22, 3, 13, 40, tzinfo=UTC)


class Clock:
    """A clock that moves one second each time it is read."""

    def __init__(self) -> None:
        self.moment = START - timedelta(seconds=1)

    def __call__(self) -> datetime:
        self.moment += timedelta(seconds=1)
        return self.moment


def _route(
    *, hostname: str = "a.example", labels: Mapping[str, str] | None = None, status: object = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "r", "namespace": "default", "labels": dict(labels or {})},
        "spec": {"hostnames": [hostname]},
    }
    if status is not None:
        body["status"] = status
    return body


def _meta(history: History) -> Mapping[str, Any]:
    metadata: Mapping[str, Any] = history.records[KEY].body["metadata"]
    return metadata


def test_first_sight_fills_metadata() -> None:
    """A new object gets a uuid4 uid, generation 1, the time seen, and a resourceVersion."""
    history = observe(History(), {KEY: _route()}, Clock())
    meta = _meta(history)
    assert uuid.UUID(meta["uid"]).version == 4
    assert meta["generation"] == 1
    assert meta["creationTimestamp"] == "2026-11-22T03:13:40Z"
    assert meta["resourceVersion"] == "1"
    assert meta["labels"] == {}


def test_unchanged_object_keeps_its_body() -> None:
    """Seeing an equal body again changes nothing: the very same published body is kept."""
    clock = Clock()
    first = observe(History(), {KEY: _route()}, clock)
    second = observe(first, {KEY: _route()}, clock)
    assert second.records[KEY] is first.records[KEY]
    assert second.resource_version == first.resource_version


def test_spec_change_bumps_generation_only() -> None:
    """A spec change adds 1 to generation; uid and creationTimestamp stay; resourceVersion grows."""
    clock = Clock()
    first = observe(History(), {KEY: _route()}, clock)
    second = observe(first, {KEY: _route(hostname="b.example")}, clock)
    third = observe(second, {KEY: _route(hostname="c.example")}, clock)
    before, after = _meta(first), _meta(third)
    assert after["generation"] == 3
    assert after["uid"] == before["uid"]
    assert after["creationTimestamp"] == before["creationTimestamp"]
    assert int(after["resourceVersion"]) > int(_meta(second)["resourceVersion"]) > 1


def test_labels_annotations_status_keep_generation() -> None:
    """Changing only metadata or status keeps the generation but takes a new resourceVersion."""
    clock = Clock()
    history = observe(History(), {KEY: _route()}, clock)
    versions = [_meta(history)["resourceVersion"]]
    for body in (_route(labels={"team": "a"}), _route(labels={"team": "a"}, status={"x": 1})):
        history = observe(history, {KEY: body}, clock)
        assert _meta(history)["generation"] == 1
        versions.append(_meta(history)["resourceVersion"])
    assert versions == ["1", "2", "3"]


def test_deleted_and_recreated_is_a_new_object() -> None:
    """An object that disappears and comes back gets a new uid, generation 1 and timestamp."""
    clock = Clock()
    first = observe(History(), {KEY: _route()}, clock)
    changed = observe(first, {KEY: _route(hostname="b.example")}, clock)
    gone = observe(changed, {}, clock)
    assert gone.records == {}
    back = observe(gone, {KEY: _route(hostname="b.example")}, clock)
    assert _meta(back)["uid"] != _meta(first)["uid"]
    assert _meta(back)["generation"] == 1
    assert _meta(back)["creationTimestamp"] == "2026-11-22T03:13:43Z"


def test_values_in_the_file_win() -> None:
    """Metadata the file gives itself is never overridden."""
    body = _route()
    given = {"uid": "u-1", "generation": 7, "creationTimestamp": "2020-01-01T00:00:00Z"}
    body["metadata"].update(given, resourceVersion="42")
    history = observe(History(), {KEY: body}, Clock())
    assert {key: _meta(history)[key] for key in (*given, "resourceVersion")} == {
        **given,
        "resourceVersion": "42",
    }


def test_loaded_bodies_are_not_mutated() -> None:
    """Filling metadata builds new dicts; the loaded body is left exactly as it was."""
    body = _route()
    pristine = copy.deepcopy(body)
    history = observe(History(), {KEY: body}, Clock())
    assert body == pristine
    assert history.records[KEY].body is not body
    assert history.records[KEY].body["metadata"] is not body["metadata"]


def test_timestamp_format() -> None:
    """Timestamps are RFC 3339 in UTC with whole seconds; naive times are taken as UTC."""
    plus_two = timezone(timedelta(hours=2))
    assert format_timestamp(datetime(2026, 1, 2, 5, 4, 5, 999, tzinfo=plus_two)) == (
        "2026-01-02T03:04:05Z"
    )
    assert format_timestamp(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05Z"


def test_observe_changes_matches_observe() -> None:
    """Only the changed objects are looked at; the result is what ``observe`` of all gives."""
    other = ObjectKey("HTTPRoute", "default", "other")

    def clock_a() -> datetime:  # observe reads the clock at every call, observe_changes
        return START  # only when an object appears or changes: the same time for both

    clock_b = clock_a
    full = observe(History(), {KEY: _route(), other: _route(hostname="o.example")}, clock_a)
    part, published = observe_changes(
        History(), {KEY: _route(), other: _route(hostname="o.example")}, clock_b
    )
    assert set(published) == {KEY, other}
    steps: list[dict[ObjectKey, dict[str, Any] | None]] = [
        {KEY: _route(hostname="b.example")},  # spec change
        {KEY: _route(hostname="b.example")},  # equal body: nothing published
        {KEY: None},  # gone
        {KEY: _route(hostname="c.example")},  # back: a new object
    ]
    current: dict[ObjectKey, dict[str, Any]] = {
        KEY: _route(),
        other: _route(hostname="o.example"),
    }
    for changes in steps:
        for key, body in changes.items():
            if body is None:
                current.pop(key)
            else:
                current[key] = body
        kept = part.records[other]
        full = observe(full, current, clock_a)
        before = part
        part, published = observe_changes(part, changes, clock_b)
        assert part.records[other] is kept, "untouched objects keep their very record"
        assert _without_uid(part) == _without_uid(full)
        assert set(published) == {
            key for key in changes if before.records.get(key) is not part.records.get(key)
        }
    assert published[KEY] is part.records[KEY].body


def test_observe_changes_without_change_keeps_the_history() -> None:
    """Nothing changed, or only equal bodies: the very same history and nothing published."""
    history = observe(History(), {KEY: _route()}, Clock())
    assert observe_changes(history, {}, Clock()) == (history, {})
    same, published = observe_changes(history, {KEY: _route()}, Clock())
    assert (same, published) == (history, {})
    assert same is history


def _without_uid(history: History) -> dict[ObjectKey, Any]:
    """Each record's published body with the (random) uid left out."""
    result: dict[ObjectKey, Any] = {}
    for key, record in history.records.items():
        metadata = {k: v for k, v in record.body["metadata"].items() if k != "uid"}
        result[key] = {**record.body, "metadata": metadata}
    return result
