"""PoolManager: routing, LRU eviction, cross-host redirects."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

import trio_pool
from trio_pool import ClosedPoolError, LocationValueError, PoolManager, URLSchemeUnknown
from trio_pool.testing import Server, open_server, pattern


@pytest.fixture
async def other() -> AsyncIterator[Server]:
    async with open_server() as running:
        yield running


async def test_routes_by_origin_and_reuses(server: Server, other: Server) -> None:
    async with PoolManager() as http:
        for _ in range(3):
            assert (await http.request("GET", server.url + "/bytes/5")).data == pattern(
                5
            )
            assert (await http.request("GET", other.url + "/bytes/7")).data == pattern(
                7
            )
        assert len(http.pools) == 2
        pool = http.connection_from_url(server.url)
        assert pool is http.connection_from_host(server.host, server.port, "http")
        assert pool.statistics().reused == 2
    assert server.connections_opened == other.connections_opened == 1


async def test_pool_key_separates_options(server: Server) -> None:
    async with PoolManager(maxsize=2) as http:
        a = http.connection_from_url(server.url)
        b = http.connection_from_url(f"http://localhost:{server.port}")
        assert a is not b
        assert a.maxsize == 2
    async with (
        PoolManager(headers={"X-A": "1"}) as http1,
        PoolManager(headers={"X-A": "2"}) as http2,
    ):
        assert http1.connection_from_url(server.url) is not http2.connection_from_url(
            server.url
        )


async def test_lru_eviction_while_streaming(server: Server, other: Server) -> None:
    async with PoolManager(num_pools=1) as http:
        streaming = await http.request(
            "GET", server.url + "/bytes/200000", preload_content=False
        )
        first_pool = http.connection_from_url(server.url)
        await http.request("GET", other.url + "/echo")  # evicts the first pool
        assert list(http.pools) == [
            trio_pool.PoolKey.make("http", other.host, other.port, {})
        ]
        # The evicted pool takes no new requests...
        with pytest.raises(ClosedPoolError):
            await first_pool.request("GET", "/echo")
        # ...but the response streaming from it finishes normally.
        assert await streaming.read() == pattern(200000)
        await trio.testing.wait_all_tasks_blocked()
        stats = first_pool.statistics()
        assert (stats.in_use, stats.idle, stats.tokens_free) == (0, 0, 1)
        assert not first_pool._conns


async def test_cross_host_redirect_strips_credentials(
    server: Server, other: Server
) -> None:
    secret = {"Authorization": "Bearer s3cret", "Cookie": "a=b", "X-Other": "kept"}
    async with PoolManager() as http:
        response = await http.request(
            "GET", f"{server.url}/redirect/302?to={other.url}/echo", headers=secret
        )
        names = {k.lower() for k, _ in response.json()["headers"]}
        assert (
            "authorization" not in names
            and "cookie" not in names
            and "x-other" in names
        )
        assert response.url == other.url + "/echo"
        response = await http.request(
            "GET", f"{server.url}/redirect/302?to=/echo", headers=secret
        )
        names = {k.lower() for k, _ in response.json()["headers"]}
        assert {"authorization", "cookie"} <= names


async def test_bad_urls(server: Server) -> None:
    async with PoolManager() as http:
        with pytest.raises(LocationValueError):
            await http.request("GET", "/relative")
        with pytest.raises(URLSchemeUnknown):
            await http.request("GET", "ftp://example.test/")
    with pytest.raises(ClosedPoolError):
        await http.request("GET", server.url)


async def test_one_shot_request(server: Server) -> None:
    response = await trio_pool.request(
        "GET", server.url + "/bytes/9", preload_content=False
    )
    assert response.data == pattern(9)


async def test_global_limit_under_contention_from_many_hosts(
    server: Server, other: Server
) -> None:
    async with (
        open_server() as third,
        PoolManager(max_connections=2, maxsize=3) as http,
    ):
        servers = [server, other, third]
        in_use_seen: list[int] = []
        order: list[int] = []

        async def fetch(i: int) -> None:
            url = f"{servers[i % 3].url}/fault/drip?n=3&delay=0.01"
            response = await http.request("GET", url, preload_content=False)
            in_use_seen.append(http.statistics().in_use)
            order.append(i)
            await response.read()

        async with trio.open_nursery() as nursery:
            for i in range(12):
                nursery.start_soon(fetch, i)
                await trio.testing.wait_all_tasks_blocked()
        assert len(order) == 12
        assert max(in_use_seen) <= 2
        stats = http.statistics()
        assert (stats.pools, stats.in_use, stats.waiting) == (3, 0, 0)


async def test_saturated_host_does_not_block_others(
    server: Server, other: Server
) -> None:
    async with PoolManager(max_connections=3, maxsize=1, block=True) as http:
        held = await http.request(
            "GET", server.url + "/bytes/10", preload_content=False
        )
        async with trio.open_nursery() as nursery:
            # Two more requests queue on the saturated host's own limiter...
            for _ in range(2):
                nursery.start_soon(http.request, "GET", server.url + "/bytes/10")
            await trio.testing.wait_all_tasks_blocked()
            # ...and hold no global token, so another host still gets through.
            with trio.fail_after(2):
                response = await http.request("GET", other.url + "/bytes/5")
            assert response.data == pattern(5)
            await held.read()
        assert http.statistics().in_use == 0


async def test_cancelled_while_waiting_for_a_global_token(
    server: Server, other: Server
) -> None:
    async with PoolManager(max_connections=1, maxsize=2) as http:
        held = await http.request(
            "GET", server.url + "/bytes/10", preload_content=False
        )
        with trio.move_on_after(0.1) as scope:
            await http.request("GET", other.url + "/bytes/10")
        assert scope.cancelled_caught
        waited = http.connection_from_url(other.url).statistics()
        assert (waited.tokens_free, waited.in_use, waited.created) == (2, 0, 0)
        await held.read()
        assert (await http.request("GET", other.url + "/bytes/3")).data == pattern(3)
