"""Regression tests for behaviour that differed from urllib3 (and for the
protocol seam's fixes), each against a real server on loopback."""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trustme

import trio_pool
from tests.integration import proxies
from tests.integration.proxies import Squid, TargetCA
from trio_pool import (
    SKIP_HEADER,
    HTTPConnectionPool,
    HTTPSConnectionPool,
    LocationParseError,
    MaxRetryError,
    PoolManager,
    ProtocolError,
    ProxyManager,
    SSLError,
    TraceEvent,
)
from trio_pool._connection import Connection
from trio_pool._poolmanager import PoolKey
from trio_pool.testing import Server, open_server, pattern

from .conftest import assert_pool_exact

# The session fixtures of proxies.py, requested by name below.
target_ca = proxies.target_ca
squid = proxies.squid

Handler = Any


def wire_headers(server: Server, index: int = -1) -> list[tuple[str, str]]:
    return list(server.requests[index].headers)


def names(server: Server, index: int = -1) -> list[str]:
    return [name for name, _ in wire_headers(server, index)]


def to_server(server: Server) -> Any:
    """A ``dial`` that reaches the test server whatever the pool's host."""

    async def dial(host: str, port: int) -> trio.abc.Stream:
        return await trio.open_tcp_stream(server.host, server.port)

    return dial


# -- one normal form for hosts (issue 11) ----------------------------------------


async def test_international_host_is_idna_2008_everywhere(server: Server) -> None:
    async with HTTPConnectionPool("Straße.de", dial=to_server(server)) as pool:
        assert pool.host == "xn--strae-oqa.de"
        assert pool.is_same_host("http://straße.de/x")
        assert pool.is_same_host("http://XN--STRAE-OQA.DE:80/x")
        assert not pool.is_same_host("http://strasse.de/x")  # another domain
        await pool.request("GET", "/echo")
    assert server.requests[-1].header("Host") == "xn--strae-oqa.de"
    key = PoolKey.make("http", "Straße.de", None, {})
    assert key == PoolKey.make("http", "xn--strae-oqa.de", 80, {})


@pytest.mark.parametrize(
    "host", ["a" * 64 + ".example", "bad host", "x\r\ny", "☃.-x", "::zz"]
)
def test_invalid_hosts_are_location_parse_errors(host: str) -> None:
    with pytest.raises(LocationParseError):
        HTTPConnectionPool(host)
    with pytest.raises(LocationParseError):
        PoolKey.make("http", host, None, {})


