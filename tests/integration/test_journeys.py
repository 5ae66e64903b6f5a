"""End-to-end: what the README and docs promise a new user, over real I/O.

- the CLI fetches through a real proxy (squid) with a custom CA;
- pools are separated by their TLS options;
- a request cancelled at every checkpoint over HTTPS, and through the HTTP
  proxy, leaves the pool exact (the memory-stream version of this lives in
  tests/unit/test_cancel_points.py).
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import trio
import trio.testing

from tests.integration import proxies
from tests.integration.proxies import Socks, Squid, TargetCA
from tests.unit.test_cancel_points import cancel_at_each_step
from trio_pool import (
    HTTPConnectionPool,
    PoolManager,
    ProxyError,
    ProxyManager,
    SSLError,
)
from trio_pool._cli._args import parse
from trio_pool._cli._get import run_get
from trio_pool._cli._options import GetOptions
from trio_pool._connection import ConnState
from trio_pool.testing import Server, open_server, pattern

target_ca = proxies.target_ca
squid = proxies.squid
dante = proxies.dante


@pytest.fixture
async def tls_server(target_ca: TargetCA) -> AsyncIterator[Server]:
    async with open_server(ssl_context=target_ca.server_context()) as running:
        yield running


async def test_cli_get_through_proxy_with_custom_ca(
    squid: Squid, target_ca: TargetCA, tls_server: Server
) -> None:
    out, err = io.BytesIO(), io.StringIO()
    argv = ["get", "--proxy", squid.url, "--cacert", str(target_ca.pem)]
    options = parse([*argv, tls_server.url + "/headers?X-Via-Test=1"])
    assert isinstance(options, GetOptions)
    with trio.fail_after(15):
        assert await run_get(options, out, err) == 0, err.getvalue()
    assert out.getvalue() == b"ok"
    authority = f"{tls_server.host}:{tls_server.port}"
    line = await squid.wait_for(lambda entry: entry.url == authority)
    assert line.result.startswith("TCP_TUNNEL")


async def test_cli_get_through_socks(
    dante: Socks, tls_server: Server, target_ca: TargetCA
) -> None:
    out, err = io.BytesIO(), io.StringIO()
    url = f"https://localhost:{tls_server.port}/headers?X-Socks=1"
    argv = ["get", "--proxy", dante.url("socks5h"), "--cacert", str(target_ca.pem), url]
    options = parse(argv)
    assert isinstance(options, GetOptions)
    with trio.fail_after(15):
        assert await run_get(options, out, err) == 0, err.getvalue()
    assert out.getvalue() == b"ok"
    assert dante.connected_to(tls_server.port)


async def test_pools_are_separated_by_tls_options(
    target_ca: TargetCA, tls_server: Server
) -> None:
    trusted = {"ca_certs": str(target_ca.pem)}
    async with PoolManager() as http:
        a = http.connection_from_url(tls_server.url, pool_kwargs=trusted)
        b = http.connection_from_url(tls_server.url, pool_kwargs=trusted)
        c = http.connection_from_url(
            tls_server.url, pool_kwargs={**trusted, "assert_hostname": "localhost"}
        )
        d = http.connection_from_url(tls_server.url)
        assert a is b
        assert len({id(a), id(c), id(d)}) == 3
        response = await a.request("GET", "/bytes/7")
        assert response.data == pattern(7)


def assert_exact(pool: HTTPConnectionPool) -> None:
    stats = pool.statistics()
    assert stats.in_use == 0, stats
    assert stats.tokens_free == pool.maxsize, stats
    assert all(conn.state is ConnState.IDLE for conn in pool._idle)
    assert set(pool._idle) <= pool._conns
    assert not [c for c in pool._conns if c.state is ConnState.ACTIVE]


async def cancel_at_every_step(
    request: Callable[[], Awaitable[object]], pool: Callable[[], HTTPConnectionPool]
) -> int:
    """Cancel ``request`` at its k-th scheduling step for k = 1, 2, ...;
    returns how many steps the uncancelled request took."""
    await request()  # a warm connection, so reuse paths are covered too

    async def check() -> None:
        await trio.testing.wait_all_tasks_blocked()
        assert_exact(pool())
        await request()
        assert_exact(pool())

    return await cancel_at_each_step(request, check)


async def test_cancel_at_every_checkpoint_over_https(
    target_ca: TargetCA, tls_server: Server
) -> None:
    async with PoolManager(ca_certs=str(target_ca.pem), maxsize=2, block=True) as http:
        url = tls_server.url + "/bytes/5000"

        async def get() -> None:
            response = await http.request("GET", url)
            assert response.data == pattern(5000)

        with trio.fail_after(60):
            steps = await cancel_at_every_step(
                get, lambda: http.connection_from_url(url)
            )
        assert steps >= 2


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_cancel_at_every_checkpoint_through_the_proxy(
    squid: Squid, target_ca: TargetCA, scheme: str
) -> None:
    context = target_ca.server_context() if scheme == "https" else None
    async with (
        open_server(ssl_context=context) as target,
        ProxyManager(
            squid.url, ca_certs=str(target_ca.pem), maxsize=2, block=True
        ) as http,
    ):
        url = target.url + "/bytes/3000"

        async def get() -> None:
            response = await http.request("GET", url)
            assert response.data == pattern(3000)

        with trio.fail_after(90):
            steps = await cancel_at_every_step(
                get, lambda: http.connection_from_url(url)
            )
        assert steps >= 2


async def test_bad_target_certificate_through_a_tunnel_is_an_ssl_error(
    squid: Squid, tls_server: Server
) -> None:
    """The proxy did its part; the *target's* certificate is untrusted (no
    custom CA given): that is an SSLError, not a ProxyError."""
    async with ProxyManager(squid.url) as http:
        with trio.fail_after(15), pytest.raises(SSLError) as info:
            await http.request("GET", tls_server.url + "/echo", retries=False)
    assert not isinstance(info.value, ProxyError)
