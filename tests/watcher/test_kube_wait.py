"""The Kubernetes provider's wait for its wake-up event keeps a cancellation that arrives in
the same loop turn as a wake-up (Python 3.11's ``asyncio.wait_for`` returns the result then
and the cancel is lost: the provider, and ``xdsctl serve --kubernetes`` with it, never stop)."""

from __future__ import annotations

import asyncio

import pytest

from watcher.kubernetes import wait_set


@pytest.mark.parametrize("seconds", [None, 10.0])
def test_cancel_with_a_simultaneous_wakeup_is_not_lost(seconds: float | None) -> None:
    async def scenario() -> None:
        event = asyncio.Event()
        task = asyncio.create_task(wait_set(event, seconds))
        await asyncio.sleep(0)  # the task now waits on the event
        event.set()
        task.cancel()  # in the same loop turn as the wake-up
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())


def test_wakeup_and_timeout() -> None:
    async def scenario() -> None:
        event = asyncio.Event()
        event.set()
        assert await wait_set(event, 10.0) is True
        assert not event.is_set()  # cleared for the next wait
        assert await wait_set(event, 0.01) is False  # nothing set: the timeout

    asyncio.run(scenario())
