"""HTTPConnectionPool on memory streams, under trio's autojump MockClock."""

from __future__ import annotations

import pytest
import trio
import trio.lowlevel
import trio.testing

from tests.unit.memory_server import CloseConnection, Exchange, MemoryPool, Reply
from trio_pool import (
    ClosedPoolError,
    ConnectTimeoutError,
    EmptyPoolError,
    InvalidHeader,
    MaxRetryError,
    ReadTimeoutError,
    Timeout,
)


async def test_get_and_reuse(servers: trio.Nursery) -> None:
    async with MemoryPool(servers) as pool:
        first = await pool.request("GET", "/a")
        second = await pool.request("GET", "/b")
        assert (first.status, first.data, second.data) == (200, b"hello", b"hello")
        stats = pool.statistics()
        assert (stats.created, stats.reused, stats.idle, stats.in_use) == (1, 1, 1, 0)
        assert stats.tokens_free == 1


async def test_request_headers_on_the_wire(servers: trio.Nursery) -> None:
    seen: list[Exchange] = []

    async def record(ex: Exchange) -> Reply:
        seen.append(ex)
        return Reply()

    async with MemoryPool(servers, record, headers={"X-Default": "1"}) as pool:
        await pool.request("GET", "/")
        await pool.request("POST", "/", headers={"X-Own": "2"})
    first = dict(seen[0].request.headers)
    assert first[b"host"] == b"example.test"
    assert first[b"accept-encoding"] == b"identity"
    assert first[b"user-agent"].startswith(b"python-trio-pool/")
    assert first[b"x-default"] == b"1"
    second = dict(seen[1].request.headers)
    assert b"x-default" not in second  # per-request headers replace the pool's
    assert second[b"content-length"] == b"0"


async def test_crlf_in_header_is_rejected_before_any_io(servers: trio.Nursery) -> None:
    async with MemoryPool(servers) as pool:
        with pytest.raises(InvalidHeader):
            await pool.request("GET", "/", headers={"X-Evil": "a\r\nInjected: yes"})
        with pytest.raises(InvalidHeader):
            await pool.request("GET", "/", headers={"Bad Name": "x"})
        # A bad method is a ValueError, as urllib3 (http.client) makes it.
        with pytest.raises(ValueError, match="control characters"):
            await pool.request("GE\x00T", "/")
        with pytest.raises(ValueError, match="Invalid HTTP method"):
            await pool.request("GE T", "/")
        assert pool.opened == 0
        assert pool.statistics().tokens_free == 1


