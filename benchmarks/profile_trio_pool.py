"""Where trio_pool spends its time: ``python -m benchmarks.profile_trio_pool``.

Runs trio_pool alone (no meter, no subprocess) against the benchmark server
under pyinstrument, after a warm-up, for the sequential keep-alive and the
200-task scenarios (and sequential HTTPS, once ``HTTPSConnectionPool``
exists), and prints for each: the rate reached while profiled, the share of time per
library, the functions with the most self time, and trio_pool's own functions
by inclusive time. ``--out DIR`` also writes pyinstrument's call trees there.
Also reachable as ``nox -s bench -- --profile``.
"""

from __future__ import annotations

import argparse
import collections
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import trio
from pyinstrument import Profiler
from pyinstrument.frame import Frame

import trio_pool

from . import servers

#: Library of a frame, by a fragment of its file path (first match wins).
_GROUPS = (
    ("/trio_pool/", "trio_pool"),
    ("/trio/", "trio"),
    ("/h11/", "h11"),
    ("/ssl.py", "ssl"),
    ("/benchmarks/", "benchmark loop"),
)


def _group(frame: Frame) -> str:
    path = frame.file_path or ""
    return next((name for part, name in _GROUPS if part in path), "other (stdlib)")


def _walk(
    frame: Frame, ancestors: frozenset[str] = frozenset()
) -> Iterator[tuple[Frame, bool]]:
    """Every frame, and whether it is the outermost call of its function."""
    key = f"{frame.file_path}:{frame.function}"
    yield frame, key not in ancestors
    for child in frame.children:
        yield from _walk(child, ancestors | {key})


def _name(frame: Frame) -> str:
    path = frame.file_path or "?"
    for part, _ in _GROUPS:
        if part in path:
            path = part.strip("/") + "/" + path.split(part, 1)[1]
            break
    return f"{frame.function} ({path}:{frame.line_no})"


async def _sequential(pool: Any, path: str, until: float) -> int:
    done = 0
    while trio.current_time() < until:
        r = await pool.request("GET", path)
        assert r.status == 200 and r.data
        done += 1
    return done


def _pool(info: servers.ServerInfo, tasks: int, tls: bool) -> Any:
    if tls:
        return trio_pool.HTTPSConnectionPool(
            info.host, info.https_port, maxsize=tasks, block=True, ca_certs=info.ca_file
        )
    return trio_pool.HTTPConnectionPool(
        info.host, info.http_port, maxsize=tasks, block=True
    )


async def _load(
    info: servers.ServerInfo, tasks: int, tls: bool, seconds: float, profiler: Profiler
) -> tuple[int, float]:
    """Requests made while profiled, and how long that took."""
    counts: list[int] = []
    async with _pool(info, tasks, tls) as pool:

        async def one(until: float) -> None:
            counts.append(await _sequential(pool, info.small_path, until))

        # Warm up (open every connection) before profiling.
        async with trio.open_nursery() as nursery:
            for _ in range(tasks):
                nursery.start_soon(one, trio.current_time() + 0.2)
        counts.clear()
        profiler.start()
        began = time.perf_counter()
        until = trio.current_time() + seconds
        async with trio.open_nursery() as nursery:
            for _ in range(tasks):
                nursery.start_soon(one, until)
        elapsed = time.perf_counter() - began
        profiler.stop()
    return sum(counts), elapsed


def _largest(times: dict[str, float], n: int | None = None) -> list[tuple[str, float]]:
    return sorted(times.items(), key=lambda item: item[1], reverse=True)[:n]


def profile(
    info: servers.ServerInfo, tasks: int, tls: bool, seconds: float, top: int
) -> tuple[str, str]:
    """Profile ``tasks`` tasks for ``seconds``: (summary, pyinstrument's tree)."""
    profiler = Profiler(interval=0.001, async_mode="disabled")
    done, elapsed = trio.run(_load, info, tasks, tls, seconds, profiler)
    session = profiler.last_session
    root = session.root_frame() if session is not None else None
    assert root is not None
    total = root.time

    by_group: dict[str, float] = collections.defaultdict(float)
    self_time: dict[str, float] = collections.defaultdict(float)
    inclusive: dict[str, float] = collections.defaultdict(float)
    for frame, outermost in _walk(root):
        if frame.is_synthetic:  # "[self]" leaves: already in the parent's self time
            continue
        by_group[_group(frame)] += frame.total_self_time
        self_time[_name(frame)] += frame.total_self_time
        if outermost and _group(frame) == "trio_pool":
            inclusive[_name(frame)] += frame.time

    lines = [
        f"### {'HTTPS' if tls else 'HTTP'}, {tasks} task(s):"
        f" {done / elapsed:,.0f} req/s while profiled ({done} requests)",
        "",
        "Self time by library: "
        + ", ".join(f"{g} {t / total:.0%}" for g, t in _largest(by_group)),
        "",
        f"Top {top} functions by self time:",
    ]
    lines += [f"  {t / total:6.1%}  {n}" for n, t in _largest(self_time, top)]
    lines += ["", f"Top {top} trio_pool functions by inclusive time:"]
    lines += [f"  {t / total:6.1%}  {n}" for n, t in _largest(inclusive, top)]
    return "\n".join(lines), profiler.output_text(unicode=True, color=False)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile_trio_pool")
    p.add_argument("--server", choices=["auto", "nginx", "bundled"], default="auto")
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--top", type=int, default=20)
    p.add_argument("--out", type=Path, help="directory for the full call trees")
    args = p.parse_args(argv)
    with servers.open_server(args.server, servers.SMALL_LEN) as info:
        print(f"server: {info.name}\n")
        runs = [(1, False), (200, False)]
        if hasattr(trio_pool, "HTTPSConnectionPool"):
            runs.append((1, True))
        for tasks, tls in runs:
            summary, tree = profile(info, tasks, tls, args.seconds, args.top)
            print(summary, end="\n\n", flush=True)
            if args.out is not None:
                args.out.mkdir(parents=True, exist_ok=True)
                name = f"profile-{'https' if tls else 'http'}-{tasks}-tasks.txt"
                (args.out / name).write_text(summary + "\n\n" + tree)


if __name__ == "__main__":
    main()
