"""Security properties, against the bundled server on loopback.

* Request smuggling: CR, LF and NUL in the method, a header name or value, or
  the URL never reach the wire raw. Method and headers are rejected with
  ``InvalidHeader`` before a connection is even opened; a URL is either
  rejected the same way (``LocationParseError`` for its authority) or, as
  urllib3 2.x does for the path and query, percent-encoded.
* Decompression bombs: ``read(amt)``/``stream(amt)`` never decode more than
  asked for, so streaming a gzip bomb (2 GiB of zeros in 2 MiB) keeps memory
  flat (measured with ``tracemalloc``) and every piece within ``amt``.
* Credentials (``Authorization``, ``Cookie``, ``Proxy-Authorization``) never
  follow a redirect to another host, scheme or port, but do follow a same-host
  one; a custom ``Retry(remove_headers_on_redirect=...)`` is honoured.
* Early responses: a server answering (413) before an upload finished gives the
  caller that response, body and all (over TLS too), not a broken-pipe error,
  and the connection is not reused.
"""

from __future__ import annotations

import functools
import gzip
import ssl
import struct
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import brotli
import h11
import pytest
import trio
import trio.testing
import trustme
import zstandard

from tests.integration.conftest import assert_pool_exact
from trio_pool import (
    HTTPConnectionPool,
    HTTPResponse,
    HTTPSConnectionPool,
    InvalidHeader,
    LocationParseError,
    PoolManager,
    Retry,
)
from trio_pool.testing import (
    RawConnection,
    Request,
    Response,
    Server,
    open_server,
    pattern,
)

BAD_CHARS = ["\r", "\n", "\r\n", "\x00"]
CREDENTIALS = {
    "Authorization": "Bearer secret-token",
    "Cookie": "session=secret",
    "Proxy-Authorization": "Basic c2VjcmV0",
}
MIB = 1 << 20


@pytest.fixture
async def other() -> AsyncIterator[Server]:
    async with open_server() as running:
        yield running


def assert_untouched(*servers: Server) -> None:
    """Nothing was sent: no connection was even opened."""
    for server in servers:
        assert (server.connections_opened, server.request_count) == (0, 0)


# -- CR / LF / NUL ------------------------------------------------------------------


@pytest.mark.parametrize("bad", BAD_CHARS)
async def test_control_characters_in_the_method_are_rejected(
    server: Server, bad: str
) -> None:
    methods = [
        f"GET{bad}",
        f"{bad}GET",
        f"G{bad}ET",
        f"GET /x HTTP/1.1{bad}X-Injected:",
    ]
    with trio.fail_after(10):
        async with (
            HTTPConnectionPool(server.host, server.port) as pool,
            PoolManager() as http,
        ):
            # A ValueError, as urllib3 (http.client) raises for a bad method.
            for method in methods:
                with pytest.raises(ValueError, match="method"):
                    await pool.request(method, "/echo")
                with pytest.raises(ValueError, match="method"):
                    await http.request(method, server.url + "/echo")
    assert_untouched(server)


def _bad_headers(bad: str) -> list[dict[str, str]]:
    return [
        {f"X-Name{bad}X-Injected": "1"},
        {f"X-Name{bad}": "1"},
        {f"{bad}X-Name": "1"},
        {"X-Value": f"one{bad}X-Injected: 1"},
        {"X-Value": f"one{bad}"},
        {"X-Value": f"{bad}one"},
        {"Host": f"example.com{bad}X-Injected: 1"},
        {"Authorization": f"Bearer x{bad}X-Injected: 1"},
    ]


@pytest.mark.parametrize("bad", BAD_CHARS)
async def test_control_characters_in_headers_are_rejected(
    server: Server, bad: str
) -> None:
    with trio.fail_after(10):
        async with (
            HTTPConnectionPool(server.host, server.port) as pool,
            PoolManager() as http,
        ):
            for headers in _bad_headers(bad):
                with pytest.raises(InvalidHeader):
                    await pool.request("GET", "/echo", headers=headers)
                with pytest.raises(InvalidHeader):
                    await http.request("POST", server.url + "/echo", headers=headers)
    assert_untouched(server)


