"""``trio-pool bench``: a load generator reporting throughput and latency."""

from __future__ import annotations

import math
from array import array
from collections import Counter
from typing import TextIO

import trio

import trio_pool

from ._causes import describe
from ._client import open_manager, request_headers
from ._options import BenchOptions
from ._output import StatusLine

__all__ = ["Tally", "report", "run_bench"]

_BUCKETS = 10
_BAR = 40


class Tally:
    """What the workers measured: latencies (seconds) and errors by cause."""

    def __init__(self) -> None:
        self.started = 0
        self.ok = 0
        # An array of doubles: a long run may measure millions of requests.
        self.latencies = array("d")
        self.errors: Counter[str] = Counter()

    @property
    def finished(self) -> int:
        """Requests that completed, successfully or not."""
        return self.ok + sum(self.errors.values())


async def _one(
    http: trio_pool.PoolManager, options: BenchOptions, tally: Tally
) -> None:
    spec = options.request
    start = trio.current_time()
    cause: str | None = "timed out"
    with trio.move_on_after(options.client.timeout):
        try:
            response = await http.urlopen(
                spec.method,
                options.url,
                body=spec.body,
                headers=request_headers(spec),
                preload_content=False,
            )
            async with response:
                async for _ in response.stream(2**16):
                    pass
            tally.latencies.append(trio.current_time() - start)
            cause = f"HTTP {response.status}" if response.status >= 400 else None
        except trio_pool.HTTPError as exc:
            cause = describe(exc)
    if cause is None:
        tally.ok += 1
    else:
        tally.errors[cause] += 1


async def _worker(
    http: trio_pool.PoolManager, options: BenchOptions, tally: Tally
) -> None:
    while options.requests is None or tally.started < options.requests:
        tally.started += 1
        await _one(http, options, tally)


async def _progress(tally: Tally, status: StatusLine, start: float) -> None:
    while True:
        await trio.sleep(0.25)
        elapsed = trio.current_time() - start
        status.show(
            f"trio-pool bench: {tally.finished} requests, "
            f"{tally.finished / elapsed:,.0f} req/s, "
            f"{sum(tally.errors.values())} errors, {elapsed:.1f} s"
        )


async def run_bench(options: BenchOptions, stdout: TextIO, stderr: TextIO) -> int:
    """Run ``trio-pool bench``; 0 if every request succeeded, else 1.

    Cancelled (Ctrl-C), it still prints the report of what it measured.
    """
    status = StatusLine(stderr)
    tally = Tally()
    start = trio.current_time()
    deadline = math.inf if options.duration is None else start + options.duration
    http = open_manager(options.client)
    try:
        async with http:
            with trio.move_on_at(deadline):
                async with trio.open_nursery() as nursery:
                    if status.enabled:
                        nursery.start_soon(_progress, tally, status, start)
                    async with trio.open_nursery() as workers:
                        for _ in range(options.client.concurrency):
                            workers.start_soon(_worker, http, options, tally)
                    nursery.cancel_scope.cancel()
    finally:
        status.clear()
        elapsed = min(trio.current_time(), deadline) - start
        tasks = options.client.concurrency
        print(report(options.url, tally, elapsed, tasks), file=stdout, flush=True)
    return 1 if tally.errors else 0


def percentile(ordered: list[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile of a sorted, non-empty list."""
    rank = math.ceil(p / 100 * len(ordered))
    return ordered[min(len(ordered), max(rank, 1)) - 1]


def histogram(ordered: list[float]) -> list[str]:
    """Lines of a latency histogram, buckets spaced evenly on a log scale."""
    low, high = ordered[0], ordered[-1]
    if high <= low or low <= 0:
        return [f"<= {high * 1000:8.2f} ms {len(ordered):9d}  {'#' * _BAR}"]
    ratio = (high / low) ** (1 / _BUCKETS)
    edges = [low * ratio**i for i in range(1, _BUCKETS)] + [high]
    counts = [0] * _BUCKETS
    bucket = 0
    for value in ordered:
        while value > edges[bucket] and bucket < _BUCKETS - 1:
            bucket += 1
        counts[bucket] += 1
    widest = max(counts)
    return [
        f"<= {edge * 1000:8.2f} ms {n:9d}  {'#' * round(_BAR * n / widest)}".rstrip()
        for edge, n in zip(edges, counts, strict=True)
    ]


def report(url: str, tally: Tally, elapsed: float, tasks: int) -> str:
    """The text ``bench`` prints at the end."""
    errors = sum(tally.errors.values())
    rate = tally.finished / elapsed if elapsed > 0 else 0.0
    lines = [
        f"trio-pool bench {url}",
        f"  {tally.finished} requests in {elapsed:.2f} s with {tasks} tasks: "
        f"{tally.ok} ok, {errors} errors",
        f"  {rate:,.1f} req/s",
    ]
    if tally.latencies:
        ordered = sorted(tally.latencies)
        p50, p90, p99 = (percentile(ordered, p) * 1000 for p in (50, 90, 99))
        lines.append(
            f"  latency ms: p50 {p50:.2f}  p90 {p90:.2f}  p99 {p99:.2f}  "
            f"max {ordered[-1] * 1000:.2f}"
        )
        lines.append("  histogram (latency, requests):")
        lines += ["    " + line for line in histogram(ordered)]
    if errors:
        lines.append("  errors by cause:")
        lines += [f"    {cause}: {n}" for cause, n in tally.errors.most_common()]
    return "\n".join(lines)
