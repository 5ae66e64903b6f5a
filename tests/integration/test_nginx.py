"""Interop with a real nginx on loopback: keep-alive over TLS and plain HTTP.

nginx is a different TLS stack in practice (its own session tickets, its
own close behaviour) from the bundled trio server, so these tests check that
reuse, large bodies and the idle watch hold up against it. One nginx serves
the whole module; each test uses its own pool.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import trio

from tests.integration.conftest import assert_pool_exact
from tests.integration.nginx import BIG_SIZE, NginxHandle, start_nginx
from trio_pool import HTTPConnectionPool, HTTPSConnectionPool
from trio_pool.testing import pattern

pytestmark = pytest.mark.nginx


@pytest.fixture(autouse=True)
def _deadline(nursery: trio.Nursery) -> None:
    """Fail, rather than hang, a test that runs for more than 10 seconds."""

    async def watchdog() -> None:
        await trio.sleep(10)
        raise TimeoutError("test still running after 10 s")

    nursery.start_soon(watchdog)


@pytest.fixture(scope="module")
def nginx(ca: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxHandle]:
    directory = tmp_path_factory.mktemp("nginx")
    with start_nginx(directory, tls_cert=ca.issue_cert("localhost")) as handle:
        yield handle


def https_pool(nginx: NginxHandle, ca_file: str) -> HTTPSConnectionPool:
    assert nginx.https_port is not None
    return HTTPSConnectionPool("localhost", nginx.https_port, ca_certs=ca_file)


async def hello(pool: HTTPConnectionPool) -> str:
    response = await pool.request("GET", "/")
    assert (response.status, response.data) == (200, b"hello")
    return response.headers["X-Connection"]


async def test_keepalive_reuse_over_tls(nginx: NginxHandle, ca_file: str) -> None:
    async with https_pool(nginx, ca_file) as pool:
        connections = {await hello(pool) for _ in range(10)}
        stats = assert_pool_exact(pool)
    assert len(connections) == 1
    assert (stats.created, stats.reused, stats.dropped) == (1, 9, 0)


async def test_large_body_over_tls(nginx: NginxHandle, ca_file: str) -> None:
    async with https_pool(nginx, ca_file) as pool:
        response = await pool.request("GET", "/big")
        assert response.status == 200
        assert int(response.headers["Content-Length"]) == BIG_SIZE
        assert response.data == pattern(BIG_SIZE)
        await hello(pool)
        assert pool.statistics().created == 1


async def test_idle_close_by_nginx_is_noticed(nginx: NginxHandle, ca_file: str) -> None:
    async with https_pool(nginx, ca_file) as pool:
        first = await hello(pool)
        # TLS 1.3 session tickets have arrived by now; the idle watch must
        # not take them for stray data.
        await trio.sleep(0.3)
        assert pool.statistics().dropped == 0
        # nginx's keepalive_timeout is 1 s: the idle watch sees the close.
        with trio.fail_after(5):
            while pool.statistics().dropped == 0:
                await trio.sleep(0.05)
        stats = assert_pool_exact(pool)
        assert (stats.idle, stats.dropped) == (0, 1)
        assert await hello(pool) != first
        assert pool.statistics().created == 2


async def test_keepalive_reuse_plain_http(nginx: NginxHandle) -> None:
    async with HTTPConnectionPool("127.0.0.1", nginx.http_port) as pool:
        connections = {await hello(pool) for _ in range(10)}
        stats = assert_pool_exact(pool)
    assert len(connections) == 1
    assert (stats.created, stats.reused) == (1, 9)
