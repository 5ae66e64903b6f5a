"""Tests for trio_pool.testing, the local fault-injecting HTTP server.

The client here is deliberately primitive (raw bytes, or h11 over
``trio.open_tcp_stream``) so that these tests do not depend on trio_pool's own
client.
"""

from __future__ import annotations

import gzip
import json
import socket
import ssl
import zlib
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import brotli
import h11
import pytest
import trio
import trustme
import zstandard

from trio_pool.testing import (
    BadRequest,
    RawConnection,
    Request,
    Response,
    Server,
    open_server,
    pattern,
)

# -- a tiny client ------------------------------------------------------------------


class Client:
    """One client connection speaking HTTP/1.1 through h11."""

    def __init__(self, stream: trio.abc.Stream, host: str = "127.0.0.1") -> None:
        self.stream = stream
        self.host = host
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=1 << 20)

    async def send_request(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> None:
        all_headers = [("Host", self.host), *headers]
        if body and not any(k.lower() == "content-length" for k, _ in headers):
            all_headers.append(("Content-Length", str(len(body))))
        data = self.h11.send(
            h11.Request(method=method, target=target, headers=all_headers)
        )
        assert data is not None
        if body:
            data += self.h11.send(h11.Data(data=body)) or b""
        data += self.h11.send(h11.EndOfMessage()) or b""
        await self.stream.send_all(data)

    async def next_event(self) -> Any:
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            self.h11.receive_data(bytes(await self.stream.receive_some(65536)))

    async def read_response(self) -> tuple[h11.Response, bytes]:
        event = await self.next_event()
        while isinstance(event, h11.InformationalResponse):
            event = await self.next_event()
        assert isinstance(event, h11.Response), event
        parts = []
        while True:
            part = await self.next_event()
            if isinstance(part, h11.EndOfMessage):
                break
            assert isinstance(part, h11.Data), part
            parts.append(part.data)
        return event, b"".join(parts)

    async def request(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> tuple[h11.Response, bytes]:
        await self.send_request(method, target, headers, body)
        response = await self.read_response()
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
        return response


async def connect(server: Server) -> trio.SocketStream:
    return await trio.open_tcp_stream(server.host, server.port)


async def fetch(
    server: Server,
    target: str,
    method: str = "GET",
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
) -> tuple[h11.Response, bytes]:
    async with await connect(server) as stream:
        return await Client(stream).request(method, target, headers, body)


async def raw_exchange(server: Server, data: bytes) -> bytes:
    """Send raw bytes and return everything received until EOF."""
    async with await connect(server) as stream:
        await stream.send_all(data)
        return await read_to_eof(stream)


async def read_to_eof(stream: trio.abc.ReceiveStream) -> bytes:
    parts = []
    while chunk := await stream.receive_some(65536):
        parts.append(chunk)
    return b"".join(parts)


async def read_until_error(
    stream: trio.abc.ReceiveStream,
) -> tuple[bytes, Exception | None]:
    """Read until EOF or an error; return what arrived and the error."""
    parts = []
    try:
        while chunk := await stream.receive_some(65536):
            parts.append(chunk)
    except Exception as exc:
        return b"".join(parts), exc
    return b"".join(parts), None


def get(target: str, extra: str = "") -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode()


def header(response: h11.Response, name: str) -> str | None:
    for key, value in response.headers:
        if key == name.lower().encode():
            return str(value.decode("latin-1"))
    return None


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    async with open_server() as running:
        yield running


# -- basics ------------------------------------------------------------------------


def test_pattern() -> None:
    assert pattern(0) == b""
    assert pattern(3) == b"\x00\x01\x02"
    assert pattern(2, 255) == b"\xff\x00"
    big = pattern(1_000_000)
    assert big[256:512] == bytes(range(256))
    assert pattern(300_000) + pattern(700_000, 300_000) == big
    assert pattern(10, 1000) == big[1000:1010]
    with pytest.raises(ValueError, match="negative"):
        pattern(-1)


def test_request_helpers() -> None:
    request = Request(
        method="GET",
        target="/x?a=1&a=2",
        path="/x",
        query={"a": ["1", "2"]},
        headers=[("Accept", "a"), ("X-Y", "1"), ("accept", "b")],
        body=b"",
        connection_id=1,
        request_number=1,
        http_version="1.1",
    )
    assert request.header("ACCEPT") == "a, b"
    assert request.header("missing") is None
    assert request.param("a") == "1"
    assert request.param("b", "dflt") == "dflt"
    response = Response.json({"k": 1}, 201, [("X-A", "b")])
    assert response.status == 201
    assert json.loads(response.body) == {"k": 1}
    assert ("X-A", "b") in response.headers


async def test_url_and_counters(server: Server) -> None:
    with trio.fail_after(5):
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert server.port > 0
        assert server.connections_opened == 0
        response, _ = await fetch(server, "/echo")
        assert response.status_code == 200
        assert server.connections_opened == 1
        assert len(server.requests) == 1
        assert server.errors == []


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:  # pragma: no cover - depends on the machine
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback")
async def test_ipv6_url() -> None:
    with trio.fail_after(5):
        async with open_server(host="::1") as server:
            assert server.url == f"http://[::1]:{server.port}"
            response, _ = await fetch(server, "/echo")
            assert response.status_code == 200


async def test_without_recording_requests() -> None:
    with trio.fail_after(5):
        async with open_server(record_requests=False) as server:
            await fetch(server, "/echo")
            await fetch(server, "/echo")
            assert server.requests == []
            assert server.request_count == 2


async def test_block_exception_is_not_wrapped() -> None:
    with trio.fail_after(5), pytest.raises(KeyError):
        async with open_server():
            raise KeyError("from the body")


async def test_exit_closes_open_connections() -> None:
    with trio.fail_after(5):
        async with open_server() as server:
            stream = await connect(server)
            await stream.send_all(get("/fault/stall"))
            await server.wait_until(lambda s: len(s.requests) == 1)
            assert server.open_connections == 1
        async with stream:
            assert await read_to_eof(stream) == b""


# -- echo, keep-alive, pipelining ---------------------------------------------------


async def test_echo(server: Server) -> None:
    with trio.fail_after(5):
        response, body = await fetch(
            server,
            "/echo?a=1&b=&a=2",
            method="POST",
            headers=[("X-First", "1"), ("x-second", "two")],
            body=b"hello \xff",
        )
        assert response.status_code == 200
        assert header(response, "X-Connection-Id") == "1"
        assert header(response, "X-Request-Number") == "1"
        echo = json.loads(body)
        assert echo["method"] == "POST"
        assert echo["target"] == "/echo?a=1&b=&a=2"
        assert echo["path"] == "/echo"
        assert echo["query"] == {"a": ["1", "2"], "b": [""]}
        assert echo["headers"] == [
            ["Host", "127.0.0.1"],
            ["X-First", "1"],
            ["x-second", "two"],
            ["Content-Length", "7"],
        ]
        assert echo["body"] == "hello \xff"
        assert echo["connection_id"] == 1
        request = server.requests[0]
        assert request.body == b"hello \xff"
        assert request.header("x-first") == "1"
        assert request.http_version == "1.1"


async def test_absolute_form_target(server: Server) -> None:
    with trio.fail_after(5):
        _, body = await fetch(server, "http://example.com/echo?q=1")
        echo = json.loads(body)
        assert echo["path"] == "/echo"
        assert echo["query"] == {"q": ["1"]}


async def test_keep_alive_numbering(server: Server) -> None:
    with trio.fail_after(5):
        async with await connect(server) as stream:
            client = Client(stream)
            for number in (1, 2, 3):
                response, _ = await client.request("GET", "/echo")
                assert header(response, "X-Connection-Id") == "1"
                assert header(response, "X-Request-Number") == str(number)
        response, _ = await fetch(server, "/echo")
        assert header(response, "X-Connection-Id") == "2"
        assert header(response, "X-Request-Number") == "1"
        assert server.connections_opened == 2
        assert [r.request_number for r in server.requests] == [1, 2, 3, 1]


async def test_pipelined_requests(server: Server) -> None:
    with trio.fail_after(5):
        data = (
            get("/bytes/3") + get("/status/201") + get("/echo", "Connection: close\r\n")
        )
        raw = await raw_exchange(server, data)
        assert raw.count(b"HTTP/1.1 ") == 3
        assert b"X-Request-Number: 3" in raw


async def test_request_split_across_reads(server: Server) -> None:
    with trio.fail_after(5):
        async with await connect(server) as stream:
            # A whole request plus the start of the next one, then the rest.
            await stream.send_all(get("/echo") + b"GET /bytes/2 HTTP/1.1\r\nHo")
            await server.wait_until(lambda s: len(s.requests) == 1)
            await trio.sleep(0.05)
            await stream.send_all(b"st: x\r\nConnection: close\r\n\r\n")
            raw = await read_to_eof(stream)
        assert raw.count(b"HTTP/1.1 200 OK") == 2
        assert raw.endswith(pattern(2))


async def test_client_leaving_mid_download(server: Server) -> None:
    with trio.fail_after(5):
        async with await connect(server) as stream:
            await stream.send_all(get("/bytes/100000000"))
            await stream.receive_some(65536)
        await server.wait_until(lambda s: s.open_connections == 0)
        assert server.errors == []


async def test_http10_chunked_route_is_close_delimited(server: Server) -> None:
    with trio.fail_after(5):
        raw = await raw_exchange(server, b"GET /bytes/5?chunked=1 HTTP/1.0\r\n\r\n")
        head, _, body = raw.partition(b"\r\n\r\n")
        assert b"Transfer-Encoding" not in head
        assert body == pattern(5)


async def test_expect_100_continue(server: Server) -> None:
    with trio.fail_after(5):
        async with await connect(server) as stream:
            await stream.send_all(
                b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
            )
            first = await stream.receive_some(65536)
            assert first == b"HTTP/1.1 100 Continue\r\n\r\n"
            await stream.send_all(b"abc")
            raw = await read_to_eof(stream)
        assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
        assert json.loads(raw.partition(b"\r\n\r\n")[2])["body"] == "abc"


async def test_bad_request_gets_400(server: Server) -> None:
    with trio.fail_after(5):
        raw = await raw_exchange(server, b"NOT HTTP AT ALL\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 400 ")
        assert b"Connection: close" in raw


async def test_eof_mid_request_body(server: Server) -> None:
    with trio.fail_after(5):
        async with await connect(server) as stream:
            await stream.send_all(
                b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab"
            )
            await stream.send_eof()
            raw = await read_to_eof(stream)
        # The request head was fine, so the server still answers the framing error.
        assert raw.startswith(b"HTTP/1.1 400 ")


async def test_unknown_path_404(server: Server) -> None:
    with trio.fail_after(5):
        for target in ("/nope", "/bytes/", "/fault/nothing", "/unknown/x"):
            response, _ = await fetch(server, target)
            assert response.status_code == 404, target


# -- content routes ---------------------------------------------------------------


async def test_bytes(server: Server) -> None:
    with trio.fail_after(5):
        response, body = await fetch(server, "/bytes/1000")
        assert header(response, "Content-Length") == "1000"
        assert body == pattern(1000)
        response, body = await fetch(server, "/bytes/0")
        assert body == b""
        response, body = await fetch(server, "/bytes/abc")
        assert response.status_code == 400


async def test_bytes_chunked_on_the_wire(server: Server) -> None:
    with trio.fail_after(5):
        raw = await raw_exchange(
            server, get("/bytes/10?chunked=1&chunk_size=4", "Connection: close\r\n")
        )
        head, _, body = raw.partition(b"\r\n\r\n")
        assert b"Transfer-Encoding: chunked" in head
        expected = pattern(10)
        assert body == (
            b"4\r\n" + expected[:4] + b"\r\n4\r\n" + expected[4:8] + b"\r\n"
            b"2\r\n" + expected[8:] + b"\r\n0\r\n\r\n"
        )
        _, body = await fetch(server, "/bytes/300000?chunked=yes")
        assert body == pattern(300_000)


async def test_bytes_large_is_fast(server: Server) -> None:
    n = 100 * 1024 * 1024
    with trio.fail_after(10):
        async with await connect(server) as stream:
            await stream.send_all(get(f"/bytes/{n}"))
            received = 0
            head = b""
            while b"\r\n\r\n" not in head:
                head += await stream.receive_some(65536)
            received = len(head.partition(b"\r\n\r\n")[2])
            first = head.partition(b"\r\n\r\n")[2]
            while received < n:
                received += len(await stream.receive_some(1 << 20))
            assert received == n
            assert first == pattern(len(first))


async def test_head_has_no_body(server: Server) -> None:
    with trio.fail_after(5):
        async with await connect(server) as stream:
            client = Client(stream)
            response, body = await client.request("HEAD", "/bytes/100")
            assert header(response, "Content-Length") == "100"
            assert body == b""
            response, body = await client.request("HEAD", "/status/200?body=hi")
            assert header(response, "Content-Length") == "2"
            assert body == b""
            response, body = await client.request("GET", "/bytes/2")
            assert body == pattern(2)


async def test_status(server: Server) -> None:
    with trio.fail_after(5):
        response, body = await fetch(server, "/status/418?retry_after=7&body=teapot")
        assert response.status_code == 418
        assert header(response, "Retry-After") == "7"
        assert body == b"teapot"
        for code in (204, 304):
            raw = await raw_exchange(
                server, get(f"/status/{code}?body=x", "Connection: close\r\n")
            )
            assert raw.startswith(f"HTTP/1.1 {code} ".encode())
            assert raw.endswith(b"\r\n\r\n")
            assert b"Content-Length" not in raw
        response, _ = await fetch(server, "/status/599")
        assert (response.status_code, response.reason) == (599, b"")
        for bad in ("99", "600", "x"):
            response, _ = await fetch(server, f"/status/{bad}")
            assert response.status_code == 400


async def test_redirects(server: Server) -> None:
    with trio.fail_after(5):
        response, _ = await fetch(server, "/redirect/301")
        assert response.status_code == 301
        assert header(response, "Location") == "/echo"
        response, _ = await fetch(
            server, "/redirect/307?to=http%3A%2F%2Fexample.com%2F"
        )
        assert response.status_code == 307
        assert header(response, "Location") == "http://example.com/"
        response, _ = await fetch(server, "/redirect/200")
        assert response.status_code == 400
        response, _ = await fetch(server, "/redirect-loop?x=1")
        assert response.status_code == 302
        assert header(response, "Location") == "/redirect-loop"


def _decode(body: bytes, coding: str) -> bytes:
    if coding == "gzip":
        return gzip.decompress(body)
    if coding == "deflate":
        return zlib.decompress(body)
    if coding == "deflate-raw":
        return zlib.decompress(body, -zlib.MAX_WBITS)
    if coding == "br":
        return bytes(brotli.decompress(body))
    assert coding == "zstd"
    return bytes(zstandard.ZstdDecompressor().decompress(body))


@pytest.mark.parametrize(
    ("codings", "label"),
    [
        ("gzip", "gzip"),
        ("deflate", "deflate"),
        ("deflate-raw", "deflate"),
        ("br", "br"),
        ("zstd", "zstd"),
        ("gzip,br", "gzip, br"),
        ("deflate-raw,zstd,gzip", "deflate, zstd, gzip"),
    ],
)
async def test_encoded(server: Server, codings: str, label: str) -> None:
    with trio.fail_after(5):
        response, body = await fetch(server, f"/encoded/{codings}?n=5000")
        assert header(response, "Content-Encoding") == label
        for coding in reversed(codings.split(",")):
            body = _decode(body, coding)
        assert body == pattern(5000)


async def test_encoded_errors(server: Server) -> None:
    with trio.fail_after(5):
        response, _ = await fetch(server, "/encoded/compress")
        assert response.status_code == 400
        response, _ = await fetch(server, "/encoded/,")
        assert response.status_code == 400


async def test_headers_route(server: Server) -> None:
    with trio.fail_after(5):
        response, _ = await fetch(server, "/headers?X-Latin=%C3%A9")
        assert header(response, "X-Latin") == "\xe9"
        response, _ = await fetch(server, "/headers?X-Greek=%CE%B1")
        assert response.status_code == 500  # not encodable as Latin-1
        assert len(server.errors) == 1
        response, body = await fetch(
            server, "/headers?X-A=1&Set-Cookie=a%3Db&Set-Cookie=c"
        )
        assert body == b"ok"
        pairs = [(k, v) for k, v in response.headers if k in (b"x-a", b"set-cookie")]
        assert pairs == [(b"x-a", b"1"), (b"set-cookie", b"a=b"), (b"set-cookie", b"c")]


# -- /fail ------------------------------------------------------------------------


async def test_fail_reset(server: Server) -> None:
    with trio.fail_after(5):
        for _ in range(2):
            async with await connect(server) as stream:
                await stream.send_all(get("/fail/2?key=r"))
                with pytest.raises(trio.BrokenResourceError):
                    await read_to_eof(stream)
        response, body = await fetch(server, "/fail/2?key=r")
        assert response.status_code == 200
        assert json.loads(body)["path"] == "/fail/2"
        assert server.fail_counts["r"] == 3


async def test_fail_close_and_503(server: Server) -> None:
    with trio.fail_after(5):
        assert await raw_exchange(server, get("/fail/1?key=c&mode=close")) == b""
        response, _ = await fetch(server, "/fail/1?key=c&mode=close")
        assert response.status_code == 200
        response, _ = await fetch(server, "/fail/1?key=s&mode=503&retry_after=3")
        assert response.status_code == 503
        assert header(response, "Retry-After") == "3"
        response, _ = await fetch(server, "/fail/1?key=s&mode=503")
        assert response.status_code == 200
        response, _ = await fetch(server, "/fail/1?mode=503")  # the empty key
        assert response.status_code == 503
        assert header(response, "Retry-After") is None
        response, _ = await fetch(server, "/fail/1?mode=explode")
        assert response.status_code == 400
        assert server.fail_counts == {"c": 2, "s": 2, "": 1}


# -- fault routes --------------------------------------------------------------


async def test_stall(server: Server) -> None:
    with trio.fail_after(5):
        async with await connect(server) as stream:
            await stream.send_all(get("/fault/stall"))
            with trio.move_on_after(0.2) as scope:
                await stream.receive_some(65536)
            assert scope.cancelled_caught
            assert server.open_connections == 1
        await server.wait_until(lambda s: s.open_connections == 0)


async def test_stall_body(server: Server) -> None:
    with trio.fail_after(5):
        async with await connect(server) as stream:
            await stream.send_all(get("/fault/stall-body?n=100&sent=30"))
            received = b""
            with trio.move_on_after(0.2):
                while True:
                    received += await stream.receive_some(65536)
            head, _, body = received.partition(b"\r\n\r\n")
            assert b"Content-Length: 100" in head
            assert body == pattern(30)


async def test_drip(server: Server) -> None:
    with trio.fail_after(5):
        start = trio.current_time()
        response, body = await fetch(server, "/fault/drip?n=5&delay=0.02")
        assert trio.current_time() - start >= 0.1
        assert body == pattern(5)
        response, body = await fetch(server, "/fault/drip?n=0")
        assert body == b""
        for bad in ("delay=-1", "delay=x", "n=-1", "delay=nan"):
            response, _ = await fetch(server, f"/fault/drip?{bad}")
            assert response.status_code == 400, bad


@pytest.mark.parametrize("route", ["close-mid-body", "wrong-length"])
async def test_close_mid_body(server: Server, route: str) -> None:
    with trio.fail_after(5):
        raw = await raw_exchange(server, get(f"/fault/{route}?n=100&sent=40"))
        head, _, body = raw.partition(b"\r\n\r\n")
        assert b"Content-Length: 100" in head
        assert body == pattern(40)
        raw = await raw_exchange(server, get(f"/fault/{route}"))
        assert raw.partition(b"\r\n\r\n")[2] == pattern(512)
        async with await connect(server) as stream:
            client = Client(stream)
            await client.send_request("GET", f"/fault/{route}")
            with pytest.raises(h11.RemoteProtocolError):
                await client.read_response()
        response, _ = await fetch(server, f"/fault/{route}?n=10&sent=11")
        assert response.status_code == 400


async def test_reset(server: Server) -> None:
    with trio.fail_after(5):
        async with await connect(server) as stream:
            await stream.send_all(get("/fault/reset"))
            with pytest.raises(trio.BrokenResourceError):
                await stream.receive_some(65536)


async def test_reset_mid_body(server: Server) -> None:
    with trio.fail_after(5):
        async with await connect(server) as stream:
            await stream.send_all(get("/fault/reset-mid-body?n=100000&sent=100"))
            received, error = await read_until_error(stream)
            assert isinstance(error, trio.BrokenResourceError)
            # Whatever arrived before the reset is the promised prefix.
            assert pattern(100).startswith(received.partition(b"\r\n\r\n")[2])


async def test_malformed_status(server: Server) -> None:
    with trio.fail_after(5):
        assert await raw_exchange(server, get("/fault/malformed-status")) == (
            b"HTTP/1.1 abc Nope\r\n\r\n"
        )
        async with await connect(server) as stream:
            client = Client(stream)
            await client.send_request("GET", "/fault/malformed-status")
            with pytest.raises(h11.RemoteProtocolError):
                await client.read_response()


async def test_bad_chunk(server: Server) -> None:
    with trio.fail_after(5):
        raw = await raw_exchange(server, get("/fault/bad-chunk"))
        assert b"Transfer-Encoding: chunked" in raw
        assert raw.endswith(b"\r\nzz\r\nworld\r\n")
        async with await connect(server) as stream:
            client = Client(stream)
            await client.send_request("GET", "/fault/bad-chunk")
            with pytest.raises(h11.RemoteProtocolError):
                await client.read_response()


async def test_truncated_chunked(server: Server) -> None:
    with trio.fail_after(5):
        raw = await raw_exchange(server, get("/fault/truncated-chunked"))
        assert raw.endswith(b"a\r\nnever ends\r\n")
        async with await connect(server) as stream:
            client = Client(stream)
            await client.send_request("GET", "/fault/truncated-chunked")
            with pytest.raises(h11.RemoteProtocolError):
                await client.read_response()


async def test_huge_header(server: Server) -> None:
    with trio.fail_after(5):
        response, body = await fetch(server, "/fault/huge-header")
        assert header(response, "X-Huge") == "h" * 128 * 1024
        assert body == b"ok"
        response, _ = await fetch(server, "/fault/huge-header?size=10")
        assert header(response, "X-Huge") == "h" * 10


async def test_early_response_during_upload(server: Server) -> None:
    with trio.fail_after(5):
        async with await connect(server) as stream:
            await stream.send_all(
                b"POST /fault/early-response HTTP/1.1\r\nHost: x\r\n"
                b"Content-Length: 50000000\r\n\r\n" + b"u" * 100_000
            )
            received = b""
            async with trio.open_nursery() as nursery:

                async def upload_more() -> None:
                    # The server keeps reading, so this neither blocks nor fails.
                    for _ in range(20):
                        await stream.send_all(b"u" * 100_000)

                nursery.start_soon(upload_more)
                while b"answered early" not in received:
                    received += await stream.receive_some(65536)
            await stream.send_eof()
            received += await read_to_eof(stream)
        assert received.startswith(b"HTTP/1.1 413 ")
        assert b"Connection: close" in received
        assert server.requests[0].body == b""


async def test_early_response_lingers_at_most_a_second(server: Server) -> None:
    with trio.fail_after(5):
        async with await connect(server) as stream:
            await stream.send_all(get("/fault/early-response?status=403"))
            # The response, then at once the server's FIN (a half-close).
            raw = await read_to_eof(stream)
            assert raw.startswith(b"HTTP/1.1 403 ")
            # This side stays open; the server gives up lingering after 1 s.
            start = trio.current_time()
            await server.wait_until(lambda s: s.open_connections == 0)
            assert 0.9 <= trio.current_time() - start < 3
        response, _ = await fetch(server, "/fault/early-response?status=1")
        assert response.status_code == 400


async def test_garbage_after_body(server: Server) -> None:
    with trio.fail_after(5):
        async with await connect(server) as stream:
            await stream.send_all(get("/fault/garbage-after-body"))
            received = b""
            while not received.endswith(b"\r\n\r\nok" + GARBAGE):
                received += await stream.receive_some(65536)
            assert received.startswith(b"HTTP/1.1 200 OK\r\n")
            # The connection is still open: the server waits for a request.
            with trio.move_on_after(0.1) as scope:
                await stream.receive_some(65536)
            assert scope.cancelled_caught


GARBAGE = b"GARBAGE after the response\r\n"


async def test_close_after_response(server: Server) -> None:
    with trio.fail_after(5):
        async with await connect(server) as stream:
            client = Client(stream)
            response, body = await client.request("GET", "/fault/close-after-response")
            assert header(response, "Connection") == "close"
            assert body == b"closing now"
            assert await read_to_eof(stream) == b""


# -- custom handlers --------------------------------------------------------------


async def test_custom_routes(server: Server) -> None:
    @server.route("/hello")
    async def hello(request: Request) -> Response:
        return Response.text(f"hello {request.param('name')}", headers=[("X-A", "1")])

    async def override(request: Request) -> Response:
        return Response(202, body=b"mine")

    server.add_route("/echo", override)

    async def generate() -> AsyncIterator[bytes]:
        for part in (b"a", b"", b"bc"):
            await trio.lowlevel.checkpoint()
            yield part

    @server.route("/stream")
    async def stream_route(request: Request) -> Response:
        return Response(chunks=generate(), reason="Fine")

    @server.route("/big")
    async def big(request: Request) -> Response:
        return Response(body=pattern(3 << 20))

    @server.route("/bad")
    async def bad(request: Request) -> Response:
        raise BadRequest("nope")

    with trio.fail_after(5):
        response, body = await fetch(server, "/hello?name=you")
        assert (response.status_code, body) == (200, b"hello you")
        assert header(response, "Content-Type") == "text/plain; charset=utf-8"
        assert header(response, "X-A") == "1"
        response, body = await fetch(server, "/echo")
        assert (response.status_code, body) == (202, b"mine")
        response, body = await fetch(server, "/stream")
        assert (response.reason, body) == (b"Fine", b"abc")
        assert header(response, "Transfer-Encoding") == "chunked"
        response, body = await fetch(server, "/big")
        assert body == pattern(3 << 20)
        response, body = await fetch(server, "/bad")
        assert (response.status_code, body) == (400, b"nope")
        assert server.errors == []


async def test_handler_exception_gives_500(server: Server) -> None:
    @server.route("/boom")
    async def boom(request: Request) -> Response:
        raise RuntimeError("boom")

    def failing_chunks() -> Iterator[bytes]:
        yield b"sent"
        yield b"held back until the next chunk"
        raise RuntimeError("mid-body")

    @server.route("/boom-later")
    async def boom_later(request: Request) -> Response:
        return Response(chunks=failing_chunks())

    with trio.fail_after(5):
        async with await connect(server) as stream:
            client = Client(stream)
            response, body = await client.request("GET", "/boom")
            assert body == b"Internal Server Error"
            assert response.status_code == 500
            response, _ = await client.request("POST", "/boom", body=b"x")
            assert response.status_code == 500
            response, _ = await client.request("GET", "/echo")
            assert header(response, "X-Request-Number") == "3"
        raw = await raw_exchange(server, get("/boom-later"))
        assert raw.endswith(b"4\r\nsent\r\n")  # cut off, no terminating chunk
        assert [str(exc) for exc in server.errors] == ["boom", "boom", "mid-body"]


async def test_raw_routes(server: Server) -> None:
    @server.raw_route("/upload", read_body=False)
    async def upload(request: Request, conn: RawConnection) -> None:
        assert request.body == b""
        body = await conn.receive_body()
        assert await conn.receive_body() == b""
        await conn.start_response(200, [("Content-Length", str(len(body)))])
        await conn.send_events(h11.Data(data=body), h11.EndOfMessage())

    @server.raw_route("/upload-again", read_body=False)
    async def upload_again(request: Request, conn: RawConnection) -> None:
        await conn.receive_body()

    @server.raw_route("/ignore-body", read_body=False)
    async def ignore_body(request: Request, conn: RawConnection) -> None:
        await conn.send_response(Response(body=b"ignored"))

    @server.raw_route("/nothing")
    async def nothing(request: Request, conn: RawConnection) -> None:
        pass

    async def half_then_reset(request: Request, conn: RawConnection) -> None:
        await conn.start_response(200, [("Content-Length", "100")])
        await conn.send(b"x" * 50)
        await conn.reset()
        await conn.reset()  # a second close or reset does nothing
        await conn.close()

    server.add_raw_route("/half", half_then_reset)

    with trio.fail_after(5):
        async with await connect(server) as stream:
            client = Client(stream)
            for path in ("/upload", "/ignore-body", "/upload"):
                response, body = await client.request("POST", path, body=b"data")
                assert header(response, "X-Connection-Id") == "1"
            assert body == b"data"
        assert await raw_exchange(server, get("/nothing")) == b""
        async with await connect(server) as stream:
            await stream.send_all(
                b"POST /upload-again HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nab"
            )
            await stream.send_eof()
            raw = await read_to_eof(stream)
            assert raw.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        async with await connect(server) as stream:
            await stream.send_all(get("/half"))
            with pytest.raises(trio.BrokenResourceError):
                await read_to_eof(stream)


async def test_concurrent_connections(server: Server) -> None:
    seen: list[tuple[str | None, str | None]] = []

    async def user() -> None:
        async with await connect(server) as stream:
            client = Client(stream)
            for _ in range(3):
                response, body = await client.request("GET", "/bytes/1000")
                assert body == pattern(1000)
                seen.append(
                    (
                        header(response, "X-Connection-Id"),
                        header(response, "X-Request-Number"),
                    )
                )

    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            for _ in range(200):
                nursery.start_soon(user)
        assert server.connections_opened == 200
        assert len(set(seen)) == 600
        await server.wait_until(lambda s: s.open_connections == 0)


# -- idle connections -------------------------------------------------------------


async def test_idle_close_after() -> None:
    with trio.fail_after(5):
        async with open_server(idle_close_after=0.2) as server:
            async with await connect(server) as stream:
                client = Client(stream)
                await client.request("GET", "/echo")
                start = trio.current_time()
                assert await read_to_eof(stream) == b""
                assert 0.15 <= trio.current_time() - start < 2
            # A connection that never sends anything is idle too.
            async with await connect(server) as stream:
                assert await read_to_eof(stream) == b""
            # A slow request does not count as idle.
            async with await connect(server) as stream:
                await stream.send_all(b"GET /echo HTTP/1.1\r\n")
                await trio.sleep(0.4)
                await stream.send_all(b"Host: x\r\nConnection: close\r\n\r\n")
                raw = await read_to_eof(stream)
                assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
            assert server.open_connections <= 1


async def test_close_idle_connections(server: Server) -> None:
    with trio.fail_after(5):
        async with (
            await connect(server) as idle_stream,
            await connect(server) as busy_stream,
        ):
            client = Client(idle_stream)
            await client.request("GET", "/echo")
            await busy_stream.send_all(get("/fault/stall"))
            await server.wait_until(lambda s: len(s.requests) == 2)
            # Called right after the response arrived, maybe before the
            # server task has looped back to waiting: it must still count.
            assert server.close_idle_connections() == 1
            assert server.close_idle_connections() == 0
            assert await read_to_eof(idle_stream) == b""
            with trio.move_on_after(0.1) as scope:
                await busy_stream.receive_some(65536)
            assert scope.cancelled_caught
            assert server.open_connections == 1


# -- TLS -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_server(ca: trustme.CA) -> AsyncIterator[Server]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    async with open_server(ssl_context=context) as running:
        yield running


async def tls_connect(
    server: Server, context: ssl.SSLContext
) -> trio.SSLStream[trio.SocketStream]:
    return await trio.open_ssl_over_tcp_stream(
        server.host, server.port, ssl_context=context, https_compatible=True
    )


async def test_tls(tls_server: Server, ca: trustme.CA) -> None:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with trio.fail_after(5):
        assert tls_server.url == f"https://127.0.0.1:{tls_server.port}"
        async with await tls_connect(tls_server, context) as stream:
            client = Client(stream)
            for number in (1, 2):
                response, body = await client.request("POST", "/echo", body=b"secret")
                assert json.loads(body)["body"] == "secret"
                assert header(response, "X-Request-Number") == str(number)
            response, body = await client.request("GET", "/bytes/200000")
            assert body == pattern(200_000)
        async with await tls_connect(tls_server, context) as stream:
            client = Client(stream)
            await client.send_request("GET", "/fault/close-mid-body?n=10&sent=4")
            with pytest.raises(h11.RemoteProtocolError):
                await client.read_response()
        async with await tls_connect(tls_server, context) as stream:
            await stream.send_all(get("/fault/reset"))
            with pytest.raises(trio.BrokenResourceError):
                await stream.receive_some(65536)
        async with await tls_connect(tls_server, context) as stream:
            await stream.send_all(get("/fault/early-response"))
            raw = await stream.receive_some(65536)
            assert raw.startswith(b"HTTP/1.1 413 ")
        assert tls_server.errors == []


async def test_tls_handshake_failures_do_not_hurt(
    tls_server: Server, ca: trustme.CA
) -> None:
    with trio.fail_after(5):
        # Garbage instead of a ClientHello.
        assert await raw_exchange(tls_server, get("/echo")) == b""
        # A client that does not trust the server's certificate.
        untrusting = ssl.create_default_context()
        stream = await tls_connect(tls_server, untrusting)
        with pytest.raises(trio.BrokenResourceError):
            await stream.do_handshake()
        await trio.aclose_forcefully(stream)
        # A client that connects and leaves.
        await (await connect(tls_server)).aclose()
        trusting = ssl.create_default_context()
        ca.configure_trust(trusting)
        async with await tls_connect(tls_server, trusting) as good:
            response, _ = await Client(good).request("GET", "/echo")
            assert response.status_code == 200
        assert tls_server.errors == []
