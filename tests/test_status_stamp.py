"""lastTransitionTime: stamped on transitions only, as Kubernetes conventions require."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from xds_server.status import entry_key, stamp

T1 = datetime(2026, 1, 1, tzinfo=UTC)
T2 = datetime(2026, 1, 2, tzinfo=UTC)


def route(accepted: str, other_time: str | None = None) -> dict[str, Any]:
    parents: list[dict[str, Any]] = [
        {
            "parentRef": {"name": "gw"},
            "controllerName": "gateway-xds.io/gatewayclass-controller",
            "conditions": [
                {"type": "Accepted", "status": accepted, "reason": "R", "message": ""},
                {"type": "ResolvedRefs", "status": "True", "reason": "R", "message": ""},
            ],
        }
    ]
    if other_time:
        parents.append(
            {
                "parentRef": {"name": "gw"},
                "controllerName": "example.com/other",
                "conditions": [{"type": "Accepted", "lastTransitionTime": other_time}],
            }
        )
    return {
        "kind": "HTTPRoute",
        "metadata": {"namespace": "d", "name": "r"},
        "status": {"parents": parents},
    }


def times(entry: dict[str, Any]) -> list[str]:
    return [c["lastTransitionTime"] for p in entry["status"]["parents"] for c in p["conditions"]]


def test_first_stamp_uses_now() -> None:
    """Conditions seen for the first time are stamped with now."""
    [entry] = stamp([route("True")], {}, T1)
    assert times(entry) == ["2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"]


def test_unchanged_conditions_keep_their_time_and_transitions_get_now() -> None:
    """Only the condition whose status changed gets the new time."""
    [first] = stamp([route("True")], {}, T1)
    [second] = stamp([route("False")], {entry_key(first): first}, T2)
    assert times(second) == ["2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z"]


def test_other_controllers_entries_are_left_as_they_are() -> None:
    """A parent entry of another controller keeps the time it came with."""
    [entry] = stamp([route("True", other_time="2020-05-05T00:00:00Z")], {}, T1)
    assert times(entry)[-1] == "2020-05-05T00:00:00Z"
