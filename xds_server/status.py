"""Stamps lastTransitionTime on the translator's conditions, as a status writer must.

The translator has no clock, so its conditions carry no lastTransitionTime. Whoever shows or
writes status (the admin API, `xdsctl translate`, later the Kubernetes status writer) keeps
the previous time of a condition whose status did not change and stamps ``now`` on the
others, as the Kubernetes API conventions require.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

StatusKey = tuple[str, str, str]  # kind, namespace, name


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def entry_key(entry: Mapping[str, Any]) -> StatusKey:
    metadata = entry.get("metadata", {})
    return (str(entry.get("kind")), str(metadata.get("namespace", "")), str(metadata.get("name")))


def stamp(
    entries: Iterable[Mapping[str, Any]],
    previous: Mapping[StatusKey, Mapping[str, Any]],
    now: datetime,
) -> list[dict[str, Any]]:
    """``entries`` with lastTransitionTime on every condition, carried over where unchanged."""
    stamped_at = rfc3339(now)
    result = []
    for entry in entries:
        before = previous.get(entry_key(entry), {}).get("status", {})
        status = _stamp_status(entry["status"], before, stamped_at)
        result.append({**entry, "status": status})
    return result


def _stamp_status(status: Mapping[str, Any], before: Mapping[str, Any], now: str) -> dict[str, Any]:
    out: dict[str, Any] = dict(status)
    if "conditions" in status:
        out["conditions"] = _stamp_list(status["conditions"], before.get("conditions", []), now)
    for section, key in (("listeners", "name"), ("parents", "parentRef")):
        if section not in status:
            continue
        old = {_identity(item, key): item for item in before.get(section, [])}
        out[section] = [
            {
                **item,
                "conditions": _stamp_list(
                    item.get("conditions", []),
                    old.get(_identity(item, key), {}).get("conditions", []),
                    now,
                ),
            }
            for item in status[section]
        ]
    return out


def _identity(item: Mapping[str, Any], key: str) -> str:
    return repr((item.get(key), item.get("controllerName")))


def _stamp_list(
    conditions: Iterable[Mapping[str, Any]], before: Iterable[Mapping[str, Any]], now: str
) -> list[dict[str, Any]]:
    old = {c.get("type"): c for c in before}
    stamped = []
    for condition in conditions:
        if "lastTransitionTime" in condition:
            stamped.append(dict(condition))
            continue
        prior = old.get(condition["type"])
        same = prior is not None and prior.get("status") == condition["status"]
        moment = prior.get("lastTransitionTime", now) if same and prior is not None else now
        stamped.append({**condition, "lastTransitionTime": moment})
    return stamped


class Stamper:
    """``stamp`` translation after translation, redoing only the entries that changed.

    The incremental translator hands back the very same entry objects (never mutated) for
    objects whose status did not change, in the same positions; their stamped copies are
    kept. The result equals ``stamp(entries, previous index, now)``, where the previous
    index is the last result keyed by ``entry_key``.
    """

    def __init__(self) -> None:
        self._given: Iterable[Mapping[str, Any]] | None = None
        self._entries: list[Mapping[str, Any]] = []
        self._stamped: list[dict[str, Any]] = []
        self._index: dict[StatusKey, dict[str, Any]] = {}

    def stamp(self, entries: Iterable[Mapping[str, Any]], now: datetime) -> list[dict[str, Any]]:
        """Every entry stamped against the last call's result (a new list each time)."""
        if entries is self._given:  # the very same statuses (an EndpointSlice-only change)
            return list(self._stamped)
        self._given = entries
        given = list(entries)
        changed = self._changed(given)
        if changed is None:
            result = stamp(given, self._index, now)
            self._index = {entry_key(e): e for e in result}
        else:
            result = list(self._stamped)
            for position, entry in zip(
                changed, stamp((given[i] for i in changed), self._index, now), strict=True
            ):
                result[position] = entry
            for position in changed:  # after stamping: an entry may have moved between keys
                old = self._stamped[position]
                if self._index.get(key := entry_key(old)) is old:
                    del self._index[key]
            self._index.update((entry_key(result[i]), result[i]) for i in changed)
        self._entries, self._stamped = given, result
        return result

    def _changed(self, given: list[Mapping[str, Any]]) -> list[int] | None:
        """Positions of entries that are not the very same objects; None: stamp them all."""
        if len(given) != len(self._entries):
            return None
        flags = map(operator.is_not, given, self._entries)
        changed = list(itertools.compress(range(len(given)), flags))
        return changed if len(changed) <= len(given) // 4 else None
