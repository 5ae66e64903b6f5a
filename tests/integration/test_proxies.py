"""ProxyManager and SOCKSProxyManager against real proxies on loopback.

The proxies are squid (http, auth, https), dante (SOCKS4/5) and microsocks
(SOCKS5 with a password); see ``proxies.py``. Each test checks what the far
side saw — the target server's recorded requests, squid's access log, the
SOCKS servers' logs — not just the status code.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import pytest
import trio

from tests.integration import proxies
from tests.integration.daemons import LOOPBACK, free_port
from tests.integration.proxies import (
    NOTE_HEADER,
    PROXY_PASSWORD,
    PROXY_USER,
    SOCKS_PASSWORD,
    SOCKS_USER,
    LogLine,
    Socks,
    Squid,
    TargetCA,
)
from trio_pool import (
    HTTPConnectionPool,
    MaxRetryError,
    NewConnectionError,
    PoolManager,
    ProxyError,
    ProxyManager,
    ProxySchemeUnknown,
    ProxySchemeUnsupported,
    SOCKSProxyManager,
    SSLError,
    make_headers,
    proxy_from_url,
)
from trio_pool.testing import Server, open_server, pattern

# The session fixtures of proxies.py, for the tests below to request by name.
target_ca = proxies.target_ca
squid = proxies.squid
dante = proxies.dante
microsocks = proxies.microsocks

#: Every test runs under this deadline (seconds); the whole module takes far less.
DEADLINE = 15


# -- fixtures and helpers -----------------------------------------------------


@pytest.fixture(params=["http", "https"])
async def target(
    request: pytest.FixtureRequest, target_ca: TargetCA
) -> AsyncIterator[Server]:
    """The server behind the proxy, plain or TLS (trusted via ``target_ca``)."""
    context = target_ca.server_context() if request.param == "https" else None
    async with open_server(ssl_context=context) as running:
        yield running


@pytest.fixture
async def tls_server(target_ca: TargetCA) -> AsyncIterator[Server]:
    async with open_server(ssl_context=target_ca.server_context()) as running:
        yield running


def trust(target_ca: TargetCA) -> dict[str, Any]:
    """Pool options that make the *target's* certificate verifiable."""
    return {"ca_certs": str(target_ca.pem)}


def tunnelled(server: Server) -> bool:
    return server.url.startswith("https:")


