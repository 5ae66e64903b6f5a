"""proxy_from_environment against real proxies on loopback.

Squid (HTTP proxy) and dante (SOCKS) from ``proxies.py``; the targets are the
bundled test server. Every test sets the variables with ``monkeypatch``
before it makes the manager (the manager reads them once), and checks what
the far side saw: squid's access log, dante's log, and the ``Via`` header
squid adds to what it forwards.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from urllib.parse import quote

import pytest
import trio

from tests.integration import proxies
from tests.integration.daemons import LOOPBACK, free_port
from tests.integration.proxies import LogLine, Socks, Squid, TargetCA
from trio_pool import (
    MaxRetryError,
    PoolManager,
    ProxyError,
    ProxyManager,
    proxy_from_environment,
)
from trio_pool.testing import Server, open_server, pattern

# The session fixtures of proxies.py, for the tests below to request by name.
target_ca = proxies.target_ca
squid = proxies.squid
dante = proxies.dante

#: Every test runs under this deadline (seconds).
DEADLINE = 15


@pytest.fixture(autouse=True)
def environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """``os.environ`` without proxy variables, for each test to set its own."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name == "REQUEST_METHOD":
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture
async def tls_server(target_ca: TargetCA) -> AsyncIterator[Server]:
    async with open_server(ssl_context=target_ca.server_context()) as running:
        yield running


