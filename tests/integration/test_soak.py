"""A bounded soak: many requests from many tasks through one PoolManager.

Against two bundled servers on loopback (two origins, so the manager routes),
``TRIO_POOL_SOAK_REQUESTS`` requests (default 5,000) are made by
``TRIO_POOL_SOAK_TASKS`` concurrent tasks (default 100); ``nox -s soak`` runs
50,000 from 500. Every request carries a unique id, in its URL and in a header,
and its response is checked against that id, so a response handed to the wrong
request (cross-talk) cannot go unnoticed.

Leaks are measured around the run, after a warm-up batch has filled the
one-time caches, once the manager and both servers have exited:

* open file descriptors (``/proc/self/fd``) must be exactly back to baseline:
  every socket the run opened is closed, and nothing else may appear;
* allocated memory blocks (``sys.getallocatedblocks()``, free to count, so the
  whole run is measured) may exceed the baseline by at most
  ``BLOCKS_TOLERANCE`` (1,000): leaking a single object per request would
  add at least 5,000 at the default size, while interpreter free lists and
  caches that do not grow with the run stay within a few hundred;
* ``tracemalloc`` (which slows everything ~5x, so it watches a shorter run of
  ``TRACED`` requests): memory allocated by trio_pool's own code must be
  back to baseline within ``OURS_TOLERANCE`` (1 KiB: less than one object
  per 100 requests), and all traced memory within ``MEMORY_TOLERANCE``
  (128 KiB, about 100 bytes a request: interpreter caches, not a per-request
  leak, which would be at least the size of a response object).

Before each measurement the test waits for the keep-alive expiry (``KEEPALIVE``,
1 s) to pass: trio's deadline heap drops the cancel scopes of finished waits
lazily, keeping each until its deadline passes (or up to ~1,000 of them until
it prunes), which would otherwise show up as a few hundred KiB of "leak".
Read timeouts are off for the same reason (each receive would leave a scope
there for 30 s); ``trio.fail_after(TIME_LIMIT)`` bounds the run instead.

A second soak has the server reset ~1% of connections (a seeded, per-attempt
draw, so the outcome is reproducible whatever the scheduling), always after it
has read the whole request and before it sends a byte: GETs are retried and all
succeed; a POST that meets a reset fails with ``ProtocolError`` and is not
retried, so the server sees every POST exactly once.
"""

from __future__ import annotations

import gc
import glob
import os
import random
import sys
import tracemalloc
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio

import trio_pool
from tests.integration.nginx import start_nginx
from trio_pool import (
    MaxRetryError,
    PoolManager,
    ProtocolError,
    Retry,
    Timeout,
)
from trio_pool.testing import (
    RawConnection,
    Request,
    Response,
    open_server,
    pattern,
)

REQUESTS = int(os.environ.get("TRIO_POOL_SOAK_REQUESTS", "5000"))
TASKS = int(os.environ.get("TRIO_POOL_SOAK_TASKS", "100"))
SEED = int(os.environ.get("TRIO_POOL_SOAK_SEED", "20240611"))
#: Connections per origin. Tasks queue for them (block=True), FIFO; more tasks
#: than connections is the point of a pool.
MAXSIZE = min(TASKS, 32)
#: Real seconds the whole run may take: generous (20 ms a request) so a slow,
#: loaded CI machine passes, while a hang still fails.
TIME_LIMIT = 60 + REQUESTS * 0.02
KEEPALIVE = 1.0
BLOCKS_TOLERANCE = 1000
TRACED = min(REQUESTS, 1000)
MEMORY_TOLERANCE = 128 * 1024
#: Bytes that trio_pool's own code may still hold after the traced run. One
#: CI run of the whole suite saw 160 bytes (one small object, not reproduced
#: since); a per-request leak over TRACED requests would be tens of KiB.
OURS_TOLERANCE = 1024
RESET_RATE = 0.01
WARM_UP = 200

#: Where trio_pool's modules live; tracemalloc attributes memory to files.
PACKAGE_DIR = os.path.dirname(os.path.abspath(trio_pool.__file__))

REPORT: list[str] = []
#: The lines of trio_pool that hold traced memory at the last measurement.
OURS_REMAINING: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def report_soak(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print what the soaks measured, once the module is done."""
    yield
    if REPORT:
        write_to_terminal(request.config, REPORT)


def write_to_terminal(config: pytest.Config, lines: list[str]) -> None:
    """Write past pytest's output capture, so the lines show in any mode."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:  # pragma: no cover - plugins off
        print(*lines, sep="\n")
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        for line in lines:
            reporter.write_line(line)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


needs_proc = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc/self/fd"
)