def about(server: Server) -> Callable[[LogLine], bool]:
    """Matches squid's log lines for transactions with ``server``."""
    authority = f"{server.host}:{server.port}"
    return lambda line: line.url == authority or line.url.startswith(f"{server.url}/")


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait for a log written by another process; bounded by the caller."""
    while not condition():
        await trio.sleep(0.05)


def assert_idle(pool: HTTPConnectionPool) -> None:
    stats = pool.statistics()
    assert stats.in_use == 0, stats
    assert stats.tokens_free == pool.maxsize, stats


class RecordingResolver(trio.abc.HostnameResolver):
    """The system resolver, noting every name this process looks up."""

    def __init__(self) -> None:
        self.names: list[str] = []

    async def getaddrinfo(
        self,
        host: bytes | None,
        port: bytes | str | int | None,
        family: int = 0,
        type: int = 0,  # noqa: A002 - trio's signature
        proto: int = 0,
        flags: int = 0,
    ) -> Any:
        self.names.append((host or b"").decode("ascii"))
        return await trio.to_thread.run_sync(
            socket.getaddrinfo, host, port, family, type, proto, flags
        )

    async def getnameinfo(
        self, sockaddr: tuple[str, int] | tuple[str, int, int, int], flags: int
    ) -> tuple[str, str]:
        return await trio.to_thread.run_sync(socket.getnameinfo, sockaddr, flags)


@contextmanager
def recording_resolver() -> Iterator[RecordingResolver]:
    resolver = RecordingResolver()
    previous = trio.socket.set_custom_hostname_resolver(resolver)
    try:
        yield resolver
    finally:
        trio.socket.set_custom_hostname_resolver(previous)


# -- HTTP proxy: forwarding and tunnels ---------------------------------------


async def test_http_target_is_forwarded_in_absolute_form(
    squid: Squid, server: Server
) -> None:
    with trio.fail_after(DEADLINE):
        async with ProxyManager(squid.url) as http:
            first = await http.request(
                "GET", f"{server.url}/echo?n=1", headers={"X-Test": "kept"}
            )
            second = await http.request("POST", f"{server.url}/echo?n=2", body=b"hi")
            # Forwarded targets share the pool of connections to the proxy.
            pool = http.connection_from_url(server.url)
            assert (pool.host, pool.port) == (LOOPBACK, squid.port)
            assert pool.statistics().created == 1
            assert_idle(pool)
        line = await squid.wait_for(lambda line: line.url == f"{server.url}/echo?n=1")
    assert (first.status, second.status) == (200, 200)
    assert (line.method, line.result, line.local_port) == (
        "GET",
        "TCP_MISS/200",
        squid.port,
    )
    # The target sees an ordinary origin-form request that came through squid.
    seen, posted = server.requests[-2:]
    assert (seen.method, seen.target) == ("GET", "/echo?n=1")
    assert seen.header("Host") == f"{LOOPBACK}:{server.port}"
    assert seen.header("X-Test") == "kept"
    assert "trio-pool-squid" in (seen.header("Via") or "")
    assert (posted.method, posted.target, posted.body) == ("POST", "/echo?n=2", b"hi")


async def test_https_target_through_connect_tunnel_reuses_it(
    squid: Squid, tls_server: Server, target_ca: TargetCA
) -> None:
    url = f"{tls_server.url}/bytes/5000"
    with trio.fail_after(DEADLINE):
        async with ProxyManager(squid.url, **trust(target_ca)) as http:
            for _ in range(3):
                response = await http.request("GET", url)
                assert response.status == 200
                assert response.data == pattern(5000)
            pool = http.connection_from_url(url)
            assert (pool.scheme, pool.host, pool.port) == (
                "https",
                LOOPBACK,
                tls_server.port,
            )
            stats = pool.statistics()
            assert (stats.created, stats.reused) == (1, 2), stats
            assert_idle(pool)
        # Squid logs a tunnel when it closes, i.e. after the manager's exit.
        line = await squid.wait_for(about(tls_server))
    assert (line.method, line.result) == ("CONNECT", "TCP_TUNNEL/200")
    assert tls_server.connections_opened == 1
    assert [r.target for r in tls_server.requests] == ["/bytes/5000"] * 3
    # Squid only relayed bytes: it never saw (or marked) the request itself.
    assert all(r.header("Via") is None for r in tls_server.requests)


@pytest.mark.parametrize("how", ["url", "proxy_headers"])
async def test_proxy_auth_accepted_and_kept_from_target(
    squid: Squid, target: Server, target_ca: TargetCA, how: str
) -> None:
    if how == "url":
        proxy_url = f"http://{PROXY_USER}:{PROXY_PASSWORD}@{LOOPBACK}:{squid.auth_port}"
        manager = ProxyManager(proxy_url, **trust(target_ca))
    else:
        manager = proxy_from_url(
            squid.auth_url,
            proxy_headers=make_headers(
                proxy_basic_auth=f"{PROXY_USER}:{PROXY_PASSWORD}"
            ),
            **trust(target_ca),
        )
    with trio.fail_after(DEADLINE):
        async with manager as http:
            for _ in range(2):
                response = await http.request("GET", f"{target.url}/echo")
                assert response.status == 200
        line = await squid.wait_for(about(target))
    assert line.user == PROXY_USER
    assert line.local_port == squid.auth_port
    assert len(target.requests) == 2
    for seen in target.requests:
        names = {name.lower() for name, _ in seen.headers}
        assert "proxy-authorization" not in names
        assert seen.path == "/echo"


@pytest.mark.parametrize(
    "credentials", ["", f"{PROXY_USER}:wrong@"], ids=["none", "wrong"]
)
async def test_proxy_auth_refused_for_http_target_is_a_407_response(
    squid: Squid, server: Server, credentials: str
) -> None:
    with trio.fail_after(DEADLINE):
        async with ProxyManager(
            f"http://{credentials}{LOOPBACK}:{squid.auth_port}"
        ) as http:
            response = await http.request("GET", f"{server.url}/echo")
            assert_idle(http.connection_from_url(server.url))
    # As in urllib3: the proxy's answer to a forwarded request is the answer.
    assert response.status == 407
    assert response.headers["Proxy-Authenticate"].startswith("Basic")
    assert server.requests == []


@pytest.mark.parametrize(
    "credentials", ["", f"{PROXY_USER}:wrong@"], ids=["none", "wrong"]
)
async def test_proxy_auth_refused_for_https_target_is_a_proxy_error(
    squid: Squid, tls_server: Server, target_ca: TargetCA, credentials: str
) -> None:
    url = f"{tls_server.url}/echo"
    proxy_url = f"http://{credentials}{LOOPBACK}:{squid.auth_port}"
    with trio.fail_after(DEADLINE):
        async with ProxyManager(proxy_url, **trust(target_ca)) as http:
            with pytest.raises(MaxRetryError) as caught:
                await http.request("GET", url)
            assert isinstance(caught.value.reason, ProxyError)
            assert "407" in str(caught.value.reason)
            with pytest.raises(ProxyError, match="407"):
                await http.request("GET", url, retries=False)
            pool = http.connection_from_url(url)
            assert_idle(pool)
            assert pool.statistics().created == 0
        line = await squid.wait_for(about(tls_server))
    assert (line.method, line.result) == ("CONNECT", "TCP_DENIED/407")
    assert tls_server.connections_opened == 0


async def test_proxy_headers_go_to_the_proxy_only(
    squid: Squid, target: Server, target_ca: TargetCA
) -> None:
    headers = {NOTE_HEADER: "for-squid"}
    with trio.fail_after(DEADLINE):
        async with ProxyManager(
            squid.url, proxy_headers=headers, **trust(target_ca)
        ) as http:
            response = await http.request("GET", f"{target.url}/echo")
            assert response.status == 200
        line = await squid.wait_for(about(target))
    assert line.note == "for-squid"  # squid got the header...
    seen = target.requests[-1]
    if tunnelled(target):
        # ...on the CONNECT only; the request inside the tunnel is ours alone.
        assert seen.header(NOTE_HEADER) is None
    else:
        # A forwarded request carries it, and squid passes unknown headers on.
        assert seen.header(NOTE_HEADER) == "for-squid"


# -- HTTPS proxy (TLS to squid) -----------------------------------------------


async def test_https_proxy(squid: Squid, target: Server, target_ca: TargetCA) -> None:
    url = f"{target.url}/bytes/3000"
    with trio.fail_after(DEADLINE):
        async with ProxyManager(
            squid.https_url, proxy_ssl_context=squid.context(), **trust(target_ca)
        ) as http:
            for _ in range(2):
                response = await http.request("GET", url)
                assert response.data == pattern(3000)
            stats = http.connection_from_url(url).statistics()
            assert stats.created == 1, stats
        line = await squid.wait_for(about(target))
    assert line.local_port == squid.tls_port
    if tunnelled(target):  # TLS in TLS
        assert (line.method, line.result) == ("CONNECT", "TCP_TUNNEL/200")
        assert all(r.header("Via") is None for r in target.requests)
    else:
        assert (line.method, line.url) == ("GET", url)
        assert "trio-pool-squid" in (target.requests[-1].header("Via") or "")
    assert [r.target for r in target.requests] == ["/bytes/3000"] * 2


async def test_https_proxy_certificate_is_verified(
    squid: Squid, tls_server: Server, target_ca: TargetCA
) -> None:
    url = f"{tls_server.url}/echo"
    # This context trusts the target's CA, not the proxy's.
    wrong = ssl.create_default_context(cafile=str(target_ca.pem))
    with trio.fail_after(DEADLINE):
        async with ProxyManager(
            squid.https_url, proxy_ssl_context=wrong, **trust(target_ca)
        ) as http:
            with pytest.raises(MaxRetryError) as caught:
                await http.request("GET", url)
            reason = caught.value.reason
            assert isinstance(reason, ProxyError)
            assert isinstance(reason.original_error, SSLError)
            assert_idle(http.connection_from_url(url))
    assert tls_server.connections_opened == 0


async def test_https_proxy_forwarding_for_https(
    squid: Squid, tls_server: Server
) -> None:
    # By name: squid 5 checks a certificate's DNS names, not its IP addresses.
    url = f"https://localhost:{tls_server.port}/echo?forwarded=1"
    with trio.fail_after(DEADLINE):
        async with ProxyManager(
            squid.https_url,
            proxy_ssl_context=squid.context(),
            use_forwarding_for_https=True,
        ) as http:
            response = await http.request("GET", url, headers={"X-Test": "fwd"})
            assert response.status == 200
            pool = http.connection_from_url(url)
            assert (pool.host, pool.port) == (LOOPBACK, squid.tls_port)
        line = await squid.wait_for(lambda line: line.url == url)
    # Squid got the https URL itself and made the TLS connection to the target.
    assert (line.method, line.url, line.result) == ("GET", url, "TCP_MISS/200")
    seen = tls_server.requests[-1]
    assert (seen.target, seen.header("X-Test")) == ("/echo?forwarded=1", "fwd")
    assert "trio-pool-squid" in (seen.header("Via") or "")


def test_forwarding_https_needs_an_https_proxy() -> None:
    with pytest.raises(ProxySchemeUnsupported):
        ProxyManager(f"http://{LOOPBACK}:3128", use_forwarding_for_https=True)


# -- errors before any proxy speaks -------------------------------------------


@pytest.mark.parametrize(
    "proxy_url", ["ftp://127.0.0.1:21", "socks5://127.0.0.1:1080", "127.0.0.1:3128"]
)
def test_unknown_proxy_scheme(proxy_url: str) -> None:
    with pytest.raises(ProxySchemeUnknown):
        ProxyManager(proxy_url)
    with pytest.raises(ProxySchemeUnknown):
        proxy_from_url(proxy_url)


def test_unknown_socks_scheme() -> None:
    # urllib3 raises a ValueError here; ProxySchemeUnknown is one.
    with pytest.raises(ValueError, match="ftp"):
        SOCKSProxyManager(f"ftp://{LOOPBACK}:1080")


async def test_proxy_refusing_connections(target: Server, target_ca: TargetCA) -> None:
    url = f"{target.url}/echo"
    closed = free_port()
    with trio.fail_after(DEADLINE):
        async with ProxyManager(
            f"http://{LOOPBACK}:{closed}", **trust(target_ca)
        ) as http:
            with pytest.raises(MaxRetryError) as caught:
                await http.request("GET", url)
            reason = caught.value.reason
            assert isinstance(reason, ProxyError), reason
            assert isinstance(reason.original_error, NewConnectionError)
            with pytest.raises(ProxyError):
                await http.request("GET", url, retries=False)
            assert_idle(http.connection_from_url(url))
    assert target.connections_opened == 0


# -- SOCKS --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "username", "resolved_here"),
    [
        ("socks5", None, True),
        ("socks5h", None, False),
        ("socks4", None, True),
        ("socks4", "someone", True),
    ],
)
async def test_socks_plain_target(
    dante: Socks,
    server: Server,
    scheme: str,
    username: str | None,
    resolved_here: bool,
) -> None:
    url = f"http://localhost:{server.port}/echo?via={scheme}"
    with trio.fail_after(DEADLINE), recording_resolver() as resolver:
        async with SOCKSProxyManager(dante.url(scheme), username=username) as http:
            for _ in range(2):
                response = await http.request("GET", url)
                assert response.status == 200
            stats = http.connection_from_url(url).statistics()
            assert stats.created == 1, stats
        # Dante logs the connection it made for us to the target.
        await eventually(lambda: dante.connected_to(server.port))
    # socks5h (remote DNS) hands the proxy the name; socks4/5 resolve it here.
    assert ("localhost" in resolver.names) is resolved_here, resolver.names
    seen = server.requests[-1]
    assert (seen.target, seen.header("Host")) == (
        f"/echo?via={scheme}",
        f"localhost:{server.port}",
    )
    assert seen.header("Via") is None


async def test_https_target_through_socks5(
    dante: Socks, tls_server: Server, target_ca: TargetCA
) -> None:
    url = f"https://localhost:{tls_server.port}/bytes/4000"
    with trio.fail_after(DEADLINE):
        async with SOCKSProxyManager(dante.url("socks5h"), **trust(target_ca)) as http:
            for _ in range(3):
                assert (await http.request("GET", url)).data == pattern(4000)
            pool = http.connection_from_url(url)
            assert pool.statistics().created == 1
            assert_idle(pool)
        await eventually(lambda: dante.connected_to(tls_server.port))
    assert tls_server.connections_opened == 1
    assert [r.target for r in tls_server.requests] == ["/bytes/4000"] * 3


@pytest.mark.parametrize("how", ["arguments", "url"])
async def test_socks5_password_accepted(
    microsocks: Socks, server: Server, how: str
) -> None:
    if how == "url":
        auth = f"{SOCKS_USER}:{SOCKS_PASSWORD}@"
        manager = SOCKSProxyManager(microsocks.url("socks5h", auth))
    else:
        manager = SOCKSProxyManager(
            microsocks.url("socks5h"), username=SOCKS_USER, password=SOCKS_PASSWORD
        )
    with trio.fail_after(DEADLINE):
        async with manager as http:
            response = await http.request("GET", f"http://localhost:{server.port}/echo")
        await eventually(lambda: microsocks.connected_to(server.port))
    assert response.status == 200
    assert server.requests[-1].path == "/echo"


@pytest.mark.parametrize(
    ("username", "password"),
    [(SOCKS_USER, "wrong"), ("mallory", SOCKS_PASSWORD), (None, None)],
    ids=["wrong-password", "wrong-user", "none"],
)
async def test_socks5_password_refused(
    microsocks: Socks, server: Server, username: str | None, password: str | None
) -> None:
    url = f"http://{LOOPBACK}:{server.port}/echo"
    with trio.fail_after(DEADLINE):
        async with SOCKSProxyManager(
            microsocks.url("socks5"), username=username, password=password
        ) as http:
            with pytest.raises(MaxRetryError) as caught:
                await http.request("GET", url)
            assert isinstance(caught.value.reason, ProxyError), caught.value.reason
            with pytest.raises(ProxyError):
                await http.request("GET", url, retries=False)
            pool = http.connection_from_url(url)
            assert_idle(pool)
            assert pool.statistics().created == 0
    assert server.connections_opened == 0


# -- cancellation -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["connect", "socks5"])
async def test_cancel_while_tunnel_is_set_up(kind: str) -> None:
    """A proxy that accepts and never answers; the request is cancelled
    once the proxy has the tunnel request in hand."""
    received = bytearray()
    asked = trio.Event()
    hung_up = trio.Event()

    async def silent_proxy(stream: trio.SocketStream) -> None:
        try:
            while chunk := await stream.receive_some():
                received.extend(chunk)
                asked.set()
        except trio.BrokenResourceError:
            pass
        finally:
            hung_up.set()
            await stream.aclose()

    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                partial(trio.serve_tcp, silent_proxy, 0, host=LOOPBACK)
            )
            port = listeners[0].socket.getsockname()[1]
            manager: PoolManager
            if kind == "connect":
                url = f"https://{LOOPBACK}:9/never"
                manager = ProxyManager(f"http://{LOOPBACK}:{port}")
            else:
                url = f"http://{LOOPBACK}:9/never"
                manager = SOCKSProxyManager(f"socks5://{LOOPBACK}:{port}")
            async with manager as http:
                request_scope = trio.CancelScope()

                async def make_request() -> None:
                    with request_scope:
                        await http.request("GET", url)
                    assert request_scope.cancelled_caught

                async with trio.open_nursery() as requests:
                    requests.start_soon(make_request)
                    await asked.wait()
                    request_scope.cancel()
                pool = http.connection_from_url(url)
                assert_idle(pool)
                stats = pool.statistics()
                assert (stats.created, stats.idle) == (0, 0), stats
                assert not pool._conns
                # The half-made tunnel was closed, not left to the proxy.
                await hung_up.wait()
            nursery.cancel_scope.cancel()
    if kind == "connect":
        assert bytes(received).startswith(b"CONNECT 127.0.0.1:9 HTTP/1.1\r\n")
    else:
        assert bytes(received).startswith(b"\x05")