async def test_a_manager_request_parses_its_url_once(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trio_pool import _origin, _pool, _poolmanager, _url

    calls = []
    real = _url.parse_url

    def counting(url: str) -> Any:
        calls.append(url)
        return real(url)

    for module in (_pool, _poolmanager, _origin):
        monkeypatch.setattr(module, "parse_url", counting)
    async with PoolManager() as http:
        await http.request("GET", f"{server.url}/echo?x=1")
    assert calls == [f"{server.url}/echo?x=1"]


# -- trace hooks cannot corrupt a pool (issue 11) -----------------------------------

EVENTS = ["checkout", "connect", "reuse", "request", "response", "release", "close"]


@pytest.mark.parametrize("failing", EVENTS)
async def test_a_raising_trace_hook_never_corrupts_the_pool(
    server: Server, failing: str, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    def hook(event: TraceEvent) -> None:
        seen.append(event.name)
        if event.name == failing:
            raise RuntimeError(f"hook fails on {failing}")

    with trio.fail_after(10):
        async with HTTPConnectionPool(
            server.host, server.port, maxsize=1, block=True, trace=hook
        ) as pool:
            for _ in range(2):  # connect, then reuse
                response = await pool.request("GET", "/echo")
                assert response.status == 200
            stalled = await pool.request(
                "GET", "/bytes/10", preload_content=False, pool_timeout=5
            )
            await stalled.release_conn()  # closes the connection: "close"
            await trio.testing.wait_all_tasks_blocked()
            assert_pool_exact(pool)
            assert pool.statistics().tokens_free == 1
            response = await pool.request("GET", "/echo", pool_timeout=5)
            assert response.status == 200
    assert failing in seen
    assert any(
        record.name == "trio_pool.trace" and failing in record.getMessage()
        for record in caplog.records
    )


# -- logging (issue 15) ------------------------------------------------------------


async def test_logging_follows_urllib3_levels_and_hides_credentials(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="trio_pool")
    async with HTTPConnectionPool(server.host, server.port) as pool:
        await pool.request(
            "GET",
            "/status/503",
            headers={"Authorization": "Bearer s3cret"},
            retries=trio_pool.Retry(1, status_forcelist=[503], raise_on_status=False),
        )
    messages = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert any(
        name == "trio_pool.pool" and level == logging.DEBUG and "Starting new" in text
        for name, level, text in messages
    )
    assert any('"GET /status/503 HTTP/1.1" 503' in text for _, _, text in messages)
    assert any(
        name == "trio_pool.retry" and level == logging.WARNING
        for name, level, _ in messages
    )
    assert not any("s3cret" in text for _, _, text in messages)
    assert isinstance(logging.getLogger("trio_pool").handlers[0], logging.NullHandler)


# -- streaming (issue 12, item 1) ----------------------------------------------------


async def test_a_chunked_body_streams_as_it_arrives(server: Server) -> None:
    async with HTTPConnectionPool(server.host, server.port) as pool:
        response = await pool.request(
            "GET", "/fault/drip?n=4&delay=0.3&chunked=1", preload_content=False
        )
        assert response.headers.get("Transfer-Encoding") == "chunked"
        start = trio.current_time()
        arrivals = []
        async for piece in response.stream(1024):
            arrivals.append((trio.current_time() - start, piece))
    assert b"".join(piece for _, piece in arrivals) == pattern(4)
    # Each byte is handed over when it comes, not held back to fill 1024.
    assert len(arrivals) == 4
    assert arrivals[0][0] < 0.6 < arrivals[-1][0]


# -- unknown keyword arguments (issue 12, item 3) -------------------------------------


async def test_unknown_keyword_arguments_are_type_errors(server: Server) -> None:
    url = f"{server.url}/echo"
    async with PoolManager() as http:
        for call in (http.request, http.urlopen):
            wrongs: list[dict[str, Any]] = [
                {"timout": 1},
                {"params": {}},
                {"follow_redirects": True},
            ]
            for wrong in wrongs:
                with pytest.raises(TypeError):
                    await call("GET", url, **wrong)
    with pytest.raises(TypeError):
        await trio_pool.request("GET", url, data=b"x")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="timout"):
        PoolManager(timout=3)
    with pytest.raises(TypeError):
        HTTPConnectionPool("localhost", timout=3)  # type: ignore[call-arg]
    assert server.request_count == 0


# -- a tunnel through an IPv6-literal proxy URL (issue 12, item 4) ---------------


@asynccontextmanager
async def connect_proxy_on_ipv6() -> AsyncIterator[tuple[int, list[bytes]]]:
    """A minimal CONNECT proxy on [::1] (a peer for the client under test)."""
    asked: list[bytes] = []

    async def handle(client: trio.SocketStream) -> None:
        async with client:
            head = b""
            while b"\r\n\r\n" not in head:
                head += await client.receive_some(4096)
            asked.append(head.split(b"\r\n")[0])
            target = head.split()[1].decode()
            host, _, port = target.rpartition(":")
            upstream = await trio.open_tcp_stream(host.strip("[]"), int(port))
            await client.send_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            async with upstream, trio.open_nursery() as nursery:
                nursery.start_soon(pump, client, upstream)
                await pump(upstream, client)
                nursery.cancel_scope.cancel()

    listeners = await trio.open_tcp_listeners(0, host="::1")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, handle, listeners)
        yield listeners[0].socket.getsockname()[1], asked
        nursery.cancel_scope.cancel()


async def pump(source: trio.abc.ReceiveStream, sink: trio.abc.SendStream) -> None:
    async for data in source:
        await sink.send_all(data)


async def test_tunnel_through_an_ipv6_literal_proxy(
    tls_server: Server, ca_file: str
) -> None:
    with trio.fail_after(10):
        async with (
            connect_proxy_on_ipv6() as (port, asked),
            ProxyManager(f"http://[::1]:{port}", ca_certs=ca_file) as http,
        ):
            response = await http.request("GET", f"{tls_server.url}/echo")
            assert response.status == 200
    assert asked == [f"CONNECT 127.0.0.1:{tls_server.port} HTTP/1.1".encode()]


# -- request heads as urllib3 writes them (issue 12, items 6-13) -----------------


