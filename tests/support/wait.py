"""Waiting for a condition in tests: poll with backoff, fail with a useful message.

Who calls it: every test that waits for something another process or thread does (Envoy
becoming ready, a config reaching a proxy, a backend answering). Tests never sleep as
synchronisation; they wait for the condition they need.

What it must not do: poll in a tight loop (polling Envoy's admin port too often slows
Envoy down), or hide why it gave up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["WaitTimeoutError", "wait_until"]

T = TypeVar("T")


class WaitTimeoutError(AssertionError):
    """The condition did not hold before the deadline."""


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.01,
    *,
    max_interval: float = 0.5,
    backoff: float = 1.5,
    ignore: tuple[type[BaseException], ...] = (),
    message: str | Callable[[], str] = "",
) -> T:
    """Call ``predicate`` until it returns something truthy, and return that.

    Between calls the pause grows from ``interval`` by ``backoff`` up to ``max_interval``.
    Exceptions of the ``ignore`` types count as "not yet" (connection refused while a
    server starts); any other exception propagates at once. On timeout raises
    WaitTimeoutError with ``message`` (or its result), the last value and the last
    ignored exception.
    """
    deadline = time.monotonic() + timeout
    pause = interval
    attempts = 0
    last_value: object = None
    last_error: BaseException | None = None
    while True:
        attempts += 1
        try:
            value = predicate()
        except ignore as exc:
            last_error = exc
        else:
            if value:
                return value
            last_value = value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        time.sleep(min(pause, remaining))
        pause = min(pause * backoff, max_interval)
    text = message() if callable(message) else message
    name = getattr(predicate, "__name__", repr(predicate))
    details = (
        f"{name} still false after {timeout:.1f}s ({attempts} tries); last value {last_value!r}"
    )
    if last_error is not None:
        details += f"; last error {last_error!r}"
    raise WaitTimeoutError(f"{text}: {details}" if text else details) from last_error
