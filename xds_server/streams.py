"""What both ADS servers (SotW ``xds_server.ads``, delta ``xds_server.delta``) share per stream.

- ``Stream``: the two things a server does with a stream; tests drive the servers through it
  without sockets.
- ``waker(event)``: a thread-safe ``event.set`` for cache watches.
- ``shared_names(names)``: one frozenset object for equal sets of names, held weakly.

No state of its own beyond the weak table of shared name sets; no gRPC.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Protocol


class Stream(Protocol):
    """The two things the server does with a stream (go-control-plane's stream.Stream)."""

    async def recv(self) -> Any:
        """The next DiscoveryRequest, or None when the proxy closed its side."""

    async def send(self, data: bytes) -> None:
        """Write one serialized DiscoveryResponse."""


# Every proxy of a Gateway subscribes to the same names: streams share one set per distinct
# subscription (by hash, held weakly) instead of keeping a copy each. With 1,000 EDS clusters
# a copy costs ~100 KiB per stream; ~50 KiB is all the rest of an idle stream.
_SHARED_NAMES: weakref.WeakValueDictionary[int, frozenset[str]] = weakref.WeakValueDictionary()


def shared_names(names: Iterable[str]) -> frozenset[str]:
    """``frozenset(names)``, the very object other streams hold when they hold an equal set."""
    candidate = frozenset(names)
    key = hash(candidate)
    shared = _SHARED_NAMES.get(key)
    if shared is None:
        _SHARED_NAMES[key] = candidate
        return candidate
    return shared if shared == candidate else candidate


def waker(event: asyncio.Event) -> Callable[[], None]:
    """A thread-safe ``event.set`` for cache watches (set_snapshot may run on any thread)."""
    loop = asyncio.get_running_loop()

    def wake() -> None:
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            event.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to wake
                loop.call_soon_threadsafe(event.set)

    return wake