async def test_default_headers_come_first_in_urllib3s_order(
    pool: HTTPConnectionPool, server: Server
) -> None:
    await pool.request("GET", "/echo", headers={"X-Mine": "1", "Accept": "a/b"})
    assert names(server) == [
        "Host",
        "Accept-Encoding",
        "User-Agent",
        "X-Mine",
        "Accept",
    ]
    await pool.request("POST", "/echo", body=b"abc", headers={"X-Mine": "1"})
    assert names(server) == [
        "Host",
        "Accept-Encoding",
        "Content-Length",
        "User-Agent",
        "X-Mine",
    ]


async def test_bytes_header_names_and_values(
    pool: HTTPConnectionPool, server: Server
) -> None:
    await pool.request("GET", "/echo", headers={b"X-Bytes": b"v\xe9", "X-Str": b"s"})
    assert ("X-Bytes", "v\xe9") in wire_headers(server)
    assert ("X-Str", "s") in wire_headers(server)


async def test_skip_header_suppresses_a_default(
    pool: HTTPConnectionPool, server: Server
) -> None:
    await pool.request(
        "GET",
        "/echo",
        headers={"User-Agent": SKIP_HEADER, "Accept-Encoding": SKIP_HEADER},
    )
    assert names(server) == ["Host"]
    with pytest.raises(ValueError, match="SKIP_HEADER"):
        await pool.request("GET", "/echo", headers={"X-Other": SKIP_HEADER})
    # HTTP/1.1 requires a Host header, and h11 refuses a request without one:
    # a deliberate difference (docs/from-urllib3.md).
    with pytest.raises(ValueError, match="Host"):
        await pool.request("GET", "/echo", headers={"Host": SKIP_HEADER})
    assert server.request_count == 1


async def test_a_pool_sends_the_path_as_given(
    pool: HTTPConnectionPool, server: Server
) -> None:
    await pool.request("GET", "/a/./b/../echo?x=1 2#fragment")
    assert server.requests[-1].target == "/a/./b/../echo?x=1%202"


async def test_socket_options_are_applied(server: Server) -> None:
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    async with HTTPConnectionPool(
        server.host, server.port, socket_options=options
    ) as pool:
        await pool.request("GET", "/echo")
        (conn,) = pool._idle
        assert isinstance(conn, Connection)
        stream = conn.http.stream
        assert isinstance(stream, trio.SocketStream)
        assert stream.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1


async def test_the_callers_content_type_wins_over_fields(
    pool: HTTPConnectionPool, server: Server
) -> None:
    await pool.request(
        "POST",
        "/echo",
        fields={"a": "1"},
        encode_multipart=False,
        headers={"Content-Type": "application/x-custom"},
    )
    assert server.requests[-1].header("Content-Type") == "application/x-custom"
    assert server.requests[-1].body == b"a=1"
    await pool.request("POST", "/echo", fields={"a": "1"}, encode_multipart=False)
    expected = "application/x-www-form-urlencoded"
    assert server.requests[-1].header("Content-Type") == expected


async def test_chunked_without_a_body_sends_an_empty_chunked_body(
    pool: HTTPConnectionPool, server: Server
) -> None:
    with trio.fail_after(5):
        response = await pool.urlopen("POST", "/echo", chunked=True)
    assert response.status == 200
    assert server.requests[-1].header("Transfer-Encoding") == "chunked"
    assert server.requests[-1].body == b""


async def test_forwarded_requests_carry_accept_and_host(server: Server) -> None:
    # The test server takes absolute-form targets, so it can stand in for
    # the proxy and show what a forwarding proxy receives.
    async with ProxyManager(server.url) as http:
        await http.request("GET", "http://api.example:8080/echo", headers={"X-A": "1"})
    request = server.requests[-1]
    assert request.target == "http://api.example:8080/echo"
    # h11 writes Host first wherever it is given (RFC 9110's advice), so
    # unlike urllib3 it does not sit after Accept: docs/from-urllib3.md.
    assert names(server) == ["Host", "Accept-Encoding", "User-Agent", "Accept", "X-A"]
    assert request.header("Host") == "api.example:8080"
    assert request.header("Accept") == "*/*"


# -- responses (issue 12, items 14-15) ------------------------------------------------


