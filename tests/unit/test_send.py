"""The retry loop's timing, in exact virtual time (MockClock, memory streams)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from tests.unit.memory_server import CloseConnection, Exchange, MemoryPool, Reply
from trio_pool import MaxRetryError, ProtocolError, ResponseError, Retry


class Script:
    """Answers with the given statuses in turn (then 200), noting the times."""

    def __init__(
        self, *statuses: int | str, headers: list[tuple[str, str]] | None = None
    ) -> None:
        self.statuses = list(statuses)
        self.headers = headers or []
        self.times: list[float] = []

    async def __call__(self, ex: Exchange) -> Reply:
        self.times.append(trio.current_time())
        status = self.statuses.pop(0) if self.statuses else 200
        if status == "drop":
            raise CloseConnection
        assert isinstance(status, int)
        return Reply(status=status, headers=self.headers if status != 200 else [])

    def offsets(self) -> list[float]:
        return [t - self.times[0] for t in self.times]


async def test_backoff_sleeps_exact(
    servers: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    script = Script(503, 503, 503)
    retry = Retry(total=5, status_forcelist=[503], backoff_factor=1)
    async with MemoryPool(servers, script) as pool:
        response = await pool.request("GET", "/", retries=retry)
    assert response.status == 200
    # factor * 2**(n-1) for the n-th consecutive error, none for the first.
    assert script.offsets() == [0, 0, 2, 6]


async def test_backoff_is_capped_and_jitter_bounded(
    servers: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    script = Script("drop", "drop", "drop", "drop")
    retry = Retry(total=5, backoff_factor=10, backoff_max=15, backoff_jitter=1)
    async with MemoryPool(servers, script) as pool:
        await pool.request("GET", "/", retries=retry)
    gaps = [b - a for a, b in zip(script.times, script.times[1:], strict=False)]
    assert gaps[0] == 0
    assert 15 >= gaps[1] >= 15 - 1e-9  # 20 (+jitter) capped at 15
    assert gaps[2] == 15 and gaps[3] == 15


async def test_retry_after_seconds_exact(
    servers: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    script = Script(429, headers=[("Retry-After", "7")])
    async with MemoryPool(servers, script) as pool:
        response = await pool.request(
            "GET", "/", retries=Retry(3, status_forcelist=[429])
        )
    assert response.status == 200
    assert script.offsets() == [0, 7]


async def test_caller_deadline_shorter_than_backoff_ends_at_once(
    servers: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    script = Script(503, 503, 503, 503)
    retry = Retry(total=5, status_forcelist=[503], backoff_factor=1)
    async with MemoryPool(servers, script) as pool:
        start = trio.current_time()
        with trio.move_on_after(3):
            with pytest.raises(MaxRetryError) as info:
                await pool.request("GET", "/", retries=retry)
            # Attempts at 0, 0 and 2; the next sleep (4 s) would pass the
            # deadline at 3, so the loop gives up at 2 instead of sleeping.
            assert trio.current_time() - start == 2
        assert isinstance(info.value.reason, ResponseError)
        assert pool.statistics().tokens_free == 1


async def test_caller_deadline_ends_error_retries_with_the_error(
    servers: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    script = Script("drop", "drop", "drop")
    async with MemoryPool(servers, script) as pool:
        with trio.move_on_after(1), pytest.raises(ProtocolError):
            await pool.request("GET", "/", retries=Retry(5, backoff_factor=1))
        assert script.offsets() == [0, 0]


async def test_no_connection_held_while_sleeping(
    servers: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    script = Script(503, headers=[("Retry-After", "10")])
    async with MemoryPool(servers, script, block=True) as pool:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pool.request, "GET", "/")
            await trio.sleep(5)
            stats = pool.statistics()
            assert (stats.in_use, stats.tokens_free, stats.idle) == (0, 1, 1)
        assert script.offsets() == [0, 10]
