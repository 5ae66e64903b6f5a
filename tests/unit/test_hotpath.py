"""The lean exchange path keeps every behaviour: real loopback TCP servers
that write raw bytes, so the head and the body arrive in separate reads.

* A Content-Length body that did not come with the head is read straight
  from the stream (not through h11): it must be byte-exact, end the
  exchange, leave the connection reusable (or not, on ``Connection: close``),
  and treat a short body and stray bytes after it as before.
* h11's validation of a header set is remembered; the wire bytes must not
  change, and a set h11 refuses is still refused.
* A read-timeout scope is skipped only where an enclosing deadline comes
  first: a streamed body read after ``request()`` returned still has its
  read timeout.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Awaitable, Callable

import pytest
import trio

from trio_pool import (
    HTTPConnectionPool,
    IncompleteRead,
    InvalidHeader,
    ProtocolError,
    ReadTimeoutError,
    Timeout,
)

Respond = Callable[[trio.SocketStream, int], Awaitable[bool]]
BODY = os.urandom(700_000)


async def _read_head(stream: trio.SocketStream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return b""
        data += chunk
    return data


async def start_server(
    nursery: trio.Nursery, respond: Respond, heads: list[bytes] | None = None
) -> int:
    """A raw server on 127.0.0.1; ``respond(stream, n)`` answers the n-th
    request (counted over all connections) and returns whether to keep the
    connection open."""
    number = 0

    async def handle(stream: trio.SocketStream) -> None:
        nonlocal number
        try:
            while True:
                head = await _read_head(stream)
                if not head:
                    return
                if heads is not None:
                    heads.append(head)
                number += 1
                if not await respond(stream, number):
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        finally:
            await trio.aclose_forcefully(stream)

    listeners = await nursery.start(
        functools.partial(trio.serve_tcp, handle, 0, host="127.0.0.1")
    )
    port: int = listeners[0].socket.getsockname()[1]
    return port


def _head(length: int, *extra: str) -> bytes:
    lines = ["HTTP/1.1 200 OK", f"Content-Length: {length}", *extra, "", ""]
    return "\r\n".join(lines).encode()


async def _send_split(
    stream: trio.SocketStream, data: bytes, *, tail: bytes = b""
) -> None:
    """The head and a little of the body at once, the rest later in pieces."""
    await stream.send_all(data[:200])
    await trio.sleep(0.02)
    rest = data[200:]
    for start in range(0, len(rest), 250_000):
        await stream.send_all(rest[start : start + 250_000])
        await trio.sleep(0.005)
    if tail:
        await stream.send_all(tail)


async def test_body_read_past_h11_is_exact_and_reused(nursery: trio.Nursery) -> None:
    async def respond(stream: trio.SocketStream, number: int) -> bool:
        await _send_split(stream, _head(len(BODY)) + BODY)
        return True

    port = await start_server(nursery, respond)
    async with HTTPConnectionPool("127.0.0.1", port) as pool:
        first = await pool.request("GET", "/")
        assert first.data == BODY
        streamed = await pool.request("GET", "/", preload_content=False)
        pieces = [piece async for piece in streamed.stream(65536)]
        assert b"".join(pieces) == BODY
        assert max(map(len, pieces)) <= 65536
        assert streamed.tell() == len(BODY)
        stats = pool.statistics()
        assert (stats.created, stats.reused, stats.idle) == (1, 1, 1)


async def test_connection_close_after_body_read_past_h11(nursery: trio.Nursery) -> None:
    async def respond(stream: trio.SocketStream, number: int) -> bool:
        await _send_split(stream, _head(len(BODY), "Connection: close") + BODY)
        return False

    port = await start_server(nursery, respond)
    async with HTTPConnectionPool("127.0.0.1", port) as pool:
        for _ in range(2):
            assert (await pool.request("GET", "/")).data == BODY
        assert pool.statistics().created == 2


async def test_short_body_read_past_h11(nursery: trio.Nursery) -> None:
    async def respond(stream: trio.SocketStream, number: int) -> bool:
        if number == 1:
            await _send_split(stream, _head(len(BODY)) + BODY[:300_000])
            return False  # closes with 400,000 bytes missing
        await stream.send_all(_head(2) + b"ok")
        return True

    port = await start_server(nursery, respond)
    async with HTTPConnectionPool("127.0.0.1", port) as pool:
        response = await pool.request("GET", "/", preload_content=False)
        with pytest.raises(IncompleteRead) as caught:
            await response.read()
        assert (caught.value.partial, caught.value.expected) == (
            300_000,
            len(BODY) - 300_000,
        )
        assert (await pool.request("GET", "/")).data == b"ok"
        assert pool.statistics().created == 2


async def test_a_short_body_streamed_gives_what_came_then_incomplete_read(
    nursery: trio.Nursery,
) -> None:
    async def respond(stream: trio.SocketStream, number: int) -> bool:
        await _send_split(stream, _head(len(BODY)) + BODY[:100_000])
        return False  # closes 600,000 bytes short

    port = await start_server(nursery, respond)
    async with HTTPConnectionPool("127.0.0.1", port) as pool:
        response = await pool.request("GET", "/", preload_content=False)
        pieces: list[bytes] = []

        async def consume() -> None:
            async for piece in response.stream(65536):
                pieces.append(piece)

        with pytest.raises(IncompleteRead) as caught:
            await consume()
        assert b"".join(pieces) == BODY[:100_000]  # nothing that came is lost
        assert [len(p) for p in pieces] == [65536, 100_000 - 65536]
        assert caught.value.partial == 100_000
        with pytest.raises(ProtocolError):
            await response.read(10)


async def test_stray_bytes_after_body_read_past_h11(nursery: trio.Nursery) -> None:
    stray = _head(5) + b"STRAY"

    async def respond(stream: trio.SocketStream, number: int) -> bool:
        if number == 1:
            await _send_split(stream, _head(len(BODY)) + BODY, tail=stray)
            await trio.sleep(0.05)
            return True
        await stream.send_all(_head(2) + b"ok")
        return True

    port = await start_server(nursery, respond)
    async with HTTPConnectionPool("127.0.0.1", port) as pool:
        assert (await pool.request("GET", "/")).data == BODY
        await trio.sleep(0.1)  # the stray bytes are in the socket by now
        # They are not taken for the next response: that connection is dropped.
        assert (await pool.request("GET", "/")).data == b"ok"
        assert pool.statistics().created == 2


async def test_whole_small_response_in_one_write(nursery: trio.Nursery) -> None:
    # Head and body arrive together: the body comes from what h11 buffered.
    async def respond(stream: trio.SocketStream, number: int) -> bool:
        body = b"%05d" % number
        await stream.send_all(_head(5) + body)
        return True

    port = await start_server(nursery, respond)
    async with HTTPConnectionPool("127.0.0.1", port) as pool:
        for n in range(1, 4):
            response = await pool.request("GET", "/", preload_content=False)
            assert await response.read(2) == (b"%05d" % n)[:2]
            assert await response.read() == (b"%05d" % n)[2:]
        assert pool.statistics().created == 1


async def test_stray_bytes_in_the_same_write_as_the_body(
    nursery: trio.Nursery,
) -> None:
    async def respond(stream: trio.SocketStream, number: int) -> bool:
        if number == 1:
            await stream.send_all(_head(2) + b"ok" + _head(5) + b"STRAY")
            return True
        await stream.send_all(_head(4) + b"next")
        return True

    port = await start_server(nursery, respond)
    async with HTTPConnectionPool("127.0.0.1", port) as pool:
        assert (await pool.request("GET", "/")).data == b"ok"
        assert (await pool.request("GET", "/")).data == b"next"
        assert pool.statistics().created == 2


async def test_close_right_after_a_whole_body(nursery: trio.Nursery) -> None:
    # The body is complete and the server closed: the body is good, the
    # connection is not reused.
    async def respond(stream: trio.SocketStream, number: int) -> bool:
        await stream.send_all(_head(2) + b"ok")
        return False

    port = await start_server(nursery, respond)
    async with HTTPConnectionPool("127.0.0.1", port) as pool:
        for _ in range(3):
            assert (await pool.request("GET", "/")).data == b"ok"
        assert pool.statistics().created == 3


@pytest.mark.parametrize(
    ("method", "status"), [("HEAD", 200), ("GET", 204), ("GET", 304)]
)
async def test_no_body_despite_a_content_length(
    nursery: trio.Nursery, method: str, status: int
) -> None:
    # h11's framing rule: no body follows, whatever the Content-Length says.
    async def respond(stream: trio.SocketStream, number: int) -> bool:
        await stream.send_all(_head(100).replace(b"200 OK", b"%d X" % status))
        return True

    port = await start_server(nursery, respond)
    async with HTTPConnectionPool("127.0.0.1", port, timeout=2) as pool:
        for _ in range(2):
            response = await pool.request(method, "/", retries=False)
            assert (response.status, response.data) == (status, b"")
        stats = pool.statistics()
        assert (stats.created, stats.reused, stats.idle) == (1, 1, 1)


async def test_remembered_header_sets_go_out_unchanged(nursery: trio.Nursery) -> None:
    heads: list[bytes] = []

    async def respond(stream: trio.SocketStream, number: int) -> bool:
        await stream.send_all(_head(2) + b"ok")
        return True

    port = await start_server(nursery, respond, heads)
    headers = {"X-Token": "abc", "Accept": "*/*"}
    async with HTTPConnectionPool("127.0.0.1", port) as pool:
        for path in ("/a", "/b", "/a"):
            assert (await pool.request("GET", path, headers=headers)).data == b"ok"
        # A set that only h11 refuses (two Host lines) is refused every time.
        for _ in range(2):
            with pytest.raises(InvalidHeader):
                await pool.request("GET", "/", headers=[("Host", "a"), ("Host", "b")])
    assert heads[0] == heads[2]
    assert heads[0].replace(b"GET /a ", b"GET /b ") == heads[1]
    assert b"X-Token: abc\r\n" in heads[0]
    assert len(heads) == 3


async def test_read_timeout_kept_for_a_body_streamed_after_request(
    nursery: trio.Nursery,
) -> None:
    async def respond(stream: trio.SocketStream, number: int) -> bool:
        await stream.send_all(_head(100) + b"x" * 10)
        await trio.sleep(5)  # stalls mid-body
        return False

    port = await start_server(nursery, respond)
    async with HTTPConnectionPool("127.0.0.1", port, retries=False) as pool:
        # Within the attempt, the total deadline ends the wait.
        with trio.fail_after(3):
            with pytest.raises(ReadTimeoutError, match="total timeout"):
                await pool.request("GET", "/", timeout=Timeout(total=0.3))
        # A read limit shorter than the total still fires on its own.
        with trio.fail_after(3):
            with pytest.raises(ReadTimeoutError, match="Read timed out"):
                await pool.request("GET", "/", timeout=Timeout(total=30, read=0.3))
        # After request() returned, the total's scope is gone: each wait
        # for the rest of the body is bounded by the read limit (= total).
        response = await pool.request(
            "GET", "/", timeout=Timeout(total=0.3), preload_content=False
        )
        with trio.fail_after(3):
            with pytest.raises(ReadTimeoutError, match="Read timed out"):
                await response.read()