@pytest.mark.parametrize("bad", BAD_CHARS)
async def test_control_characters_in_default_headers_are_rejected(
    server: Server, bad: str
) -> None:
    headers = {"X-Value": f"one{bad}X-Injected: 1"}
    with trio.fail_after(10):
        async with (
            HTTPConnectionPool(server.host, server.port, headers=headers) as pool,
            PoolManager(headers=headers) as http,
        ):
            with pytest.raises(InvalidHeader):
                await pool.request("GET", "/echo")
            with pytest.raises(InvalidHeader):
                await http.request("GET", server.url + "/echo")
    assert_untouched(server)


@pytest.mark.parametrize("bad", BAD_CHARS)
@pytest.mark.parametrize(
    "url",
    [
        "http://exa{bad}mple.test/echo",
        "http://{host}{bad}:{port}/echo",
        "http://{bad}{host}:{port}/echo",
        "http://{host}:{port}{bad}X-Injected: 1/echo",
    ],
)
async def test_control_characters_in_the_host_are_rejected(
    server: Server, bad: str, url: str
) -> None:
    """A URL whose authority holds CR/LF/NUL anywhere is refused before any
    connection is opened, not cleaned up and sent."""
    url = url.format(bad=bad, host=server.host, port=server.port)
    with trio.fail_after(10):
        async with PoolManager(retries=False) as http:
            with pytest.raises((InvalidHeader, LocationParseError)):
                await http.request("GET", url)
    assert_untouched(server)


@pytest.mark.parametrize("bad", BAD_CHARS)
@pytest.mark.parametrize("where", ["path", "query", "fragment"])
async def test_control_characters_in_the_url_never_reach_the_wire(
    server: Server, bad: str, where: str
) -> None:
    """Rejected before sending, or percent-encoded (urllib3 2.x's behaviour
    for the path and query): never a raw CR/LF/NUL, never a second request or
    an injected header."""
    injection = f"{bad}X-Injected: 1{bad}{bad}GET /smuggled HTTP/1.1{bad}"
    url = {
        "path": f"/echo{injection}",
        "query": f"/echo?a=1{injection}",
        "fragment": f"/echo#{injection}",
    }[where]
    with trio.fail_after(10):
        async with HTTPConnectionPool(server.host, server.port) as pool:
            try:
                await pool.request("GET", url)
            except (InvalidHeader, LocationParseError):
                assert_untouched(server)
                return
    assert server.request_count == 1, [r.target for r in server.requests]
    (request,) = server.requests
    assert not set(request.target) & {"\r", "\n", "\x00"}, request.target
    assert request.header("X-Injected") is None
    if where != "fragment":
        assert {"\r": "%0D", "\n": "%0A", "\x00": "%00"}[bad[-1]] in request.target


# -- decompression bombs ------------------------------------------------------------

_ZEROS = bytes(MIB)
#: The most ``tracemalloc`` may see allocated at once while streaming a bomb:
#: one ``amt`` piece, one 64 KiB socket read, a decoder's 128 KiB step and h11's
#: buffer are far below it; a decoder that inflated ahead of the reader would
#: blow through it within the first few reads.
MEMORY_CEILING = 4 * MIB


