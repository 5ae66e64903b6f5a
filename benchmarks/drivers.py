"""The load loops: the same shape on trio, asyncio and threads.

Theory of operation
-------------------
A client module gives a *worker factory*: called once per task (or thread), it
opens whatever that task fetches with — the shared pool for the pooled
clients, a connection of the task's own for the bare loops — and yields a
``fetch(path, stream) -> (status, body_length)``.

Each task first makes one untimed warm-up request (small body), so that
connections are open before the clock starts, then waits for the start
signal. The :class:`Meter` then hands out request *tickets* until either the
request count or the time cap runs out; every response is checked (status 200,
exact body length) before it is counted, so a client that fails cannot look
fast. A hard cap (warm-up cap + time cap + grace) cancels the loop if a client
hangs; the subprocess then still reports what it completed.

Memory: at the start signal the kernel's peak-RSS mark is reset
(``/proc/self/clear_refs``), so the peak read at the end belongs to the timed
phase alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import resource
import threading
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterator,
)
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import Any

import trio

from .common import MIB, THREAD_CAP, Job, Outcome

#: Seconds past the warm-up and time caps before in-flight requests are cut.
GRACE = 20.0

Fetch = Callable[[str, bool], Awaitable[tuple[int, int]]]
AsyncWorkers = Callable[[], AbstractAsyncContextManager[Fetch]]
SyncFetch = Callable[[str, bool], tuple[int, int]]
SyncWorkers = Callable[[], AbstractContextManager[SyncFetch]]


class BadResponse(Exception):
    """A response with the wrong status or body length."""


def shared(fetch: Fetch) -> AsyncWorkers:
    """A worker factory giving every task the same ``fetch`` (a shared pool)."""

    @contextlib.asynccontextmanager
    async def worker() -> AsyncIterator[Fetch]:
        yield fetch

    return worker


def shared_sync(fetch: SyncFetch) -> SyncWorkers:
    """:func:`shared` for threads."""

    @contextlib.contextmanager
    def worker() -> Iterator[SyncFetch]:
        yield fetch

    return worker


# -- memory ------------------------------------------------------------------


def _current_rss_mib() -> float:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / MIB
    except OSError:  # not Linux: the best we have is the lifetime peak
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak_rss() -> None:
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _peak_rss_mib() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- the meter -----------------------------------------------------------------


class Meter:
    """Bounds a measurement by count and time, checks and counts responses.

    ``next()`` on an ``itertools.count`` is atomic under the GIL, so threads
    share the counters without a lock.
    """

    def __init__(self, job: Job) -> None:
        self.job = job
        self._tickets = itertools.count()
        self._done = itertools.count()
        self._deadline = float("inf")
        self._start = 0.0
        self._stop = 0.0
        self._rss_start = 0.0

    def check(self, got: tuple[int, int], expected_len: int) -> None:
        status, length = got
        if status != 200 or length != expected_len:
            raise BadResponse(
                f"{self.job.client}: got status {status} with {length} body bytes,"
                f" expected 200 with {expected_len}"
            )

    def start(self) -> None:
        _reset_peak_rss()
        self._rss_start = _current_rss_mib()
        self._start = time.perf_counter()
        self._deadline = self._start + self.job.time_cap

    def take(self) -> bool:
        """May the caller start another timed request?"""
        return (
            next(self._tickets) < self.job.requests
            and time.perf_counter() < self._deadline
        )

    def record(self) -> None:
        next(self._done)

    def stop(self) -> None:
        self._stop = time.perf_counter()

    def outcome(self, cut: bool = False) -> Outcome:
        done = next(self._done)  # the count's next value is how many were recorded
        return Outcome(
            status="ok",
            done=done,
            elapsed=self._stop - self._start,
            body_bytes=done * self.job.body_len,
            rss_delta_mib=max(0.0, _peak_rss_mib() - self._rss_start),
            detail="cut at the hard cap" if cut else "",
        )

    @property
    def hard_cap(self) -> float:
        return self.job.warm_cap + self.job.time_cap + GRACE


# -- trio ----------------------------------------------------------------------


async def run_trio(
    job: Job, open_client: Callable[[Job], AbstractAsyncContextManager[AsyncWorkers]]
) -> Outcome:
    """Run one measurement with ``job.concurrency`` trio tasks."""
    meter = Meter(job)
    warm = trio.Event()
    go = trio.Event()
    waiting = [job.concurrency]

    async def task(workers: AsyncWorkers) -> None:
        async with workers() as fetch:
            meter.check(await fetch(job.warm_path, False), job.warm_len)
            waiting[0] -= 1
            if waiting[0] == 0:
                warm.set()
            await go.wait()
            while meter.take():
                meter.check(await fetch(job.path, job.stream), job.body_len)
                meter.record()

    async with open_client(job) as workers:
        with trio.move_on_after(meter.hard_cap) as hard:
            async with trio.open_nursery() as nursery:
                for _ in range(job.concurrency):
                    nursery.start_soon(task, workers)
                with trio.move_on_after(job.warm_cap):
                    await warm.wait()
                meter.start()
                go.set()
        meter.stop()
    return meter.outcome(cut=hard.cancelled_caught)


# -- asyncio -------------------------------------------------------------------


async def run_asyncio(
    job: Job, open_client: Callable[[Job], AbstractAsyncContextManager[AsyncWorkers]]
) -> Outcome:
    """Run one measurement with ``job.concurrency`` asyncio tasks."""
    meter = Meter(job)
    warm = asyncio.Event()
    go = asyncio.Event()
    waiting = [job.concurrency]

    async def task(workers: AsyncWorkers) -> None:
        async with workers() as fetch:
            meter.check(await fetch(job.warm_path, False), job.warm_len)
            waiting[0] -= 1
            if waiting[0] == 0:
                warm.set()
            await go.wait()
            while meter.take():
                meter.check(await fetch(job.path, job.stream), job.body_len)
                meter.record()

    async with open_client(job) as workers:
        tasks = [asyncio.ensure_future(task(workers)) for _ in range(job.concurrency)]
        hard_deadline = time.perf_counter() + meter.hard_cap
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(_first_of(warm.wait(), tasks), job.warm_cap)
        meter.start()
        go.set()
        timeout = max(0.0, hard_deadline - time.perf_counter())
        finished, pending = await asyncio.wait(
            tasks, timeout=timeout, return_when=asyncio.FIRST_EXCEPTION
        )
        meter.stop()
        for pending_task in pending:
            pending_task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for finished_task in finished:
            finished_task.result()  # re-raise the first failure, if any
    return meter.outcome(cut=bool(pending))


async def _first_of(
    signal: Coroutine[Any, Any, Any], tasks: list[asyncio.Future[None]]
) -> None:
    """Wait for ``signal``, or until a task fails (its error surfaces later)."""
    waiter = asyncio.ensure_future(signal)
    try:
        await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


# -- threads -------------------------------------------------------------------


def run_threads(
    job: Job, open_client: Callable[[Job], AbstractContextManager[SyncWorkers]]
) -> Outcome:
    """Run one measurement with ``min(concurrency, THREAD_CAP)`` threads."""
    meter = Meter(job)
    count = min(job.concurrency, THREAD_CAP)
    warmed = threading.Semaphore(0)
    go = threading.Event()
    errors: list[BaseException] = []

    def thread(workers: SyncWorkers) -> None:
        try:
            with workers() as fetch:
                meter.check(fetch(job.warm_path, False), job.warm_len)
                warmed.release()
                go.wait()
                while meter.take():
                    meter.check(fetch(job.path, job.stream), job.body_len)
                    meter.record()
        except BaseException as exc:
            errors.append(exc)
            warmed.release()

    with open_client(job) as workers:
        threads = [
            threading.Thread(target=thread, args=(workers,), daemon=True)
            for _ in range(count)
        ]
        for t in threads:
            t.start()
        warm_deadline = time.perf_counter() + job.warm_cap
        for _ in range(count):
            if not warmed.acquire(
                timeout=max(0.0, warm_deadline - time.perf_counter())
            ):
                break
        meter.start()
        go.set()
        hard_deadline = time.perf_counter() + meter.hard_cap
        for t in threads:
            t.join(max(0.0, hard_deadline - time.perf_counter()))
        meter.stop()
        if errors:
            raise errors[0]
        cut = any(t.is_alive() for t in threads)
    return meter.outcome(cut=cut)