def via_squid(server: Server) -> list[bool]:
    """For each request the server saw, whether it came through squid."""
    return ["trio-pool-squid" in (r.header("Via") or "") for r in server.requests]


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait for a log written by another process; bounded by the caller."""
    while not condition():
        await trio.sleep(0.05)


async def squid_log_so_far(squid: Squid, server: Server) -> list[LogLine]:
    """Squid's log once everything before this call is in it.

    Squid logs each transaction as it ends, in order: a marker request sent
    through it now and found in its log means earlier forwarded requests
    would be there too.
    """
    marker = f"{server.url}/echo?marker={free_port()}"
    async with ProxyManager(squid.url) as http:
        assert (await http.request("GET", marker)).status == 200
    await squid.wait_for(lambda line: line.url == marker)
    return squid.log()


# -- HTTP_PROXY and NO_PROXY ------------------------------------------------------


async def test_http_proxy_is_used_for_http(
    squid: Squid, server: Server, environ: pytest.MonkeyPatch
) -> None:
    environ.setenv("HTTP_PROXY", squid.url)
    url = f"{server.url}/echo?env=http_proxy"
    with trio.fail_after(DEADLINE):
        async with proxy_from_environment(maxsize=2) as http:
            for _ in range(2):
                assert (await http.request("GET", url)).status == 200
            stats = http.statistics()
            assert (stats.pools, stats.created, stats.reused) == (1, 1, 1), stats
        line = await squid.wait_for(lambda line: line.url == url)
    assert (line.method, line.result, line.local_port) == (
        "GET",
        "TCP_MISS/200",
        squid.port,
    )
    assert via_squid(server) == [True, True]


@pytest.mark.parametrize(
    ("no_proxy", "host"),
    [
        ("localhost", "localhost"),  # a host
        ("other.test, .localhost", "localhost"),  # a domain, in a list
        (f"{LOOPBACK}:{{port}}", LOOPBACK),  # host:port
        ("127.0.0.0/8", LOOPBACK),  # CIDR
        ("*", LOOPBACK),
    ],
)
async def test_no_proxy_goes_direct(
    squid: Squid,
    server: Server,
    environ: pytest.MonkeyPatch,
    no_proxy: str,
    host: str,
) -> None:
    environ.setenv("http_proxy", squid.url)
    environ.setenv("NO_PROXY", no_proxy.format(port=server.port))
    url = f"http://{host}:{server.port}/echo?bypass={quote(no_proxy)}"
    with trio.fail_after(DEADLINE):
        async with proxy_from_environment() as http:
            assert http.proxy_for(url) is None
            assert (await http.request("GET", url)).status == 200
        log = await squid_log_so_far(squid, server)
    assert not [line for line in log if "bypass=" in line.url], log
    # The first request came direct, the marker through squid.
    assert via_squid(server) == [False, True]


async def test_no_proxy_port_pattern_only_matches_that_port(
    squid: Squid, server: Server, environ: pytest.MonkeyPatch
) -> None:
    environ.setenv("HTTP_PROXY", squid.url)
    environ.setenv("NO_PROXY", f"{LOOPBACK}:{free_port()}")
    url = f"{server.url}/echo?port-pattern"
    with trio.fail_after(DEADLINE):
        async with proxy_from_environment() as http:
            assert (await http.request("GET", url)).status == 200
        await squid.wait_for(lambda line: line.url == url)
    assert via_squid(server) == [True]


# -- HTTPS_PROXY -------------------------------------------------------------------


async def test_https_proxy_tunnels_https_and_leaves_http_alone(
    squid: Squid,
    server: Server,
    tls_server: Server,
    target_ca: TargetCA,
    environ: pytest.MonkeyPatch,
) -> None:
    environ.setenv("HTTPS_PROXY", squid.url)
    tls_url = f"{tls_server.url}/bytes/3000"
    with trio.fail_after(DEADLINE):
        async with proxy_from_environment(ca_certs=str(target_ca.pem)) as http:
            for _ in range(2):
                assert (await http.request("GET", tls_url)).data == pattern(3000)
            # Only HTTPS_PROXY is set: an http:// target goes direct.
            assert (await http.request("GET", f"{server.url}/echo")).status == 200
            assert http.statistics().pools == 2
        # Squid logs a tunnel when it closes, after the manager's exit.
        authority = f"{tls_server.host}:{tls_server.port}"
        line = await squid.wait_for(lambda line: line.url == authority)
    assert (line.method, line.result) == ("CONNECT", "TCP_TUNNEL/200")
    assert tls_server.connections_opened == 1
    assert via_squid(server) == [False]


async def test_https_proxy_with_tls_to_the_proxy(
    squid: Squid, tls_server: Server, target_ca: TargetCA, environ: pytest.MonkeyPatch
) -> None:
    environ.setenv("https_proxy", squid.https_url)
    url = f"{tls_server.url}/echo?tls-proxy"
    with trio.fail_after(DEADLINE):
        async with proxy_from_environment(
            ca_certs=str(target_ca.pem), proxy_ssl_context=squid.context()
        ) as http:
            assert (await http.request("GET", url)).status == 200
        authority = f"{tls_server.host}:{tls_server.port}"
        line = await squid.wait_for(
            lambda line: line.url == authority and line.local_port == squid.tls_port
        )
    assert line.result == "TCP_TUNNEL/200"


# -- ALL_PROXY through SOCKS ---------------------------------------------------------


async def test_all_proxy_socks5h(
    dante: Socks,
    server: Server,
    tls_server: Server,
    target_ca: TargetCA,
    environ: pytest.MonkeyPatch,
) -> None:
    environ.setenv("ALL_PROXY", dante.url("socks5h"))
    with trio.fail_after(DEADLINE):
        async with proxy_from_environment(ca_certs=str(target_ca.pem)) as http:
            plain = await http.request("GET", f"http://localhost:{server.port}/echo")
            secure = await http.request(
                "GET", f"https://localhost:{tls_server.port}/bytes/100"
            )
        await eventually(lambda: dante.connected_to(server.port))
        await eventually(lambda: dante.connected_to(tls_server.port))
    assert (plain.status, secure.data) == (200, pattern(100))
    assert server.requests[-1].header("Host") == f"localhost:{server.port}"


async def test_scheme_proxy_wins_over_all_proxy(
    squid: Squid, dante: Socks, server: Server, environ: pytest.MonkeyPatch
) -> None:
    environ.setenv("all_proxy", dante.url("socks5"))
    environ.setenv("http_proxy", squid.url)
    url = f"{server.url}/echo?scheme-wins"
    with trio.fail_after(DEADLINE):
        async with proxy_from_environment() as http:
            assert (await http.request("GET", url)).status == 200
        await squid.wait_for(lambda line: line.url == url)
    assert via_squid(server) == [True]
    assert not dante.connected_to(server.port)


# -- redirects are routed hop by hop -------------------------------------------------


@pytest.mark.parametrize("direction", ["proxied-to-direct", "direct-to-proxied"])
async def test_redirect_is_routed_again(
    squid: Squid, server: Server, environ: pytest.MonkeyPatch, direction: str
) -> None:
    proxied = f"http://{LOOPBACK}:{server.port}"
    direct = f"http://localhost:{server.port}"
    first, second = (
        (proxied, direct)
        if direction == "proxied-to-direct"
        else (
            direct,
            proxied,
        )
    )
    environ.setenv("HTTP_PROXY", squid.url)
    environ.setenv("NO_PROXY", "localhost")
    target = f"{second}/echo?hop=2&{direction}"
    url = f"{first}/redirect/302?to={quote(target, safe='')}"
    with trio.fail_after(DEADLINE):
        async with proxy_from_environment() as http:
            response = await http.request("GET", url)
        log = await squid_log_so_far(squid, server)
    assert response.status == 200
    assert response.json()["target"] == f"/echo?hop=2&{direction}"
    logged = [line.url for line in log if direction in line.url]
    assert logged == [url if first == proxied else target]
    # Redirect, then the hop, then the marker (through squid).
    expected = [first == proxied, second == proxied, True]
    assert via_squid(server) == expected


# -- the environment is opt-in ---------------------------------------------------------


async def test_plain_pool_manager_ignores_proxy_variables(
    server: Server, environ: pytest.MonkeyPatch
) -> None:
    refused = f"http://{LOOPBACK}:1"
    for name in ("HTTP_PROXY", "https_proxy", "ALL_PROXY"):
        environ.setenv(name, refused)
    url = f"{server.url}/echo"
    with trio.fail_after(DEADLINE):
        async with PoolManager() as http:
            assert (await http.request("GET", url, retries=False)).status == 200
        # The same environment, read on purpose, sends it to the dead proxy.
        async with proxy_from_environment(retries=False) as http:
            with pytest.raises((ProxyError, MaxRetryError)):
                await http.request("GET", url)
    assert len(server.requests) == 1


async def test_max_connections_is_shared_by_every_route(
    squid: Squid, server: Server, environ: pytest.MonkeyPatch
) -> None:
    environ.setenv("HTTP_PROXY", squid.url)
    environ.setenv("NO_PROXY", "localhost")
    direct = f"http://localhost:{server.port}/bytes/10"
    proxied = f"{server.url}/echo?shared-limit"
    with trio.fail_after(DEADLINE):
        async with proxy_from_environment(max_connections=1) as http:
            held = await http.request("GET", direct, preload_content=False)
            with trio.move_on_after(0.5) as waited:
                await http.request("GET", proxied)
            assert waited.cancelled_caught  # the one connection is in use
            assert await held.read() == pattern(10)
            await held.release_conn()
            assert (await http.request("GET", proxied)).status == 200
    assert via_squid(server) == [False, True]
