"""The load loops: the same shape on trio, asyncio and threads.

Theory of operation
-------------------
A client module gives a *worker factory*: called once per task (or thread), it
opens whatever that task fetches with — the shared pool for the pooled
clients, a connection of the task's own for the bare loops — and yields a
``fetch(path, stream) -> (status, body_length)``.

Each task first makes one untimed warm-up request (small body), so that
connections are open before the clock starts, then waits for the start
signal (given when all tasks are warm, or after ``warm_cap`` seconds). The
:class:`Meter` then hands out request *tickets* until either the request count
or the time cap runs out. Every response is checked (status 200, exact body
length) before it is counted, so a client that fails cannot look fast.

The timed phase ends when every task has stopped, or at the *cut*: one more
time cap (at least a second) after the last ticket could be taken. Requests
still in flight at the cut are cancelled and not counted: that bounds the
slow clients (httpx with 1000 tasks) without discarding what they did.

CPU: the process's CPU time over the timed phase is reported too, since on a
shared machine it is far steadier than the wall clock.

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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, AbstractContextManager

import trio

from .common import MIB, THREAD_CAP, Job, Outcome, publish

Fetch = Callable[[str, bool], Awaitable[tuple[int, int]]]
AsyncWorkers = Callable[[], AbstractAsyncContextManager[Fetch]]
SyncFetch = Callable[[str, bool], tuple[int, int]]
SyncWorkers = Callable[[], AbstractContextManager[SyncFetch]]


class BadResponse(Exception):
    """A response with the wrong status or body length."""


def cut_after(job: Job) -> float:
    """Seconds from the start signal to the cut."""
    return job.time_cap + max(job.time_cap, 1.0)


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
    (and the watchdog) share the counters without a lock.
    """

    #: The meter of this process's measurement, for the watchdog.
    current: Meter | None = None

    def __init__(self, job: Job) -> None:
        Meter.current = self
        self.started = threading.Event()
        self.job = job
        self._tickets = itertools.count()
        self._done = itertools.count()
        self._deadline = float("inf")
        self._start = 0.0
        self._cpu_start = 0.0
        self._rss_start = 0.0
        self._outcome: Outcome | None = None

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
        self._cpu_start = time.process_time()
        self._start = time.perf_counter()
        self._deadline = self._start + self.job.time_cap
        self.started.set()

    @property
    def cut_time(self) -> float:
        """``time.perf_counter()`` value of the cut."""
        return self._start + cut_after(self.job)

    def take(self) -> bool:
        """May the caller start another timed request?"""
        return (
            next(self._tickets) < self.job.requests
            and time.perf_counter() < self._deadline
        )

    def record(self) -> None:
        next(self._done)

    def stop(self, cut: bool | str) -> Outcome:
        """End the timed phase, and publish its outcome at once.

        ``cut``: True if requests were still in flight at the cut; a string
        says why else the phase was cut short.
        """
        elapsed = time.perf_counter() - self._start
        cpu = time.process_time() - self._cpu_start
        done = next(self._done)  # the counter's next value is how many were recorded
        self._outcome = Outcome(
            status="ok",
            done=done,
            elapsed=elapsed,
            body_bytes=done * self.job.body_len,
            rss_delta_mib=max(0.0, _peak_rss_mib() - self._rss_start),
            cpu=cpu,
            detail=cut if isinstance(cut, str) else ("cut" if cut else ""),
        )
        publish(self._outcome)
        return self._outcome


# -- trio ----------------------------------------------------------------------


async def run_trio(
    job: Job, open_client: Callable[[Job], AbstractAsyncContextManager[AsyncWorkers]]
) -> Outcome:
    """Run one measurement with ``job.concurrency`` trio tasks."""
    meter = Meter(job)
    warm, go, finished = trio.Event(), trio.Event(), trio.Event()
    cold = running = job.concurrency

    async def task(workers: AsyncWorkers) -> None:
        nonlocal cold, running
        try:
            async with workers() as fetch:
                meter.check(await fetch(job.warm_path, False), job.warm_len)
                cold -= 1
                if cold == 0:
                    warm.set()
                await go.wait()
                while meter.take():
                    meter.check(await fetch(job.path, job.stream), job.body_len)
                    meter.record()
        finally:
            running -= 1
            if running == 0:
                finished.set()

    async with open_client(job) as workers, trio.open_nursery() as nursery:
        for _ in range(job.concurrency):
            nursery.start_soon(task, workers)
        with trio.move_on_after(job.warm_cap):
            await warm.wait()
        meter.start()
        go.set()
        with trio.move_on_at(trio.current_time() + cut_after(job)) as cut:
            await finished.wait()
        outcome = meter.stop(cut.cancelled_caught)
        nursery.cancel_scope.cancel()
    return outcome


# -- asyncio -------------------------------------------------------------------


async def run_asyncio(
    job: Job, open_client: Callable[[Job], AbstractAsyncContextManager[AsyncWorkers]]
) -> Outcome:
    """Run one measurement with ``job.concurrency`` asyncio tasks."""
    meter = Meter(job)
    warm, go = asyncio.Event(), asyncio.Event()
    cold = job.concurrency

    async def task(workers: AsyncWorkers) -> None:
        nonlocal cold
        async with workers() as fetch:
            meter.check(await fetch(job.warm_path, False), job.warm_len)
            cold -= 1
            if cold == 0:
                warm.set()
            await go.wait()
            while meter.take():
                meter.check(await fetch(job.path, job.stream), job.body_len)
                meter.record()

    async with open_client(job) as workers:
        tasks = [asyncio.ensure_future(task(workers)) for _ in range(job.concurrency)]
        warm_waiter = asyncio.ensure_future(warm.wait())
        # Stop waiting early if a task fails: its error is raised below.
        await asyncio.wait(
            [warm_waiter, *tasks],
            timeout=job.warm_cap,
            return_when=asyncio.FIRST_COMPLETED,
        )
        warm_waiter.cancel()
        meter.start()
        go.set()
        finished, pending = await asyncio.wait(
            tasks, timeout=cut_after(job), return_when=asyncio.FIRST_EXCEPTION
        )
        outcome = meter.stop(cut=bool(pending))
        for pending_task in pending:
            pending_task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for finished_task in finished:
            finished_task.result()  # re-raise the first failure, if any
    return outcome


# -- threads -------------------------------------------------------------------


def run_threads(
    job: Job, open_client: Callable[[Job], AbstractContextManager[SyncWorkers]]
) -> Outcome:
    """Run one measurement with ``min(concurrency, THREAD_CAP)`` threads.

    Threads cannot be cancelled: at the cut they are left running (they are
    daemons) and only what they completed before it counts.
    """
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
            left = warm_deadline - time.perf_counter()
            if not warmed.acquire(timeout=max(0.0, left)):
                break
        meter.start()
        go.set()
        for t in threads:
            t.join(max(0.0, meter.cut_time - time.perf_counter()))
        if errors:
            raise errors[0]
        return meter.stop(cut=any(t.is_alive() for t in threads))