async def test_keepalive_expiry_drops_idle_connection(
    servers: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    async with MemoryPool(servers, keepalive_expiry=5) as pool:
        await pool.request("GET", "/")
        start = trio.current_time()
        while pool.statistics().idle:
            await trio.sleep(0.5)
        assert trio.current_time() - start == pytest.approx(5, abs=0.5)
        assert pool.statistics().dropped == 1
        await pool.request("GET", "/")
        assert pool.statistics().created == 2


async def test_server_closing_idle_connection_is_noticed(servers: trio.Nursery) -> None:
    async def close_after(ex: Exchange) -> Reply:
        return Reply(body=b"x")

    async with MemoryPool(servers, close_after) as pool:
        await pool.request("GET", "/")
        # The server side goes away while the connection is idle.
        await pool.server_streams[0].aclose()
        with trio.fail_after(1):
            while pool.statistics().idle:
                await trio.lowlevel.checkpoint()
        assert pool.statistics().dropped == 1
        response = await pool.request("GET", "/")
        assert response.status == 200
        assert pool.statistics().created == 2


async def test_stray_bytes_while_idle_drop_the_connection(
    servers: trio.Nursery,
) -> None:
    streams: list[trio.abc.Stream] = []

    async def remember(ex: Exchange) -> Reply:
        streams.append(ex.stream)
        return Reply()

    async with MemoryPool(servers, remember) as pool:
        await pool.request("GET", "/")
        await streams[0].send_all(b"HTTP/1.1 200 OK\r\n\r\n")
        with trio.fail_after(1):
            while pool.statistics().idle:
                await trio.lowlevel.checkpoint()
        assert pool.statistics().dropped == 1
        assert (await pool.request("GET", "/")).status == 200


async def test_block_true_waits_then_empty_pool_error(
    servers: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    async with MemoryPool(servers, block=True, maxsize=1) as pool:
        held = await pool.request("GET", "/", preload_content=False)
        start = trio.current_time()
        with pytest.raises(EmptyPoolError):
            await pool.request("GET", "/", pool_timeout=2.5)
        assert trio.current_time() - start == 2.5
        assert pool.statistics().waiting == 0
        async with trio.open_nursery() as nursery:

            async def wait_for_it() -> None:
                response = await pool.request("GET", "/")
                assert response.data == b"hello"

            nursery.start_soon(wait_for_it)
            await trio.testing.wait_all_tasks_blocked()
            assert pool.statistics().waiting == 1
            assert await held.read() == b"hello"
        stats = pool.statistics()
        assert (stats.created, stats.reused, stats.tokens_free) == (1, 1, 1)


async def test_block_false_overflow_connection_is_closed_after_use(
    servers: trio.Nursery,
) -> None:
    async with MemoryPool(servers, maxsize=1) as pool:
        first = await pool.request("GET", "/", preload_content=False)
        second = await pool.request("GET", "/", preload_content=False)
        assert pool.statistics().in_use == 2
        await second.read()
        await first.read()
        await trio.testing.wait_all_tasks_blocked()
        stats = pool.statistics()
        assert (stats.created, stats.idle, stats.in_use, stats.tokens_free) == (
            2,
            1,
            0,
            1,
        )


async def test_read_timeout_is_exact(
    servers: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    async def stall(ex: Exchange) -> Reply:
        await trio.sleep_forever()
        raise AssertionError

    async with MemoryPool(servers, stall, timeout=Timeout(read=3)) as pool:
        start = trio.current_time()
        with pytest.raises(ReadTimeoutError):
            await pool.request("GET", "/", retries=False)
        assert trio.current_time() - start == 3
        await trio.testing.wait_all_tasks_blocked()
        stats = pool.statistics()
        assert (stats.idle, stats.in_use, stats.tokens_free) == (0, 0, 1)


async def test_total_timeout_covers_connect_and_read(
    servers: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    async def slow(ex: Exchange) -> Reply:
        await trio.sleep(10)
        return Reply()

    async with MemoryPool(servers, slow) as pool:
        start = trio.current_time()
        with pytest.raises(ReadTimeoutError):
            await pool.request(
                "GET", "/", timeout=Timeout(total=4, read=8), retries=False
            )
        assert trio.current_time() - start == 4


class StallingConnectPool(MemoryPool):
    async def _dial(self, host: str, port: int) -> trio.abc.Stream:
        await trio.sleep_forever()
        raise AssertionError


async def test_connect_timeout(
    servers: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    async with StallingConnectPool(servers, timeout=Timeout(connect=2)) as pool:
        start = trio.current_time()
        with pytest.raises(ConnectTimeoutError):
            await pool.request("GET", "/", retries=False)
        assert trio.current_time() - start == 2
        with pytest.raises(MaxRetryError) as info:
            await pool.request("GET", "/", retries=1)
        assert isinstance(info.value.reason, ConnectTimeoutError)
        assert pool.statistics().tokens_free == 1


async def test_outside_the_block_is_closed_pool_error(servers: trio.Nursery) -> None:
    pool = MemoryPool(servers)
    with pytest.raises(ClosedPoolError):
        await pool.request("GET", "/")
    async with pool:
        await pool.request("GET", "/")
    with pytest.raises(ClosedPoolError):
        await pool.request("GET", "/")
    with pytest.raises(RuntimeError):
        async with pool:
            pass  # pragma: no cover


async def test_server_closing_after_response_is_not_reused(
    servers: trio.Nursery,
) -> None:
    async def close(ex: Exchange) -> Reply:
        return Reply(headers=[("Connection", "close")], body=b"bye")

    async with MemoryPool(servers, close) as pool:
        assert (await pool.request("GET", "/")).data == b"bye"
        assert (await pool.request("GET", "/")).data == b"bye"
        stats = pool.statistics()
        assert (stats.created, stats.reused, stats.idle) == (2, 0, 0)


async def test_dropped_connection_without_response_is_retried_for_get(
    servers: trio.Nursery,
) -> None:
    calls = 0

    async def flaky(ex: Exchange) -> Reply:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise CloseConnection
        return Reply(body=b"second")

    async with MemoryPool(servers, flaky) as pool:
        response = await pool.request("GET", "/")
        assert response.data == b"second"
        assert response.retries is not None
        assert len(response.retries.history) == 1


async def test_lockstep_streams_expose_no_buffering_assumptions(
    servers: trio.Nursery,
) -> None:
    async def big(ex: Exchange) -> Reply:
        return Reply(body=bytes(range(256)) * 512)

    async with MemoryPool(servers, big, lockstep=True) as pool:
        response = await pool.request("POST", "/", body=b"x" * 100_000)
        assert response.data == bytes(range(256)) * 512
        response = await pool.request("GET", "/")
        assert len(response.data) == 256 * 512
        assert pool.statistics().reused == 1


async def test_handoff_when_server_closes_at_checkout(servers: trio.Nursery) -> None:
    """The idle task reports a dead connection instead of handing it over."""
    async with MemoryPool(servers) as pool:
        await pool.request("GET", "/")
        await trio.testing.wait_all_tasks_blocked()
        server = pool.server_streams[0]
        assert isinstance(server, trio.StapledStream)
        server.send_stream.close()
        # No checkpoint between the close and the request: the pool pops the
        # connection whose task has been woken by EOF but has not yet run.
        response = await pool.request("GET", "/")
        assert response.status == 200
        stats = pool.statistics()
        assert (stats.created, stats.dropped) == (2, 1)


async def test_closing_the_pool_wakes_requests_waiting_for_a_token(
    servers: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    async with MemoryPool(servers, block=True, maxsize=1) as pool:
        held = await pool.request("GET", "/", preload_content=False)
        failures: list[BaseException] = []

        async def waiter() -> None:
            try:
                await pool.request("GET", "/")
            except ClosedPoolError as exc:
                failures.append(exc)

        with trio.fail_after(10):  # virtual seconds: a stuck waiter fails fast
            async with trio.open_nursery() as nursery:
                nursery.start_soon(waiter)
                await trio.testing.wait_all_tasks_blocked()
                assert pool.statistics().waiting == 1
                await pool.aclose()
        assert len(failures) == 1
        await held.release_conn()