@contextmanager
def traced() -> Iterator[Callable[[bool], int]]:
    """Trace allocations in the block; yields ``allocated(ours_only)``: bytes
    allocated now (by trio_pool's own code only, if asked)."""
    started_here = not tracemalloc.is_tracing()
    if started_here:
        tracemalloc.start()
    # The package's own directory, not a glob on its name: a checkout in a
    # folder called trio_pool would otherwise count the tests as "ours".
    ours = [tracemalloc.Filter(True, os.path.join(glob.escape(PACKAGE_DIR), "*"))]

    def allocated(ours_only: bool) -> int:
        clear_bounded_caches()
        # A full collection also empties the interpreter's free lists (freed
        # tuples it keeps for reuse, which tracemalloc still counts).
        gc.collect()
        if not ours_only:
            return tracemalloc.get_traced_memory()[0]
        snapshot = tracemalloc.take_snapshot().filter_traces(ours)
        # Where it stands, for the failure message if anything remains.
        OURS_REMAINING[:] = [str(stat) for stat in snapshot.statistics("lineno")[:5]]
        return sum(stat.size for stat in snapshot.statistics("filename"))

    try:
        yield allocated
    finally:
        if started_here:
            tracemalloc.stop()


def clear_bounded_caches() -> None:
    """Empty the hot path's caches (recent parsed URLs and hosts, header
    sets and request events h11 has validated): each is bounded by design,
    so what they hold is no leak; a soak of unique URLs would otherwise count
    them as growth."""
    from trio_pool import _http11, _url

    _url._PARSED.clear()
    _url._NORMAL_HOSTS.clear()
    _http11._VALIDATED.clear()
    _http11._REQUESTS.clear()


async def settle() -> None:
    """Let every deadline the last run set pass, then collect garbage."""
    await trio.sleep(KEEPALIVE + 0.5)
    gc.collect()


# -- requests and their checks ---------------------------------------------------------


async def soak_route(request: Request) -> Response:
    """Reflects the id in a chunked body of id-dependent length."""
    rid = request.param("id", "")
    assert rid is not None
    n = int(rid) * 31 % 3000
    head = f"soak:{rid}:".encode()
    return Response(200, [("X-Soak-Id", rid)], chunks=[head, pattern(n), b":end"])


def _header(echoed: dict[str, object], name: str) -> str | None:
    for key, value in echoed["headers"]:  # type: ignore[attr-defined]
        if key.lower() == name.lower():
            return str(value)
    return None


async def one_request(http: PoolManager, base: str, rid: int) -> None:
    """Request number ``rid``, of a kind chosen by ``rid``; checks the answer
    belongs to it. Raises AssertionError on any mismatch."""
    kind = rid % 4
    ident = {"X-Soak-Id": str(rid)}
    if kind in (0, 1):
        method = "GET" if kind == 0 else "POST"
        body = f"body-{rid}".encode() if kind == 1 else None
        response = await http.request(
            method, f"{base}/echo?id={rid}", headers=ident, body=body
        )
        echoed = response.json()
        assert echoed["method"] == method
        assert echoed["query"] == {"id": [str(rid)]}
        assert _header(echoed, "X-Soak-Id") == str(rid)
        assert echoed["body"] == (f"body-{rid}" if body else "")
    elif kind == 2:
        n = rid * 7919 % 20000
        response = await http.request(
            "GET", f"{base}/bytes/{n}?id={rid}", preload_content=False
        )
        data = b"".join([piece async for piece in response.stream(4096)])
        assert data == pattern(n), (rid, len(data))
    else:
        response = await http.request(
            "GET", f"{base}/soak?id={rid}", headers=ident, preload_content=False
        )
        data = b""
        while piece := await response.read(1000):
            data += piece
        n = rid * 31 % 3000
        assert data == f"soak:{rid}:".encode() + pattern(n) + b":end", rid
        assert response.headers["X-Soak-Id"] == str(rid)
    assert response.status == 200


@dataclass
class Run:
    """What a soak run saw."""

    done: int = 0
    errors: list[tuple[int, BaseException]] = field(default_factory=list)

    def assert_clean(self) -> None:
        shown = "\n".join(f"  #{rid}: {exc!r}" for rid, exc in self.errors[:5])
        assert not self.errors, f"{len(self.errors)} failed requests:\n{shown}"


async def run_soak(
    ids: range, tasks: int, request: Callable[[int], Awaitable[None]]
) -> Run:
    """``request(rid)`` for every id, from ``tasks`` concurrent tasks."""
    run = Run()
    todo = iter(ids)

    async def worker() -> None:
        for rid in todo:  # shared: each id is taken by exactly one task
            try:
                await request(rid)
            except Exception as exc:
                run.errors.append((rid, exc))
            run.done += 1

    async with trio.open_nursery() as nursery:
        for _ in range(tasks):
            nursery.start_soon(worker)
    return run


