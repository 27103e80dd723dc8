"""Fixtures of the end-to-end tests: one real stack per test module (see support.stack)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.stack import Stack, start_stack, stop_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = start_stack(tmp_path_factory.mktemp("stack"))
    try:
        yield running
    finally:
        stop_stack(running)


@pytest.fixture
def routes(stack: Stack) -> Iterator[Stack]:
    """The stack, with every route file a test wrote removed afterwards."""
    yield stack
    for name in list(stack.written):
        stack.remove(name)
