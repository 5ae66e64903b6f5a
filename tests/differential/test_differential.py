"""The differential tests: hypothesis cases through urllib3 and trio_pool.

``TRIO_POOL_DIFF_EXAMPLES`` sets the number of examples per test (default
150; e.g. 2000 for a long run). Runs are derandomized, so CI sees the same
examples every time.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import urllib3
from hypothesis import HealthCheck, given, settings

import trio_pool

from .cases import Case, cases
from .harness import Clients, KnownDifference, compare
from .known import KNOWN_DIFFERENCES
from .server import RecordingServer

EXAMPLES = int(os.environ.get("TRIO_POOL_DIFF_EXAMPLES", "150"))


@asynccontextmanager
async def open_clients(via: str) -> AsyncIterator[Clients]:
    """The server and one keep-alive client of each library, for a test."""
    server = RecordingServer()
    server.start()
    host, port = "127.0.0.1", server.ports[0]
    theirs: Any
    ours: Any
    if via == "pool":
        theirs = urllib3.HTTPConnectionPool(host, port)
        ours = trio_pool.HTTPConnectionPool(host, port)
    elif via == "proxy":
        theirs = urllib3.ProxyManager(f"http://{host}:{port}")
        ours = trio_pool.ProxyManager(f"http://{host}:{port}")
    else:
        theirs = urllib3.PoolManager()
        ours = trio_pool.PoolManager()
    try:
        async with ours:
            yield Clients(server, theirs, ours)
    finally:
        theirs.clear() if via != "pool" else theirs.close()
        server.stop()


def run_examples(check: Callable[[Case], None], via: str) -> None:
    """Run hypothesis over ``cases(via)`` in this (worker) thread."""

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(cases(via))
    def examples(case: Case) -> None:
        check(case)

    examples()


@pytest.mark.parametrize("via", ["manager", "pool", "proxy"])
async def test_same_as_urllib3(via: str) -> None:
    """Whatever hypothesis sends, both clients put the same bytes on the
    wire and return the same thing, apart from KNOWN_DIFFERENCES."""
    async with open_clients(via) as clients:

        def check(case: Case) -> None:
            compare(clients, case, KNOWN_DIFFERENCES)

        await trio.to_thread.run_sync(run_examples, check, via)


def check_entry(clients: dict[str, Clients], entry: KnownDifference) -> None:
    """The entry's example passes with the table and differs without it."""
    case = entry.example
    assert entry.applies(case), f"{entry.id}: its example is not one it applies to"
    compare(clients[case.via], case, KNOWN_DIFFERENCES)
    if entry.refused:
        return  # compare() just checked that trio_pool still refuses it
    others = tuple(k for k in KNOWN_DIFFERENCES if k is not entry)
    try:
        compare(clients[case.via], case, others)
    except AssertionError:
        return
    raise AssertionError(
        f"known difference {entry.id} is no longer needed: remove it from "
        f"KNOWN_DIFFERENCES (its example {case} now matches urllib3)"
    )


async def test_known_differences_still_needed() -> None:
    """Each KNOWN_DIFFERENCES entry still hides a real difference (so the
    table shrinks as fixes land, and the comparison can fail)."""
    async with (
        open_clients("manager") as manager,
        open_clients("pool") as pool,
        open_clients("proxy") as proxy,
    ):
        clients = {"manager": manager, "pool": pool, "proxy": proxy}

        def check_all() -> None:
            failures = []
            for entry in KNOWN_DIFFERENCES:
                try:
                    check_entry(clients, entry)
                except AssertionError as exc:
                    failures.append(str(exc))
            assert not failures, "\n\n".join(failures)

        await trio.to_thread.run_sync(check_all)