async def soak_against_two_servers(ids: range, tasks: int) -> Run:
    """One manager, two servers; returns once both servers closed everything."""
    async with (
        open_server(record_requests=False) as one,
        open_server(record_requests=False) as two,
    ):
        for server in (one, two):
            server.add_route("/soak", soak_route)
        bases = (one.url, two.url)
        async with PoolManager(
            maxsize=MAXSIZE,
            block=True,
            retries=False,  # nothing may fail, so nothing is retried
            timeout=Timeout(connect=10),
            keepalive_expiry=KEEPALIVE,
        ) as http:

            async def request(rid: int) -> None:
                await one_request(http, bases[rid // 4 % 2], rid)

            run = await run_soak(ids, tasks, request)
            stats = http.statistics()
            assert (stats.pools, stats.in_use, stats.waiting) == (2, 0, 0), stats
            assert stats.created - stats.dropped <= 2 * MAXSIZE, stats
        with trio.fail_after(10):
            for server in (one, two):
                await server.wait_until(lambda s: s.open_connections == 0)
                assert not server.errors, server.errors[:3]
        assert one.request_count + two.request_count == len(ids)
    return run


@needs_proc
async def test_soak_no_errors_no_crosstalk_no_leaks() -> None:
    with trio.fail_after(TIME_LIMIT):
        warm_up = await soak_against_two_servers(range(WARM_UP), min(TASKS, 50))
        warm_up.assert_clean()
        await settle()
        fds_before, blocks_before = open_fds(), sys.getallocatedblocks()
        run = await soak_against_two_servers(range(REQUESTS), TASKS)
        await settle()
        fds_after, blocks_after = open_fds(), sys.getallocatedblocks()
        with traced() as allocated:
            memory_before, ours_before = allocated(False), allocated(True)
            ids = range(REQUESTS, REQUESTS + TRACED)
            traced_run = await soak_against_two_servers(ids, TASKS)
            await settle()
            memory_after, ours_after = allocated(False), allocated(True)
    run.assert_clean()
    traced_run.assert_clean()
    assert run.done == REQUESTS
    REPORT.append(
        f"soak: {REQUESTS} requests from {TASKS} tasks served, 0 errors; "
        f"fds {fds_before} -> {fds_after}; "
        f"allocated blocks {blocks_before} -> {blocks_after} "
        f"({blocks_after - blocks_before:+d}); over {TRACED} more requests, "
        f"traced memory {memory_before / 1024:.0f} -> {memory_after / 1024:.0f} "
        f"KiB ({(memory_after - memory_before) / 1024:+.1f} KiB), of it "
        f"trio_pool's {ours_before} -> {ours_after} bytes"
    )
    assert fds_after == fds_before
    assert blocks_after - blocks_before < BLOCKS_TOLERANCE
    assert ours_after - ours_before < OURS_TOLERANCE, OURS_REMAINING
    assert memory_after - memory_before < MEMORY_TOLERANCE


# -- the same with connection resets -------------------------------------------


def resets(rid: int, attempt: int) -> bool:
    """Whether the server resets attempt ``attempt`` (from 1) of ``rid``: a
    seeded draw per attempt, so it does not depend on scheduling."""
    return random.Random(f"{SEED}:{rid}:{attempt}").random() < RESET_RATE


def attempts_needed(rid: int) -> int:
    attempt = 1
    while resets(rid, attempt):
        attempt += 1
    return attempt


class FlakyRoute:
    """Answers with the method, id and body, unless the draw says reset: then
    it resets the connection, having read the whole request (so the request
    counts as delivered) and before sending a single byte."""

    def __init__(self) -> None:
        self.arrivals: Counter[int] = Counter()
        self.resets: Counter[int] = Counter()

    async def __call__(self, request: Request, conn: RawConnection) -> None:
        rid = int(request.param("id") or "-1")
        self.arrivals[rid] += 1
        if resets(rid, self.arrivals[rid]):
            self.resets[rid] += 1
            await conn.reset()
            return
        text = f"{request.method} {rid} {request.body.decode()}"
        await conn.send_response(Response.text(text))


@needs_proc
async def test_soak_with_resets_retries_gets_and_never_repeats_posts() -> None:
    # Retry(3): a GET gets four attempts; the seed must not reset any GET four
    # times in a row, or the expectations below would be wrong.
    assert all(attempts_needed(rid) <= 4 for rid in range(0, REQUESTS, 2))
    route = FlakyRoute()
    failed: dict[int, BaseException] = {}
    fds_before = open_fds()
    with trio.fail_after(TIME_LIMIT):
        async with open_server(record_requests=False) as server:
            server.add_raw_route("/flaky", route)
            async with PoolManager(
                maxsize=MAXSIZE, block=True, retries=Retry(3), timeout=30
            ) as http:

                async def request(rid: int) -> None:
                    method = "GET" if rid % 2 == 0 else "POST"
                    body = f"payload-{rid}".encode() if method == "POST" else None
                    url = f"{server.url}/flaky?id={rid}"
                    try:
                        response = await http.request(method, url, body=body)
                    except ProtocolError as exc:
                        failed[rid] = exc
                        return
                    expected = f"{method} {rid} {'' if body is None else body.decode()}"
                    assert response.data.decode() == expected, (rid, response.data)

                run = await run_soak(range(REQUESTS), TASKS, request)
            with trio.fail_after(10):
                await server.wait_until(lambda s: s.open_connections == 0)
            assert not server.errors, server.errors[:3]
    run.assert_clean()

    gets, posts = range(0, REQUESTS, 2), range(1, REQUESTS, 2)
    # Every GET succeeded, after exactly the attempts the draws called for.
    assert not {rid for rid in failed if rid % 2 == 0}
    assert {rid: route.arrivals[rid] for rid in gets} == {
        rid: attempts_needed(rid) for rid in gets
    }
    # Every POST reached the server exactly once; those reset failed, with
    # ProtocolError itself (not retried, so not MaxRetryError), the others
    # succeeded.
    assert {rid: route.arrivals[rid] for rid in posts} == dict.fromkeys(posts, 1)
    assert set(failed) == {rid for rid in posts if route.resets[rid]}
    assert not [e for e in failed.values() if isinstance(e, MaxRetryError)]
    total_resets = sum(route.resets.values())
    assert total_resets > 0
    fds_after = open_fds()
    REPORT.append(
        f"soak with resets: {REQUESTS} requests from {TASKS} tasks, "
        f"{total_resets} connections reset, {sum(route.arrivals.values())} "
        f"requests served, {len(failed)} POSTs failed (each seen once); "
        f"fds {fds_before} -> {fds_after}"
    )
    assert fds_after == fds_before


# -- pools retired under load --------------------------------------------------


@needs_proc
async def test_soak_with_pools_evicted_while_in_use() -> None:
    """Three origins and room for two pools: pools are retired (LRU) while
    their responses are still streaming; every response still completes and
    every connection is closed in the end."""
    n = max(REQUESTS // 5, 200)
    fds_before = open_fds()
    with trio.fail_after(TIME_LIMIT):
        async with (
            open_server(record_requests=False) as one,
            open_server(record_requests=False) as two,
            open_server(record_requests=False) as three,
        ):
            for server in (one, two, three):
                server.add_route("/soak", soak_route)
            bases = [s.url for s in (one, two, three)]
            async with PoolManager(
                num_pools=2, maxsize=8, retries=False, timeout=30
            ) as http:

                async def request(rid: int) -> None:
                    await one_request(http, bases[rid % 3], rid)

                run = await run_soak(range(n), min(TASKS, 50), request)
                assert http.statistics().in_use == 0
            with trio.fail_after(10):
                for server in (one, two, three):
                    await server.wait_until(lambda s: s.open_connections == 0)
    run.assert_clean()
    assert open_fds() == fds_before


NGINX_ECHO = """
        location /soak/ { return 200 "$request_uri"; }
"""


@needs_proc
async def test_soak_against_nginx(tmp_path: Path) -> None:
    """The same soak against a real server: nginx answers each request with its
    own URI, so every body is checked against its request."""
    with start_nginx(
        tmp_path,
        locations=NGINX_ECHO,
        keepalive_timeout="30s",
    ) as nginx:
        base = f"http://127.0.0.1:{nginx.http_port}"
        fds_before = open_fds()
        with trio.fail_after(TIME_LIMIT):
            async with PoolManager(
                maxsize=MAXSIZE, block=True, retries=False, keepalive_expiry=KEEPALIVE
            ) as http:

                async def request(rid: int) -> None:
                    path = f"/soak/{rid}?n={rid * 7}"
                    response = await http.request("GET", base + path)
                    assert (response.status, response.data) == (200, path.encode())

                run = await run_soak(range(REQUESTS), TASKS, request)
                stats = http.statistics()
            await settle()
        fds_after = open_fds()
    run.assert_clean()
    assert run.done == REQUESTS
    assert (stats.in_use, stats.waiting) == (0, 0)
    # nginx closes a connection after 1,000 requests; never more than
    # MAXSIZE are open at once.
    assert stats.created - stats.dropped <= MAXSIZE
    REPORT.append(
        f"soak against nginx: {REQUESTS} requests from {TASKS} tasks, 0 errors, "
        f"{stats.created} connections; fds {fds_before} -> {fds_after}"
    )
    assert fds_after == fds_before
