"""Early responses: the server answers before the upload has been sent.

The transport is two one-way memory streams stapled together, so each
direction can be given TCP-like behaviour: server-to-client is buffered (an
answer fits in the socket buffer even while the client is busy sending), and
client-to-server is either buffered too or *lockstep* (``send_all`` returns only
once the server has read the bytes: a server that stops reading stops the
upload, as a full TCP window would).

Under the autojump clock, with ``Timeout(read=READ_TIMEOUT)``, a stall costs
virtual seconds only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import h11
import pytest
import trio
import trio.testing

from trio_pool import HTTPConnectionPool, MaxRetryError, ProtocolError, Retry, Timeout
from trio_pool._connection import ConnState

READ_TIMEOUT = 5.0
UPLOAD = [b"u" * 65536] * 64  # 4 MiB in 64 pieces, sent chunked

Scenario = Callable[[trio.abc.Stream, h11.Connection, int], Awaitable[None]]


class UploadPool(HTTPConnectionPool):
    """A pool whose connections lead to ``scenario``, one task per connection.

    Args:
        servers: the nursery the server side runs in.
        scenario: called with the server's stream, its h11 connection (the
            request head already read) and the connection's number (from 1).
        lockstep_upload: client-to-server bytes are not buffered.
    """

    def __init__(
        self,
        servers: trio.Nursery,
        scenario: Scenario,
        *,
        lockstep_upload: bool = False,
        **kw: object,
    ) -> None:
        kw.setdefault("timeout", Timeout(read=READ_TIMEOUT))
        super().__init__("upload.test", dial=self._dial, **kw)  # type: ignore[arg-type]
        self.servers = servers
        self.scenario = scenario
        self.lockstep_upload = lockstep_upload
        self.opened = 0
        self.requests: list[bytes] = []

    async def _dial(self, host: str, port: int) -> trio.abc.Stream:
        await trio.lowlevel.checkpoint()
        if self.lockstep_upload:
            up_send, up_receive = trio.testing.lockstep_stream_one_way_pair()
        else:
            up_send, up_receive = trio.testing.memory_stream_one_way_pair()
        down_send, down_receive = trio.testing.memory_stream_one_way_pair()
        self.opened += 1
        server = trio.StapledStream(down_send, up_receive)
        self.servers.start_soon(self._serve, server, self.opened)
        return trio.StapledStream(up_send, down_receive)

    async def _serve(self, stream: trio.abc.Stream, number: int) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(bytes(await stream.receive_some(65536)))
                    continue
                if not isinstance(event, h11.Request):
                    return
                self.requests.append(event.method + b" " + event.target)
                await self.scenario(stream, conn, number)
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            return
        finally:
            await trio.aclose_forcefully(stream)


def respond(
    conn: h11.Connection, status: int, body: bytes, *, close: bool = False
) -> bytes:
    headers = [("Content-Length", str(len(body)))]
    if close:
        headers.append(("Connection", "close"))
    out = [
        conn.send(h11.Response(status_code=status, headers=headers)),
        conn.send(h11.Data(data=body)),
        conn.send(h11.EndOfMessage()),
    ]
    return b"".join(part for part in out if part)


async def drain_body(stream: trio.abc.Stream, conn: h11.Connection) -> int:
    """Read (and count) the rest of the request body."""
    size = 0
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(bytes(await stream.receive_some(65536)))
        elif isinstance(event, h11.Data):
            size += len(event.data)
        else:
            return size


async def answer_then_close(
    stream: trio.abc.Stream, conn: h11.Connection, number: int
) -> None:
    await stream.send_all(respond(conn, 413, b"too large", close=True))
    await stream.aclose()


async def answer_then_drain(
    stream: trio.abc.Stream, conn: h11.Connection, number: int
) -> None:
    """Answers at once but reads the whole upload: the exchange completes, and
    the connection may carry another request."""
    await stream.send_all(respond(conn, 413, b"too large"))
    await drain_body(stream, conn)


async def answer_then_stop_reading(
    stream: trio.abc.Stream, conn: h11.Connection, number: int
) -> None:
    """Answers at once, then neither reads nor closes (until the client does)."""
    await stream.send_all(respond(conn, 413, b"too large", close=True))
    await trio.sleep_forever()


async def never_read(
    stream: trio.abc.Stream, conn: h11.Connection, number: int
) -> None:
    """Neither reads the body nor answers."""
    await trio.sleep_forever()


async def answer_while_reading(
    stream: trio.abc.Stream, conn: h11.Connection, number: int
) -> None:
    """A full-duplex server: a 200 head at once, then the body is read, then
    the response body (which depends on the upload) is sent."""
    head = h11.Response(status_code=200, headers=[("Transfer-Encoding", "chunked")])
    await stream.send_all(conn.send(head) or b"")
    size = await drain_body(stream, conn)
    out = [conn.send(h11.Data(data=b"got %d" % size)), conn.send(h11.EndOfMessage())]
    await stream.send_all(b"".join(part for part in out if part))


async def reset_first_then_ok(
    stream: trio.abc.Stream, conn: h11.Connection, number: int
) -> None:
    """The first connection is dropped without a word; later ones answer."""
    if number == 1:
        await trio.aclose_forcefully(stream)
        return
    size = await drain_body(stream, conn)
    await stream.send_all(respond(conn, 200, b"got %d" % size))


async def half_a_head(
    stream: trio.abc.Stream, conn: h11.Connection, number: int
) -> None:
    await stream.send_all(b"HTTP/1.1 413 Payload Too")
    await stream.aclose()


def assert_settled(pool: UploadPool) -> None:
    stats = pool.statistics()
    assert (stats.in_use, stats.waiting, stats.tokens_free) == (0, 0, pool.maxsize)
    assert all(conn.state is ConnState.IDLE for conn in pool._idle)


async def test_answer_then_close_is_returned_and_not_reused(
    servers: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(60):
        async with UploadPool(servers, answer_then_close) as pool:
            response = await pool.request("POST", "/upload", body=UPLOAD)
            assert (response.status, response.data) == (413, b"too large")
            await trio.testing.wait_all_tasks_blocked()
            assert_settled(pool)
            assert pool.statistics().idle == 0
            await pool.request("POST", "/upload", body=UPLOAD)
            assert pool.opened == 2
            assert pool.requests == [b"POST /upload"] * 2


async def test_answer_then_close_streamed(
    servers: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(60):
        async with UploadPool(servers, answer_then_close) as pool:
            response = await pool.request(
                "PUT", "/upload", body=iter(UPLOAD), preload_content=False
            )
            assert response.status == 413
            assert [piece async for piece in response.stream(2)] == [
                b"to",
                b"o ",
                b"la",
                b"rg",
                b"e",
            ]
            await trio.testing.wait_all_tasks_blocked()
            assert_settled(pool)


async def test_an_early_error_status_is_returned_every_time(
    servers: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """The server answers 413 at once, then reads the upload anyway. Whether
    the client finishes the upload (and may reuse the connection) or stops it
    (allowed on an error status, closing the connection), the answer is the
    413 and the pool stays exact."""
    with trio.fail_after(60):
        async with UploadPool(servers, answer_then_drain) as pool:
            for _ in range(3):
                response = await pool.request("POST", "/upload", body=UPLOAD)
                assert (response.status, response.data) == (413, b"too large")
                await trio.testing.wait_all_tasks_blocked()
                assert_settled(pool)
            assert pool.statistics().created == pool.opened


async def test_answer_then_stop_reading_is_returned(
    servers: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """The answer is there; the upload cannot proceed. The caller gets the
    413 (what "early-response handling" promises), not a write timeout —
    and, without a timeout, not a hang."""
    for timeout in (Timeout(read=READ_TIMEOUT), None):
        with trio.fail_after(60):
            async with UploadPool(
                servers, answer_then_stop_reading, lockstep_upload=True
            ) as pool:
                response = await pool.request(
                    "POST", "/upload", body=UPLOAD, retries=False, timeout=timeout
                )
                assert (response.status, response.data) == (413, b"too large")
                await trio.testing.wait_all_tasks_blocked()
                assert_settled(pool)


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
async def test_a_success_head_during_the_upload_does_not_stop_it(
    servers: trio.Nursery, autojump_clock: trio.testing.MockClock, framing: str
) -> None:
    """A full-duplex server answers 200 first and reads the body after. A
    client may stop sending on an error status (RFC 2616 8.2.2, RFC 9112
    9.3's "does not wish to receive the message body"), not on a 2xx: the
    upload must go on, or the server waits for it while the client waits
    for the response body."""
    size = sum(map(len, UPLOAD))
    headers = {"Content-Length": str(size)} if framing == "content-length" else {}
    with trio.fail_after(60):
        async with UploadPool(
            servers, answer_while_reading, lockstep_upload=True
        ) as pool:
            response = await pool.request(
                "POST", "/upload", body=UPLOAD, headers=headers, retries=False
            )
            assert (response.status, response.data) == (200, b"got %d" % size)
            await trio.testing.wait_all_tasks_blocked()
            assert_settled(pool)


async def test_cancelling_a_blocked_upload_leaves_the_pool_exact(
    servers: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    async with UploadPool(servers, never_read, lockstep_upload=True) as pool:
        with trio.move_on_after(1) as scope:
            await pool.request("POST", "/upload", body=UPLOAD, timeout=None)
        assert scope.cancelled_caught
        await trio.testing.wait_all_tasks_blocked()
        assert_settled(pool)
        assert pool.statistics().idle == 0


@pytest.mark.parametrize(("method", "retried"), [("POST", False), ("PUT", True)])
async def test_a_drop_without_an_answer_is_an_error_retried_only_if_idempotent(
    servers: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    method: str,
    retried: bool,
) -> None:
    with trio.fail_after(60):
        async with UploadPool(servers, reset_first_then_ok) as pool:
            if retried:
                response = await pool.request(method, "/upload", body=b"x" * 1000)
                assert (response.status, response.data) == (200, b"got 1000")
            else:
                with pytest.raises(ProtocolError):
                    await pool.request(method, "/upload", body=UPLOAD)
            assert len(pool.requests) == 1 + retried
            await trio.testing.wait_all_tasks_blocked()
            assert_settled(pool)


@pytest.mark.parametrize(("method", "attempts"), [("POST", 1), ("PUT", 3)])
async def test_half_an_answer_is_a_protocol_error(
    servers: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    method: str,
    attempts: int,
) -> None:
    """Not an early response: the send error stands (a PUT is retried, then
    gives up with MaxRetryError caused by it)."""
    with trio.fail_after(60):
        async with UploadPool(servers, half_a_head) as pool:
            with pytest.raises((ProtocolError, MaxRetryError)) as caught:
                await pool.request(method, "/upload", body=UPLOAD, retries=Retry(2))
            error = caught.value
            if isinstance(error, MaxRetryError):
                error = error.reason  # type: ignore[assignment]
            assert isinstance(error, ProtocolError)
            assert isinstance(caught.value, MaxRetryError) == (method == "PUT")
            assert len(pool.requests) == attempts
            await trio.testing.wait_all_tasks_blocked()
            assert_settled(pool)
