"""Trace hooks: the events a pool reports, with exact virtual timings."""

from __future__ import annotations

import trio
import trio.testing

from tests.unit.memory_server import Exchange, MemoryPool, Reply
from trio_pool import TraceEvent


async def slow(ex: Exchange) -> Reply:
    await trio.sleep(2)
    return Reply(status=201, body=b"made")


async def test_events_and_timings(
    servers: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    events: list[TraceEvent] = []
    async with MemoryPool(
        servers, slow, trace=events.append, keepalive_expiry=30
    ) as pool:
        await pool.request("POST", "/a", body=b"x")
        await pool.request("GET", "/b")
        await trio.sleep(31)
    names = [e.name for e in events]
    assert names == [
        "checkout", "connect", "request", "response", "release",
        "checkout", "reuse", "request", "response", "release",
        "close",
    ]  # fmt: skip
    response = events[3]
    assert (response.duration, response.detail["status"]) == (2, 201)
    assert events[2].detail == {"method": "POST", "url": "/a"}
    assert events[4].detail == {"reuse": True}
    assert events[-1].detail == {"reason": "keep-alive expired"}
    assert all(e.origin == "http://example.test" for e in events)
    assert events[-1].started - events[-2].started == 30
