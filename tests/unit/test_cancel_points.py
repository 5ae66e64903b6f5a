"""Cancel a request at its k-th checkpoint, for every k, and check the pool.

A trio Instrument counts the scheduling steps of the requesting task and
cancels the request's scope at step k; the cancellation lands at the task's
next checkpoint. k runs from 1 until the request completes untouched, so every
checkpoint the request passes through is exercised.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing

from tests.unit.memory_server import Exchange, MemoryPool, Reply
from trio_pool import HTTPConnectionPool, Retry
from trio_pool._connection import ConnState


class CancelAtStep(trio.abc.Instrument):
    def __init__(
        self, task: trio.lowlevel.Task, step: int, scope: trio.CancelScope
    ) -> None:
        self.task = task
        self.step = step
        self.scope = scope
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self.steps += 1
            if self.steps == self.step:
                self.scope.cancel()


async def cancel_at_each_step(
    call: Callable[[], Awaitable[object]], check: Callable[[], Awaitable[None]]
) -> int:
    """Run ``call`` cancelled at its k-th step for k = 1, 2, ... until it
    completes untouched, awaiting ``check`` after each run; the number of
    runs (the request's checkpoints, plus one)."""
    task = trio.lowlevel.current_task()
    step = 0
    while True:
        step += 1
        scope = trio.CancelScope()
        instrument = CancelAtStep(task, step, scope)
        trio.lowlevel.add_instrument(instrument)
        try:
            with scope:
                await call()
        finally:
            trio.lowlevel.remove_instrument(instrument)
        await check()
        if not scope.cancelled_caught:
            return step


async def reply(ex: Exchange) -> Reply:
    if ex.request.target == b"/503" and ex.connection_number % 2:
        return Reply(status=503, headers=[("Retry-After", "1")])
    if ex.request.target == b"/redirect":
        return Reply(status=302, headers=[("Location", "/final")])
    return Reply(body=bytes(range(256)) * 64)


async def small_get(pool: HTTPConnectionPool) -> None:
    await pool.request("GET", "/")


async def streamed_get_read_halfway(pool: HTTPConnectionPool) -> None:
    response = await pool.request("GET", "/", preload_content=False)
    await response.read(8192)
    await response.release_conn()


async def post_with_body(pool: HTTPConnectionPool) -> None:
    await pool.request("POST", "/", body=b"x" * 200_000)


async def retry_after_503(pool: HTTPConnectionPool) -> None:
    await pool.request("GET", "/503", retries=Retry(3, status_forcelist=[503]))


async def follow_redirect(pool: HTTPConnectionPool) -> None:
    await pool.request("GET", "/redirect")


def assert_exact(pool: HTTPConnectionPool) -> None:
    stats = pool.statistics()
    assert stats.in_use == 0, stats
    assert stats.tokens_free == pool.maxsize, stats
    assert stats.waiting == 0, stats
    assert all(conn.state is ConnState.IDLE for conn in pool._idle)
    assert set(pool._idle) <= pool._conns
    assert stats.idle + sum(c.state is ConnState.ACTIVE for c in pool._conns) <= len(
        pool._conns
    )
    # Nothing is leased, so no live connection may be ACTIVE ("neither idle
    # nor closed"): each is idle, or closing.
    assert not [c for c in pool._conns if c.state is ConnState.ACTIVE]


@pytest.mark.parametrize(
    "flavour",
    [
        small_get,
        streamed_get_read_halfway,
        post_with_body,
        retry_after_503,
        follow_redirect,
    ],
)
@pytest.mark.parametrize("lockstep", [False, True])
async def test_cancel_at_every_checkpoint(
    servers: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    flavour: Callable[[HTTPConnectionPool], Awaitable[None]],
    lockstep: bool,
) -> None:
    async with MemoryPool(
        servers, reply, maxsize=2, block=True, lockstep=lockstep
    ) as pool:
        await small_get(pool)  # so that reuse paths are exercised too

        async def check() -> None:
            await trio.testing.wait_all_tasks_blocked()
            assert_exact(pool)
            await small_get(pool)
            assert_exact(pool)

        steps = await cancel_at_each_step(lambda: flavour(pool), check)
        assert steps > 3, f"only {steps} checkpoints: suspiciously few"
