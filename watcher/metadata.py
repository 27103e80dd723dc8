"""Fill in the metadata an API server would add to objects that come from files.

``watcher.files`` calls ``observe`` with the ``History`` it got last time and every object as
the files give them now (``load_paths``), or ``observe_changes`` with only the objects whose
loaded body changed (``FileProvider``, at each snapshot: the cost follows the change, not
the number of objects). Both are pure apart from one clock reading and fresh uuid4 values:
they never touch files, never log, never mutate the bodies or the history they are given
(the filled bodies are new dicts; everything below ``metadata`` is shared, read-only, with
the caller's cache).

What it adds, never overriding a value the file sets itself:

- ``metadata.uid``: a uuid4, the same for the life of the object;
- ``metadata.creationTimestamp``: when the object was first seen (RFC 3339, UTC, seconds);
- ``metadata.generation``: 1 when first seen, +1 whenever anything outside ``metadata`` and
  ``status`` changes (labels, annotations or status alone keep it);
- ``metadata.resourceVersion``: a counter shared by all objects (as etcd's revision is) that
  an object takes anew whenever its body changes at all.

An object that disappears is forgotten: if it comes back it is a new object (new uid,
generation 1, new timestamp).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from watcher.objects import ObjectKey

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The real clock, in UTC."""
    return datetime.now(UTC)


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with whole seconds, as Kubernetes writes it: 2026-11-22T03:13:40Z."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class ObjectRecord:
    """What we remember of one live object: the body as loaded, and as we published it."""

    loaded: Mapping[str, Any]
    body: Mapping[str, Any]
    uid: str
    generation: int
    created: str
    resource_version: int


@dataclass(frozen=True, slots=True)
class History:
    """Every live object's record, and the last resource version handed out."""

    records: Mapping[ObjectKey, ObjectRecord] = field(default_factory=dict)
    resource_version: int = 0

    def bodies(self) -> dict[ObjectKey, Mapping[str, Any]]:
        """The filled bodies, keyed like the loaded objects (in the same order)."""
        return {key: record.body for key, record in self.records.items()}


def observe(history: History, loaded: Mapping[ObjectKey, Mapping[str, Any]], now: Clock) -> History:
    """The history after seeing ``loaded``; unchanged objects keep their very same body."""
    created = format_timestamp(now())
    counter = history.resource_version
    records: dict[ObjectKey, ObjectRecord] = {}
    for key, body in loaded.items():
        previous = history.records.get(key)
        if previous is not None and (previous.loaded is body or previous.loaded == body):
            records[key] = previous
            continue
        counter += 1
        records[key] = _record(previous, body, counter, created)
    return History(records, counter)


def observe_changes(
    history: History, changes: Mapping[ObjectKey, Mapping[str, Any] | None], now: Clock
) -> tuple[History, dict[ObjectKey, Mapping[str, Any] | None]]:
    """``observe`` for the objects in ``changes`` only (None: gone); all others are kept.

    Returns the new history and the filled bodies that changed (None: gone); an object whose
    new body equals the one it had keeps its record and is not among them.
    """
    if not changes:
        return history, {}
    records = dict(history.records)
    counter = history.resource_version
    published: dict[ObjectKey, Mapping[str, Any] | None] = {}
    created: str | None = None
    for key, body in changes.items():
        previous = records.get(key)
        if body is None:
            if previous is not None:
                del records[key]
                published[key] = None
            continue
        if previous is not None and (previous.loaded is body or previous.loaded == body):
            continue
        counter += 1
        created = created or format_timestamp(now())
        records[key] = _record(previous, body, counter, created)
        published[key] = records[key].body
    if not published:
        return history, published
    return History(records, counter), published


def _record(
    previous: ObjectRecord | None, body: Mapping[str, Any], resource_version: int, now: str
) -> ObjectRecord:
    if previous is None:
        uid, generation, created = str(uuid.uuid4()), 1, now
    else:
        uid, created = previous.uid, previous.created
        spec_changed = _spec(previous.loaded) != _spec(body)
        generation = previous.generation + 1 if spec_changed else previous.generation
    metadata = dict(body.get("metadata") or {})
    metadata.setdefault("uid", uid)
    metadata.setdefault("generation", generation)
    metadata.setdefault("creationTimestamp", created)
    metadata.setdefault("resourceVersion", str(resource_version))
    filled = {**body, "metadata": metadata}
    return ObjectRecord(body, filled, uid, generation, created, resource_version)


def _spec(body: Mapping[str, Any]) -> dict[str, Any]:
    """Everything that makes the generation move: the body without metadata and status."""
    return {key: value for key, value in body.items() if key not in ("metadata", "status")}
