"""``status.Stamper`` gives what ``status.stamp`` gives, restamping only new entry objects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from xds_server.status import Stamper, entry_key, stamp

T1 = datetime(2026, 1, 1, tzinfo=UTC)
T2 = datetime(2026, 1, 2, tzinfo=UTC)
T3 = datetime(2026, 1, 3, tzinfo=UTC)


def entry(name: str, accepted: str) -> dict[str, Any]:
    condition = {"type": "Accepted", "status": accepted, "reason": "R", "message": ""}
    return {
        "kind": "HTTPRoute",
        "metadata": {"namespace": "d", "name": name},
        "status": {"conditions": [condition]},
    }


def reference(calls: list[tuple[list[dict[str, Any]], datetime]]) -> list[dict[str, Any]]:
    """``stamp`` called as the server called it before: against the last result's index."""
    index: dict[Any, Any] = {}
    result: list[dict[str, Any]] = []
    for entries, now in calls:
        result = stamp(entries, index, now)
        index = {entry_key(e): e for e in result}
    return result


def test_the_stamper_equals_stamp_over_a_sequence() -> None:
    """Kept, changed, swapped, added and removed entries: the same times as ``stamp``."""
    many = [entry(f"r{i}", "True") for i in range(12)]
    second = list(many)
    second[3] = entry("r3", "False")  # a transition
    second[5] = entry("r5", "True")  # a new object, no transition
    third = list(second)
    third[0], third[1] = third[1], third[0]  # moved
    fourth = [*third[:-1], entry("new", "True")]  # one gone, one new
    calls = [(many, T1), (second, T2), (third, T3), (fourth, T3)]
    stamper = Stamper()
    for index, (entries, now) in enumerate(calls):
        assert stamper.stamp(entries, now) == reference(calls[: index + 1])


def test_unchanged_entries_keep_their_stamped_copies() -> None:
    """The very same entry objects are not stamped again: their results are reused."""
    many = [entry(f"r{i}", "True") for i in range(12)]
    stamper = Stamper()
    first = stamper.stamp(many, T1)
    edited = list(many)
    edited[4] = entry("r4", "False")
    second = stamper.stamp(edited, T2)
    assert [a is b for a, b in zip(first, second, strict=True)] == [i != 4 for i in range(12)]
    assert second[4]["status"]["conditions"][0]["lastTransitionTime"] == "2026-01-02T00:00:00Z"