def _deflate_blocks(mib: int) -> bytes:
    """Raw deflate of ``mib`` MiB of zeros, made from one compressed block.

    After ``Z_FULL_FLUSH`` deflate forgets its history, so every further 1 MiB
    block of zeros compresses to the very same bytes: the bomb is built in
    milliseconds instead of compressing gigabytes.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = compressor.compress(_ZEROS) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = compressor.compress(_ZEROS) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert block == again, "deflate did not restart after a full flush"
    last = compressor.compress(_ZEROS) + compressor.flush()
    return block * (mib - 1) + last


@functools.cache
def gzip_bomb(mib: int) -> bytes:
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(_ZEROS, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = struct.pack("<II", crc, (mib * MIB) & 0xFFFFFFFF)
    return header + _deflate_blocks(mib) + trailer


@functools.cache
def zlib_bomb(mib: int) -> bytes:
    adler = 1
    for _ in range(mib):
        adler = zlib.adler32(_ZEROS, adler)
    return b"\x78\xda" + _deflate_blocks(mib) + struct.pack(">I", adler)


@functools.cache
def br_bomb(mib: int) -> bytes:
    compressor = brotli.Compressor(quality=5)
    parts = [compressor.process(_ZEROS) for _ in range(mib)]
    return b"".join([*parts, compressor.finish()])


@functools.cache
def zstd_bomb(mib: int) -> bytes:
    compressor = zstandard.ZstdCompressor(level=3).compressobj()
    parts = [compressor.compress(_ZEROS) for _ in range(mib)]
    return b"".join([*parts, compressor.flush()])


@functools.cache
def gzip_gzip_bomb(mib: int) -> bytes:
    return gzip.compress(gzip_bomb(mib), mtime=0)


#: Content-Encoding -> (builder, MiB of zeros in the bomb, MiB to read of it)
BOMBS: dict[str, tuple[Callable[[int], bytes], int, int]] = {
    "gzip": (gzip_bomb, 2048, 200),
    "deflate": (zlib_bomb, 1024, 64),
    "br": (br_bomb, 256, 64),
    "zstd": (zstd_bomb, 256, 64),
    "gzip, gzip": (gzip_gzip_bomb, 2048, 64),
}


def test_bomb_builders_make_valid_bodies() -> None:
    """The shortcut builders give what the real decoders accept."""
    assert gzip.decompress(gzip_bomb(3)) == bytes(3 * MIB)
    assert zlib.decompress(zlib_bomb(3)) == bytes(3 * MIB)
    assert len(gzip_bomb(2048)) < 3 * MIB


@contextmanager
def traced_memory() -> Iterator[Callable[[], int]]:
    """Trace allocations in the block; yields a function giving the peak
    above what was allocated when the block started."""
    started_here = not tracemalloc.is_tracing()
    if started_here:
        tracemalloc.start()
    tracemalloc.reset_peak()
    baseline = tracemalloc.get_traced_memory()[0]
    try:
        yield lambda: tracemalloc.get_traced_memory()[1] - baseline
    finally:
        if started_here:
            tracemalloc.stop()


def serve_bomb(server: Server, coding: str) -> tuple[str, int]:
    build, mib, read_mib = BOMBS[coding]
    body = build(mib)
    path = "/bomb/" + coding.replace(", ", "-")

    @server.route(path)
    async def bomb(request: Request) -> Response:
        return Response(200, [("Content-Encoding", coding)], body)

    return path, read_mib * MIB


@pytest.mark.parametrize("coding", sorted(BOMBS))
async def test_streaming_a_decompression_bomb_keeps_memory_flat(
    server: Server, pool: HTTPConnectionPool, coding: str
) -> None:
    path, wanted = serve_bomb(server, coding)
    amt = 64 * 1024
    with trio.fail_after(60):
        response = await pool.request("GET", path, preload_content=False)
        got = 0
        with traced_memory() as peak:
            async for piece in response.stream(amt):
                assert len(piece) <= amt
                assert piece.count(0) == len(piece)
                got += len(piece)
                if got >= wanted:
                    break
            assert peak() < MEMORY_CEILING, f"{peak() / MIB:.1f} MiB"
        await response.aclose()
    assert got >= wanted
    assert response.tell() < 4 * MIB  # compressed bytes: the bomb was not read ahead
    assert_pool_exact(pool)


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
async def test_small_reads_of_a_bomb_stay_within_amt(
    server: Server, pool: HTTPConnectionPool, coding: str
) -> None:
    path, _ = serve_bomb(server, coding)
    with trio.fail_after(60):
        response = await pool.request("GET", path, preload_content=False)
        with traced_memory() as peak:
            for amt in (1, 2, 3, 1000, 4096):
                for _ in range(500):
                    piece = await response.read(amt)
                    assert len(piece) == amt  # never more, and no short reads
            big = 10 * MIB
            assert len(await response.read(big)) == big
            # Proportional to what was asked for (the buffer and the copies
            # made to return it), not to what the bomb holds.
            assert peak() < 4 * big, f"{peak() / MIB:.1f} MiB"
        await response.release_conn()
    assert_pool_exact(pool)


# -- credentials and redirects ------------------------------------------------------


def echoed_headers(response: HTTPResponse) -> dict[str, str]:
    data: dict[str, Any] = response.json()
    return {name.lower(): value for name, value in data["headers"]}


def assert_no_credentials(headers: dict[str, str]) -> None:
    leaked = {name for name in CREDENTIALS if name.lower() in headers}
    assert not leaked, f"credentials followed the redirect: {sorted(leaked)}"


def assert_all_credentials(headers: dict[str, str]) -> None:
    for name, value in CREDENTIALS.items():
        assert headers.get(name.lower()) == value, name


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("change", ["host", "port", "host-and-port"])
async def test_credentials_never_follow_a_cross_host_redirect(
    server: Server, other: Server, status: int, change: str
) -> None:
    target = {
        "host": f"http://localhost:{server.port}/echo",
        "port": f"{other.url}/echo",
        "host-and-port": f"http://localhost:{other.port}/echo",
    }[change]
    with trio.fail_after(10):
        async with PoolManager() as http:
            response = await http.request(
                "GET",
                f"{server.url}/redirect/{status}?to={target}",
                headers={**CREDENTIALS, "X-Other": "kept"},
            )
    assert response.status == 200
    assert response.url == target
    headers = echoed_headers(response)
    assert_no_credentials(headers)
    assert headers["x-other"] == "kept"


async def test_credentials_stay_stripped_when_the_chain_returns(
    server: Server, other: Server
) -> None:
    """server -> other -> server: what was dropped is not brought back."""
    back = f"{server.url}/echo"
    via_other = f"{other.url}/redirect/302?to={back}"
    with trio.fail_after(10):
        async with PoolManager() as http:
            response = await http.request(
                "GET", f"{server.url}/redirect/307?to={via_other}", headers=CREDENTIALS
            )
    assert response.url == back
    assert_no_credentials(echoed_headers(response))


async def test_manager_default_credentials_do_not_follow_either(
    server: Server, other: Server
) -> None:
    with trio.fail_after(10):
        async with PoolManager(headers=CREDENTIALS) as http:
            response = await http.request(
                "GET", f"{server.url}/redirect/302?to={other.url}/echo"
            )
    assert_no_credentials(echoed_headers(response))


@pytest.mark.parametrize("target", ["/echo", "//{host}:{port}/echo", "{url}/echo"])
async def test_credentials_follow_a_same_host_redirect_in_a_manager(
    server: Server, target: str
) -> None:
    target = target.format(url=server.url, host=server.host, port=server.port)
    with trio.fail_after(10):
        async with PoolManager() as http:
            response = await http.request(
                "GET", f"{server.url}/redirect/302?to={target}", headers=CREDENTIALS
            )
    assert response.url == f"{server.url}/echo"
    assert_all_credentials(echoed_headers(response))


@pytest.mark.parametrize(
    "url", ["/redirect/302?to=/echo", "{url}/redirect/302?to=/echo"]
)
async def test_credentials_follow_a_same_host_redirect_in_a_pool(
    server: Server, pool: HTTPConnectionPool, url: str
) -> None:
    """A pool only ever follows same-host redirects: nothing to strip (as
    urllib3's HTTPConnectionPool), whether the URL was relative or not."""
    with trio.fail_after(10):
        response = await pool.request(
            "GET", url.format(url=server.url), headers=CREDENTIALS
        )
    assert_all_credentials(echoed_headers(response))


async def test_custom_remove_headers_on_redirect_is_honoured(
    server: Server, other: Server
) -> None:
    """The custom set replaces the default one, as in urllib3; names match
    case-insensitively."""
    retries = Retry(3, remove_headers_on_redirect=["X-Secret", "COOKIE"])
    headers = {"x-secret": "s", "Cookie": "c", "Authorization": "a", "X-Other": "o"}
    with trio.fail_after(10):
        async with PoolManager(retries=retries) as http:
            cross = await http.request(
                "GET", f"{server.url}/redirect/302?to={other.url}/echo", headers=headers
            )
            same = await http.request(
                "GET", f"{server.url}/redirect/302?to=/echo", headers=headers
            )
            per_request = await http.request(
                "GET",
                f"{server.url}/redirect/302?to={other.url}/echo",
                headers=headers,
                retries=Retry(3, remove_headers_on_redirect=[]),
            )
    crossed = echoed_headers(cross)
    assert "x-secret" not in crossed
    assert "cookie" not in crossed
    assert (crossed["authorization"], crossed["x-other"]) == ("a", "o")
    assert {k: echoed_headers(same).get(k.lower()) for k in headers} == headers
    assert {k: echoed_headers(per_request).get(k.lower()) for k in headers} == headers


# -- early responses ------------------------------------------------------------------


class SlowBody:
    """An upload of ``total`` bytes in pieces, with a pause before each: it
    outlasts the server's one-second lingering close."""

    def __init__(self, total: int, piece: int = 64 * 1024, pause: float = 0.002):
        self.left = total
        self.piece = piece
        self.pause = pause

    def __aiter__(self) -> SlowBody:
        return self

    async def __anext__(self) -> bytes:
        if self.left <= 0:
            raise StopAsyncIteration
        self.left -= self.piece
        await trio.sleep(self.pause)
        return b"u" * self.piece


async def answer_early_and_close(request: Request, conn: RawConnection) -> None:
    """413 without reading the body, then close at once: the unread upload
    makes the kernel answer the client's next bytes with a reset."""
    await conn.send_response(Response.text("too large", 413, [("Connection", "close")]))
    await conn.close()


def _uploads() -> list[tuple[str, Callable[[], object]]]:
    return [
        ("8 MiB of bytes", lambda: b"x" * (8 * MIB)),
        ("chunked iterable", lambda: [b"y" * (256 * 1024)] * 32),
        ("slow async iterable", lambda: SlowBody(64 * MIB)),
    ]


@pytest.mark.parametrize(("what", "make_body"), _uploads())
@pytest.mark.parametrize("path", ["/fault/early-response", "/early-then-close"])
async def test_an_early_response_is_returned_and_its_connection_dropped(
    server: Server,
    pool: HTTPConnectionPool,
    what: str,
    make_body: Callable[[], object],
    path: str,
) -> None:
    server.add_raw_route("/early-then-close", answer_early_and_close, read_body=False)
    with trio.fail_after(20):
        response = await pool.request("POST", path, body=make_body())
        assert response.status == 413
        assert response.data in (b"answered early", b"too large")
        assert server.connections_opened == 1
        again = await pool.request("GET", "/echo")
        assert again.status == 200
        assert server.connections_opened == 2  # the early one was not reused
        await trio.testing.wait_all_tasks_blocked()
    assert server.request_count == 2
    assert_pool_exact(pool)


EARLY_BODY = pattern(100_000)


async def answer_now_body_later(request: Request, conn: RawConnection) -> None:
    """413 at once, its body a moment later; the upload is never read, so the
    client's send is blocked when the answer arrives."""
    headers = [("Content-Length", str(len(EARLY_BODY))), ("Connection", "close")]
    await conn.start_response(413, headers)
    await trio.sleep(0.2)
    await conn.send_events(h11.Data(data=EARLY_BODY), h11.EndOfMessage())
    await trio.sleep(30)  # holds the connection; ends with the server


@pytest.fixture(scope="module")
def tls_ca() -> Any:
    return trustme.CA()


@asynccontextmanager
async def plain_or_tls(tls: bool, ca: Any) -> AsyncIterator[HTTPConnectionPool]:
    """A server with the early route, and a pool to it (over TLS if asked)."""
    context = None
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("localhost").configure_cert(context)
    async with open_server(ssl_context=context) as server:
        server.add_raw_route("/early-later", answer_now_body_later, read_body=False)
        pool: HTTPConnectionPool
        if tls:
            pem = ca.cert_pem.bytes().decode()
            pool = HTTPSConnectionPool("localhost", server.port, ca_cert_data=pem)
        else:
            pool = HTTPConnectionPool(server.host, server.port)
        async with pool:
            yield pool


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
async def test_an_early_answer_is_read_whole_though_the_upload_was_stopped(
    tls: bool, tls_ca: Any
) -> None:
    """Stopping the upload must not cost the answer's body. (Over TLS, a
    cancelled ``send_all`` breaks a ``trio.SSLStream`` for good, reads
    included.)"""
    with trio.fail_after(20):
        async with plain_or_tls(tls, tls_ca) as pool:
            response = await pool.request(
                "POST", "/early-later", body=b"x" * (32 * MIB), retries=False
            )
            assert response.status == 413
            assert response.data == EARLY_BODY
            assert_pool_exact(pool)
