"""HTTPConnectionPool against the bundled trio server on loopback."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import trio
import trio.testing

from tests.integration.conftest import assert_pool_exact
from trio_pool import (
    ClosedPoolError,
    HTTPConnectionPool,
    HTTPResponse,
    IncompleteRead,
    InvalidChunkLength,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    Timeout,
    connection_from_url,
)
from trio_pool._connection import WATCH_GRACE
from trio_pool.testing import Server, open_server, pattern


async def echo(
    pool: HTTPConnectionPool, method: str = "GET", **kw: Any
) -> dict[str, object]:
    response = await pool.request(method, "/echo", **kw)
    assert response.status == 200
    data: dict[str, object] = response.json()
    return data


def header(echoed: dict[str, object], name: str) -> str | None:
    for key, value in echoed["headers"]:  # type: ignore[attr-defined]
        if key.lower() == name.lower():
            return str(value)
    return None


# -- requests ---------------------------------------------------------------


async def test_get_reuses_one_connection(
    pool: HTTPConnectionPool, server: Server
) -> None:
    ids = set()
    for _ in range(5):
        response = await pool.request("GET", "/echo")
        ids.add(response.headers["X-Connection-Id"])
    assert len(ids) == 1
    assert server.connections_opened == 1
    stats = assert_pool_exact(pool)
    assert (stats.created, stats.reused) == (1, 4)


async def test_default_headers(pool: HTTPConnectionPool, server: Server) -> None:
    echoed = await echo(pool)
    assert header(echoed, "Host") == f"{server.host}:{server.port}"
    assert header(echoed, "Accept-Encoding") == "identity"
    assert (header(echoed, "User-Agent") or "").startswith("python-trio-pool/")


async def test_bodies_of_every_kind(pool: HTTPConnectionPool) -> None:
    async def agen() -> AsyncIterator[bytes]:
        yield b"as"
        yield b"ync"

    def gen() -> Iterator[bytes]:
        yield b"gen"
        yield b"erated"

    cases: list[tuple[object, str, str | None]] = [
        (b"raw bytes", "raw bytes", "9"),
        ("snowman \u2603", "snowman \u2603".encode().decode("latin-1"), "11"),
        (io.BytesIO(b"from a file"), "from a file", None),
        ([b"li", b"st"], "list", None),
        (gen(), "generated", None),
        (agen(), "async", None),
    ]
    for body, expected, length in cases:
        echoed = await echo(pool, "POST", body=body)
        assert echoed["body"] == expected
        assert header(echoed, "Content-Length") == length
        if length is None:
            assert header(echoed, "Transfer-Encoding") == "chunked"
    echoed = await echo(pool, "PUT", body=b"abc", chunked=True)
    assert (echoed["body"], header(echoed, "Transfer-Encoding")) == ("abc", "chunked")
    assert_pool_exact(pool)


async def test_fields_and_json(pool: HTTPConnectionPool) -> None:
    echoed = await echo(pool, "GET", fields={"a": "1", "b": "two words"})
    assert echoed["target"] == "/echo?a=1&b=two+words"
    echoed = await echo(pool, "POST", fields={"name": "value"})
    assert (header(echoed, "Content-Type") or "").startswith(
        "multipart/form-data; boundary="
    )
    assert 'name="name"' in str(echoed["body"])
    echoed = await echo(pool, "POST", fields={"a": "1"}, encode_multipart=False)
    assert echoed["body"] == "a=1"
    assert header(echoed, "Content-Type") == "application/x-www-form-urlencoded"
    echoed = await echo(pool, "POST", json={"k": [1, 2]})
    assert json.loads(str(echoed["body"])) == {"k": [1, 2]}
    assert header(echoed, "Content-Type") == "application/json"
    with pytest.raises(TypeError):
        await pool.request("POST", "/echo", json={}, body=b"x")


async def test_no_body_responses(pool: HTTPConnectionPool) -> None:
    head = await pool.request("HEAD", "/bytes/100")
    assert (head.status, head.data, head.headers["Content-Length"]) == (200, b"", "100")
    for code in (204, 304):
        response = await pool.request("GET", f"/status/{code}")
        assert (response.status, response.data) == (code, b"")
    assert pool.statistics().created == 1
    assert_pool_exact(pool)


async def test_client_connection_close_is_not_reused(
    pool: HTTPConnectionPool, server: Server
) -> None:
    await pool.request("GET", "/echo", headers={"Connection": "close"})
    await pool.request("GET", "/echo")
    assert server.connections_opened == 2
    await trio.testing.wait_all_tasks_blocked()
    assert_pool_exact(pool)


async def test_connection_from_url(server: Server) -> None:
    async with connection_from_url(server.url, maxsize=2) as pool:
        assert (await pool.request("GET", "/bytes/10")).data == pattern(10)
        assert pool.is_same_host(server.url + "/x")
        assert not pool.is_same_host("http://other.example/x")
    with pytest.raises(ClosedPoolError):
        await pool.request("GET", "/")


# -- streaming responses ------------------------------------------------------


async def test_streaming_read_amt_tell_and_length(pool: HTTPConnectionPool) -> None:
    response = await pool.request("GET", "/bytes/100000", preload_content=False)
    assert response.length_remaining == 100000
    with pytest.raises(RuntimeError):
        _ = response.data
    first = await response.read(1000)
    assert first == pattern(100000)[:1000]
    assert response.tell() >= 1000
    rest = await response.read()
    assert first + rest == pattern(100000)
    assert response.length_remaining == 0
    assert await response.read() == b""
    assert_pool_exact(pool)


async def test_stream_and_async_for(pool: HTTPConnectionPool) -> None:
    response = await pool.request(
        "GET", "/bytes/70000?chunked=1&chunk_size=999", preload_content=False
    )
    chunks = [chunk async for chunk in response.stream(4096)]
    # A chunked body streams as it arrives (urllib3's rule): pieces are never
    # held back to fill 4096, and never exceed it.
    assert all(0 < len(c) <= 4096 for c in chunks)
    assert b"".join(chunks) == pattern(70000)
    # Any other body comes in full pieces of amt, the last one shorter.
    response = await pool.request("GET", "/bytes/70000", preload_content=False)
    chunks = [chunk async for chunk in response.stream(4096)]
    assert [len(c) for c in chunks] == [4096] * 17 + [70000 - 17 * 4096]
    response = await pool.request("GET", "/bytes/5000", preload_content=False)
    assert b"".join([c async for c in response]) == pattern(5000)
    assert_pool_exact(pool)


async def test_release_drain_close_and_async_with(pool: HTTPConnectionPool) -> None:
    response = await pool.request("GET", "/bytes/100000", preload_content=False)
    await response.read(10)
    await response.release_conn()  # unread body: closed, not reused
    response = await pool.request("GET", "/bytes/100000", preload_content=False)
    await response.drain_conn()  # read to the end: reused
    response = await pool.request("GET", "/bytes/100000", preload_content=False)
    await response.aclose()
    assert response.closed
    async with await pool.request(
        "GET", "/bytes/10", preload_content=False
    ) as response:
        assert await response.read() == pattern(10)
    await trio.testing.wait_all_tasks_blocked()
    stats = assert_pool_exact(pool)
    assert (stats.created, stats.reused) == (3, 1)


@pytest.mark.parametrize(
    "coding",
    ["gzip", "deflate", "deflate-raw", "br", "zstd", "gzip,br", "zstd,deflate"],
)
async def test_content_decoding(pool: HTTPConnectionPool, coding: str) -> None:
    response = await pool.request("GET", f"/encoded/{coding}?n=300000")
    assert response.data == pattern(300000)
    response = await pool.request(
        "GET", f"/encoded/{coding}?n=300000", preload_content=False
    )
    pieces = [chunk async for chunk in response.stream(1000)]
    assert max(len(p) for p in pieces) <= 1000
    assert b"".join(pieces) == pattern(300000)
    raw = await pool.request("GET", f"/encoded/{coding}?n=3000", decode_content=False)
    assert raw.data != pattern(3000)
    assert_pool_exact(pool)


# -- faults: each gives the right exception, and the pool still works ------------


async def assert_recovers(pool: HTTPConnectionPool) -> None:
    await trio.testing.wait_all_tasks_blocked()
    assert_pool_exact(pool)
    response = await pool.request("GET", "/bytes/10")
    assert response.data == pattern(10)


async def test_fault_stall_is_a_read_timeout(pool: HTTPConnectionPool) -> None:
    with pytest.raises(ReadTimeoutError):
        await pool.request(
            "GET", "/fault/stall", timeout=Timeout(read=0.2), retries=False
        )
    with pytest.raises(ReadTimeoutError):
        await pool.request(
            "GET",
            "/fault/stall-body?n=100&sent=10",
            timeout=Timeout(read=0.2),
            retries=False,
        )
    await assert_recovers(pool)


async def test_fault_drip_within_read_timeout_succeeds(
    pool: HTTPConnectionPool,
) -> None:
    response = await pool.request(
        "GET", "/fault/drip?n=5&delay=0.02", timeout=Timeout(read=1)
    )
    assert len(response.data) == 5
    await assert_recovers(pool)


@pytest.mark.parametrize(
    "path",
    ["/fault/close-mid-body?n=1000&sent=100", "/fault/wrong-length?n=1000&sent=999"],
)
async def test_fault_truncated_body_raises_incomplete_read(
    pool: HTTPConnectionPool, path: str
) -> None:
    with pytest.raises(IncompleteRead) as info:
        await pool.request("GET", path, retries=False)
    assert info.value.partial in (100, 999)
    response = await pool.request("GET", path, retries=False, preload_content=False)
    with pytest.raises(ProtocolError):
        await response.read()
    await assert_recovers(pool)


async def test_fault_reset(pool: HTTPConnectionPool) -> None:
    with pytest.raises(ProtocolError):
        await pool.request("GET", "/fault/reset", retries=False)
    with pytest.raises(MaxRetryError) as info:
        await pool.request("GET", "/fault/reset", retries=2)
    assert isinstance(info.value.reason, ProtocolError)
    response = await pool.request(
        "GET",
        "/fault/reset-mid-body?n=100000&sent=1000",
        retries=False,
        preload_content=False,
    )
    with pytest.raises(ProtocolError):
        await response.read()
    await assert_recovers(pool)


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/fault/malformed-status", ProtocolError),
        ("/fault/bad-chunk", InvalidChunkLength),
        ("/fault/huge-header", ProtocolError),
        ("/fault/truncated-chunked", IncompleteRead),
    ],
)
async def test_fault_malformed_responses(
    pool: HTTPConnectionPool, path: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await pool.request("GET", path, retries=False)
    await assert_recovers(pool)


async def test_fault_early_response_is_returned(pool: HTTPConnectionPool) -> None:
    response = await pool.request(
        "POST",
        "/fault/early-response?status=413",
        body=b"x" * (8 * 1024 * 1024),
        retries=False,
    )
    assert response.status == 413
    await assert_recovers(pool)


async def test_fault_garbage_after_body_drops_the_connection(
    pool: HTTPConnectionPool, server: Server
) -> None:
    response = await pool.request("GET", "/fault/garbage-after-body")
    assert response.status == 200
    # Stray bytes after the response: read along with it (so the connection
    # is not reused) or arriving later (so the idle watch drops it).
    with trio.fail_after(WATCH_GRACE + 2):
        while pool.statistics().dropped < 1:
            await trio.sleep(0.01)
    assert pool.statistics().idle == 0
    await assert_recovers(pool)
    assert server.connections_opened == 2


async def test_fault_close_after_response(
    pool: HTTPConnectionPool, server: Server
) -> None:
    assert (await pool.request("GET", "/fault/close-after-response")).status == 200
    await assert_recovers(pool)
    assert server.connections_opened == 2


async def test_server_idle_close_is_noticed_before_the_next_request() -> None:
    async with (
        open_server(idle_close_after=0.1) as server,
        HTTPConnectionPool(server.host, server.port) as pool,
    ):
        await pool.request("GET", "/echo")
        with trio.fail_after(WATCH_GRACE + 2):
            while pool.statistics().idle:
                await trio.sleep(0.02)
        assert pool.statistics().dropped == 1
        # A POST is not retried on a stale connection: it must not get one.
        response = await pool.request("POST", "/echo", body=b"x", retries=False)
        assert response.status == 200


async def test_connection_refused_is_new_connection_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with HTTPConnectionPool("127.0.0.1", port) as pool:
        with pytest.raises(NewConnectionError):
            await pool.request("GET", "/", retries=False)
        assert_pool_exact(pool)


async def test_name_resolution_error() -> None:
    class Failing(trio.abc.HostnameResolver):
        async def getaddrinfo(self, *args: object, **kw: object) -> list[object]:  # type: ignore[override]
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

        async def getnameinfo(self, *args: object) -> tuple[str, str]:
            raise NotImplementedError

    old = trio.socket.set_custom_hostname_resolver(Failing())
    try:
        async with HTTPConnectionPool("no-such-host.test") as pool:
            with pytest.raises(NameResolutionError):
                await pool.request("GET", "/", retries=False)
    finally:
        trio.socket.set_custom_hostname_resolver(old)


# -- cancellation leaves the pool exact ------------------------------------------


@pytest.mark.parametrize(
    ("path", "method", "body"),
    [
        ("/fault/stall", "GET", None),  # waiting for the response head
        ("/fault/stall-body?n=100000&sent=5000", "GET", None),  # mid-body
        ("/fault/stall", "POST", b"y" * (16 * 1024 * 1024)),  # during send
    ],
)
async def test_cancel_mid_request(
    pool: HTTPConnectionPool, path: str, method: str, body: bytes | None
) -> None:
    with trio.move_on_after(0.3) as scope:
        await pool.request(method, path, body=body)
    assert scope.cancelled_caught
    await assert_recovers(pool)
    assert pool.statistics().dropped >= 1


async def test_cancel_before_connect_and_while_streaming(
    pool: HTTPConnectionPool,
) -> None:
    with trio.CancelScope() as scope:
        scope.cancel()
        await pool.request("GET", "/echo")
    assert pool.statistics().created == 0
    response = await pool.request(
        "GET", "/fault/drip?n=100&delay=0.05", preload_content=False
    )
    with trio.move_on_after(0.2):
        await response.read()
    assert response.closed or response._lease is None
    await assert_recovers(pool)


async def test_pool_exit_closes_streaming_response(server: Server) -> None:
    async with HTTPConnectionPool(server.host, server.port) as pool:
        response: HTTPResponse = await pool.request(
            "GET", "/fault/stall-body?n=100&sent=10", preload_content=False
        )
    assert server.open_connections <= 1
    with pytest.raises(ProtocolError):
        await response.read()
