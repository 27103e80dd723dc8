"""What a step of the translation read: mappings that note every key looked up in them.

``translator.incremental`` translates each route (and the Gateways' TLS step) against
mappings wrapped in ``Recorded``; what they note is exactly what that step's result depends
on, so a later change of one Service, Namespace, Gateway or ReferenceGrant is known to
affect only the routes that read it. Reading a whole mapping (iterating it) notes the
mapping itself, so any change in it counts. Pure bookkeeping: no translation logic here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

K = TypeVar("K")
V = TypeVar("V")

# (what was read: "service", "slices", "grants", "namespace", "gateway", "secret"; its key),
# or (what, ALL) when the whole mapping was read.
Read = tuple[str, Any]
ALL = "*"


class ReadLog:
    """The reads noted since the last ``take``."""

    def __init__(self) -> None:
        self.reads: set[Read] = set()

    def take(self) -> frozenset[Read]:
        taken = frozenset(self.reads)
        self.reads = set()
        return taken


class Recorded(Mapping[K, V]):
    """A read-only view of ``data`` that notes each key read in ``log`` as (``what``, key)."""

    __slots__ = ("_data", "_log", "_what")

    def __init__(self, data: Mapping[K, V], what: str, log: ReadLog) -> None:
        self._data = data
        self._what = what
        self._log = log

    def __getitem__(self, key: K) -> V:
        self._log.reads.add((self._what, key))
        return self._data[key]

    def get(self, key: K, default: Any = None) -> Any:
        self._log.reads.add((self._what, key))
        return self._data.get(key, default)

    def __contains__(self, key: object) -> bool:
        self._log.reads.add((self._what, key))
        return key in self._data

    def __iter__(self) -> Iterator[K]:
        self._log.reads.add((self._what, ALL))
        return iter(self._data)

    def __len__(self) -> int:
        self._log.reads.add((self._what, ALL))
        return len(self._data)


class RecordedTuple(tuple[V, ...]):
    """A tuple that notes (``what``, ALL) in ``log`` whenever it is read."""

    _what: str
    _log: ReadLog

    def __new__(cls, items: tuple[V, ...], what: str, log: ReadLog) -> RecordedTuple[V]:
        self = super().__new__(cls, items)
        self._what, self._log = what, log
        return self

    def _note(self) -> None:
        self._log.reads.add((self._what, ALL))

    def __iter__(self) -> Iterator[V]:
        self._note()
        return super().__iter__()

    def __len__(self) -> int:
        self._note()
        return super().__len__()

    def __getitem__(self, index: Any) -> Any:
        self._note()
        return super().__getitem__(index)

    def __bool__(self) -> bool:
        self._note()
        return super().__len__() > 0

    def __contains__(self, item: object) -> bool:
        self._note()
        return super().__contains__(item)
