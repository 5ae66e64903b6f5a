"""Fixtures shared by the unit tests: a virtual clock, and a nursery for the
server side of memory-stream connections."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    """Virtual time that jumps ahead whenever every task is blocked."""
    return trio.testing.MockClock(autojump_threshold=0)


@pytest.fixture
async def servers() -> AsyncIterator[trio.Nursery]:
    """Where memory servers run; cancelled when the test ends."""
    async with trio.open_nursery() as nursery:
        yield nursery
        nursery.cancel_scope.cancel()