@asynccontextmanager
async def raw_server(reply: bytes) -> AsyncIterator[int]:
    async def handle(client: trio.SocketStream) -> None:
        async with client:
            await client.receive_some(65536)
            await client.send_all(reply)

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, handle, listeners)
        yield listeners[0].socket.getsockname()[1]
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("version", [b"0.5", b"2.0", b"1.2"])
async def test_other_http_versions_are_protocol_errors(version: bytes) -> None:
    reply = b"HTTP/" + version + b" 200 OK\r\nContent-Length: 2\r\n\r\nok"
    with trio.fail_after(5):
        async with (
            raw_server(reply) as port,
            HTTPConnectionPool("127.0.0.1", port) as pool,
        ):
            with pytest.raises(ProtocolError, match="version"):
                await pool.request("GET", "/", retries=False)
            assert_pool_exact(pool)


async def test_enforce_content_length_false_returns_a_short_body() -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"
    with trio.fail_after(5):
        async with raw_server(reply) as port:
            async with HTTPConnectionPool(
                "127.0.0.1", port, enforce_content_length=False
            ) as pool:
                response = await pool.request("GET", "/", retries=False)
                assert response.data == b"abc"
                assert_pool_exact(pool)
                assert pool.statistics().idle == 0  # never reused
            async with HTTPConnectionPool("127.0.0.1", port) as pool:
                with pytest.raises(trio_pool.IncompleteRead):
                    await pool.request("GET", "/", retries=False)


# -- TLS (issue 12, items 2, 5, 15) --------------------------------------------------


@pytest.fixture
async def tls_server(ca: trustme.CA) -> AsyncIterator[Server]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    async with open_server(ssl_context=context) as running:
        yield running


async def test_tls_options_set_after_creation_apply_to_new_connections(
    tls_server: Server, ca_file: str
) -> None:
    async with HTTPSConnectionPool(
        "localhost", tls_server.port, ca_certs=ca_file
    ) as pool:
        assert (await pool.request("GET", "/echo")).status == 200
        pool.assert_fingerprint = "AA:" * 31 + "AA"  # a wrong SHA-256 pin
        await pool.request("GET", "/fault/close-after-response")
        with pytest.raises(MaxRetryError) as caught:
            await pool.request("GET", "/echo", retries=0)
        assert isinstance(caught.value.reason, SSLError)
        assert "ingerprint" in str(caught.value.reason)
        pool.assert_fingerprint = None
        pool.ca_certs = None  # back to certifi, which does not know our CA
        with pytest.raises(MaxRetryError):
            await pool.request("GET", "/echo", retries=0)
        pool.ca_certs = ca_file
        assert (await pool.request("GET", "/echo")).status == 200
        assert_pool_exact(pool)


async def test_ssl_version_is_accepted_with_a_warning(
    tls_server: Server, ca_file: str
) -> None:
    with pytest.warns(FutureWarning, match="ssl_version"):
        pool = HTTPSConnectionPool(
            "localhost",
            tls_server.port,
            ca_certs=ca_file,
            ssl_version=ssl.PROTOCOL_TLSv1_2,
        )
    async with pool:
        response = await pool.request("GET", "/echo")
        assert response.status == 200
        (conn,) = pool._idle
        assert isinstance(conn, Connection)
        stream = conn.http.stream
        assert isinstance(stream, trio.SSLStream)
        assert stream.version() == "TLSv1.2"


async def test_an_https_proxy_is_verified_with_the_ca_options(
    squid: Squid, target_ca: TargetCA
) -> None:
    # No proxy_ssl_context: the CA options verify the proxy too, as urllib3.
    bundle = squid.ca.cert_pem.bytes().decode() + target_ca.pem.read_text()
    async with open_server(ssl_context=target_ca.server_context()) as target:
        with trio.fail_after(15):
            async with ProxyManager(squid.https_url, ca_cert_data=bundle) as http:
                for url in (f"{target.url}/echo", f"http://{target.host}:1/"):
                    response = await http.request("GET", url, retries=False)
                    assert response.status in (200, 503)  # 503: squid's own


async def test_chunked_trailers_are_kept() -> None:
    reply = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\nX-Checksum: 42\r\n\r\n"
    )
    with trio.fail_after(5):
        async with (
            raw_server(reply) as port,
            HTTPConnectionPool("127.0.0.1", port) as pool,
        ):
            response = await pool.request("GET", "/", retries=False)
            assert response.data == b"abc"
            assert response.trailers is not None
            assert response.trailers["x-checksum"] == "42"
