"""Tests for the HTTP/2 mode of trio_pool.testing (``open_h2_server``).

The client is deliberately primitive: h2's client-side state machine over
``trio.open_tcp_stream`` (or a ``trio.SSLStream``), with every byte the server
sends kept and parsed into frames with hyperframe, so that the tests assert
what is on the wire and do not depend on trio_pool's own client.
"""

from __future__ import annotations

import gzip
import json
import shutil
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h11
import pytest
import trio
import trustme
from h2.errors import ErrorCodes
from h2.settings import SettingCodes, Settings
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PushPromiseFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from trio_pool.testing import (
    H2Faults,
    H2Server,
    H2Stream,
    Request,
    Response,
    open_h2_server,
    pattern,
)

# -- a raw h2 client -------------------------------------------------------------------


class LenientH2Connection(h2.connection.H2Connection):
    """h2's client, except that a GOAWAY(NO_ERROR) leaves it open.

    Stock h2 closes its state machine on any GOAWAY, which would make the
    responses to streams up to ``last_stream_id`` impossible to read.
    """

    def _receive_goaway_frame(
        self, frame: GoAwayFrame
    ) -> tuple[list[Frame], list[Any]]:
        state = self.state_machine.state
        frames, events = super()._receive_goaway_frame(frame)
        if frame.error_code == 0:
            self.state_machine.state = state
        return frames, events


@dataclass
class Reply:
    """What the client got on one stream."""

    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    trailers: list[tuple[bytes, bytes]] | None = None
    ended: bool = False
    reset: int | None = None

    @property
    def status(self) -> int:
        return int(dict(self.headers)[b":status"])

    def header(self, name: bytes) -> bytes | None:
        return dict(self.headers).get(name)

    def json(self) -> Any:
        return json.loads(bytes(self.body))


def parse_frames(data: bytes) -> list[Frame]:
    """Split bytes from the server into hyperframe frames."""
    frames = []
    view = memoryview(data)
    while len(view) >= 9:
        frame, length = Frame.parse_frame_header(view[:9])
        if len(view) < 9 + length:
            break
        frame.parse_body(view[9 : 9 + length])
        frames.append(frame)
        view = view[9 + length :]
    return frames


class H2Client:
    """One client connection speaking HTTP/2 through h2."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        authority: bytes = b"127.0.0.1",
        scheme: bytes = b"http",
        auto_ack: bool = True,
    ) -> None:
        self.stream = stream
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.h2 = LenientH2Connection(config=config)
        self.authority = authority
        self.scheme = scheme
        self.auto_ack = auto_ack
        self.wire = bytearray()  # every byte the server sent
        self.events: list[Any] = []
        self.replies: dict[int, Reply] = {}
        self.eof = False
        self.was_reset = False  # the connection ended with a TCP reset
        self.no_ack: set[int] = set()  # streams whose DATA is never acknowledged

    async def start(self, settings: dict[int, int] | None = None) -> None:
        values = {SettingCodes.ENABLE_PUSH: 0, **(settings or {})}
        self.h2.local_settings = Settings(client=True, initial_values=values)  # type: ignore[arg-type]
        self.h2.initiate_connection()
        await self.flush()

    async def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            try:
                await self.stream.send_all(data)
            except trio.BrokenResourceError:
                self.eof = self.was_reset = True

    def send_request(
        self,
        path: str,
        method: str = "GET",
        headers: Sequence[tuple[str, str]] = (),
        body: bytes | None = None,
        *,
        end_stream: bool = True,
    ) -> int:
        sid = self.h2.get_next_available_stream_id()
        block = [
            (b":method", method.encode()),
            (b":scheme", self.scheme),
            (b":authority", self.authority),
            (b":path", path.encode()),
            *[(k.encode(), v.encode()) for k, v in headers],
        ]
        self.replies[sid] = Reply()
        no_body = body is None and end_stream
        self.h2.send_headers(sid, block, end_stream=no_body)
        if body is not None:
            self.h2.send_data(sid, body, end_stream=end_stream)
        return sid

    async def request(self, path: str, method: str = "GET", **kw: Any) -> Reply:
        sid = self.send_request(path, method, **kw)
        await self.flush()
        return await self.reply(sid)

    async def receive(self) -> list[Any]:
        """Read one chunk, feed h2, sort the events; flush h2's answers."""
        try:
            data = bytes(await self.stream.receive_some(65536))
        except trio.BrokenResourceError:
            self.was_reset = True
            data = b""
        if not data:
            self.eof = True
            return []
        self.wire += data
        events = self.h2.receive_data(data)
        for event in events:
            self._sort(event)
        self.events.extend(events)
        await self.flush()
        return events

    def _sort(self, event: Any) -> None:
        reply = self.replies.get(getattr(event, "stream_id", 0) or 0)
        if reply is None:
            return
        if isinstance(event, h2.events.ResponseReceived):
            reply.headers = list(event.headers)
        elif isinstance(event, h2.events.DataReceived):
            reply.body += event.data
            wanted = self.auto_ack and event.stream_id not in self.no_ack
            if wanted and event.flow_controlled_length:
                self.h2.acknowledge_received_data(
                    event.flow_controlled_length, event.stream_id
                )
        elif isinstance(event, h2.events.TrailersReceived):
            reply.trailers = list(event.headers)
        elif isinstance(event, h2.events.StreamEnded):
            reply.ended = True
        elif isinstance(event, h2.events.StreamReset):
            reply.reset = event.error_code

    async def until(self, condition: Any) -> None:
        with trio.fail_after(5):
            while not condition():
                await self.receive()
                if self.eof:
                    assert condition(), "connection closed first"

    async def reply(self, sid: int) -> Reply:
        reply = self.replies[sid]
        await self.until(lambda: reply.ended or reply.reset is not None)
        return reply

    async def upload(self, sid: int, body: bytes) -> None:
        """Send ``body`` on ``sid`` as the server's windows allow, then end it."""
        offset = 0
        while offset < len(body):
            window = self.h2.local_flow_control_window(sid)
            n = min(window, self.h2.max_outbound_frame_size, len(body) - offset)
            if n <= 0:
                await self.receive()
                assert not self.eof
                continue
            self.h2.send_data(sid, body[offset : offset + n])
            offset += n
            await self.flush()
        self.h2.end_stream(sid)
        await self.flush()

    def frames(self, kind: type[Frame] = Frame) -> list[Any]:
        return [f for f in parse_frames(bytes(self.wire)) if isinstance(f, kind)]

    def events_of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


def client_context(ca: trustme.CA, alpn: Sequence[str] = ("h2",)) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    context.set_alpn_protocols(list(alpn))
    return context


@asynccontextmanager
async def connect(
    server: H2Server,
    ssl_context: ssl.SSLContext | None = None,
    *,
    start: bool = True,
    **kw: Any,
) -> AsyncIterator[H2Client]:
    tcp = await trio.open_tcp_stream(server.host, server.port)
    stream: trio.abc.Stream = tcp
    scheme = b"http"
    if ssl_context is not None:
        stream = trio.SSLStream(tcp, ssl_context, server_hostname="127.0.0.1")
        await stream.do_handshake()
        scheme = b"https"
    client = H2Client(stream, scheme=scheme, **kw)
    try:
        if start:
            await client.start()
        yield client
    finally:
        await trio.aclose_forcefully(stream)


@pytest.fixture
async def h2c() -> AsyncIterator[H2Server]:
    async with open_h2_server() as server:
        yield server


async def wait_closed(server: H2Server, connection_id: int = 1) -> None:
    with trio.fail_after(5):
        await server.wait_until(lambda s: not s.record(connection_id).open)


# -- well-behaved routes ---------------------------------------------------------------


async def test_h2c_echo_and_standard_headers(h2c: H2Server) -> None:
    async with connect(h2c) as client:
        reply = await client.request("/echo?a=1", headers=[("x-test", "yes")])
    assert reply.status == 200
    assert reply.header(b"x-connection-id") == b"1"
    assert reply.header(b"x-request-number") == b"1"
    assert reply.header(b"x-stream-id") == b"1"
    echoed = reply.json()
    assert echoed["method"] == "GET"
    assert echoed["http_version"] == "2"
    assert echoed["query"] == {"a": ["1"]}
    assert ["x-test", "yes"] in echoed["headers"]
    assert [":authority", "127.0.0.1"] in echoed["headers"]
    assert h2c.request_count == 1
    assert h2c.requests[0].http_version == "2"
    assert h2c.record(1).streams_opened == [1]
    assert h2c.url.startswith("http://")


async def test_tls_alpn_h2(server_context: ssl.SSLContext, ca: trustme.CA) -> None:
    async with open_h2_server(ssl_context=server_context) as server:
        async with connect(server, client_context(ca)) as client:
            reply = await client.request("/echo")
            assert isinstance(client.stream, trio.SSLStream)
            assert client.stream.selected_alpn_protocol() == "h2"
        assert reply.status == 200
        assert server.url.startswith("https://")
        assert server.record(1).alpn == "h2"
        assert server.record(1).protocol == "h2"


async def test_tls_alpn_fallback_to_http11(
    server_context: ssl.SSLContext, ca: trustme.CA
) -> None:
    async with open_h2_server(ssl_context=server_context) as server:

        @server.route("/mine")
        async def mine(request: Request) -> Response:
            return Response.text(f"hello over {request.http_version}")

        tcp = await trio.open_tcp_stream(server.host, server.port)
        context = client_context(ca, ("http/1.1",))
        stream = trio.SSLStream(tcp, context, server_hostname="127.0.0.1")
        async with stream:
            await stream.do_handshake()
            assert stream.selected_alpn_protocol() == "http/1.1"
            conn = h11.Connection(h11.CLIENT)
            request = h11.Request(method="GET", target="/mine", headers=[("Host", "x")])
            await stream.send_all(conn.send(request) + conn.send(h11.EndOfMessage()))
            events = await _read_h11_response(stream, conn)
        assert events[0].status_code == 200
        assert b"".join(e.data for e in events if isinstance(e, h11.Data)) == (
            b"hello over 1.1"
        )
        assert server.record(1).protocol == "http/1.1"
        assert server.record(1).alpn == "http/1.1"
        assert server.http1.request_count == 1
        assert server.request_count == 0


async def _read_h11_response(
    stream: trio.abc.Stream, conn: h11.Connection
) -> list[Any]:
    events: list[Any] = []
    with trio.fail_after(5):
        while not events or not isinstance(events[-1], h11.EndOfMessage):
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(bytes(await stream.receive_some(65536)))
            else:
                events.append(event)
    return events


async def test_large_body(h2c: H2Server) -> None:
    n = 1_000_003
    async with connect(h2c) as client:
        reply = await client.request(f"/bytes/{n}")
    assert reply.status == 200
    assert reply.header(b"content-length") == str(n).encode()
    assert bytes(reply.body) == pattern(n)
    data_frames = client.frames(DataFrame)
    assert max(len(f.data) for f in data_frames) <= 16384  # max_outbound_frame_size


async def test_echo_body_is_byte_exact(h2c: H2Server) -> None:
    body = bytes(range(256)) * 1200 + b"tail"
    async with connect(h2c) as client:
        sid = client.send_request("/echo-body", "POST", end_stream=False)
        await client.flush()
        await client.upload(sid, body)
        reply = await client.reply(sid)
    assert bytes(reply.body) == body
    assert h2c.record(1).data_received[sid] == len(body)


async def test_echo_reports_the_body(h2c: H2Server) -> None:
    async with connect(h2c) as client:
        reply = await client.request("/echo", "POST", body=b"hello\xff")
    assert reply.json()["body"] == "hello\xff"
    assert h2c.requests[0].body == b"hello\xff"


async def test_status_headers_and_redirects(h2c: H2Server) -> None:
    async with connect(h2c) as client:
        teapot = await client.request("/status/418?body=short")
        headers = await client.request("/headers?X-One=1&x-two=2")
        moved = await client.request("/redirect/307?to=/elsewhere")
        loop = await client.request("/redirect-loop")
        missing = await client.request("/nothing-here")
        head = await client.request("/bytes/100", "HEAD")
        gzipped = await client.request("/encoded/gzip?n=300")
    assert (teapot.status, bytes(teapot.body)) == (418, b"short")
    assert (headers.header(b"x-one"), headers.header(b"x-two")) == (b"1", b"2")
    assert (moved.status, moved.header(b"location")) == (307, b"/elsewhere")
    assert (loop.status, loop.header(b"location")) == (302, b"/redirect-loop")
    assert missing.status == 404
    assert head.header(b"content-length") == b"100" and head.body == b""
    assert gzipped.header(b"content-encoding") == b"gzip"
    assert gzip.decompress(bytes(gzipped.body)) == pattern(300)


async def test_trailers(h2c: H2Server) -> None:
    async with connect(h2c) as client:
        reply = await client.request("/trailers?grpc-status=0&x-sum=abc")
    assert bytes(reply.body) == b"ok"
    assert reply.trailers == [(b"grpc-status", b"0"), (b"x-sum", b"abc")]


async def test_drip_sends_one_byte_per_frame(h2c: H2Server) -> None:
    async with connect(h2c) as client:
        start = trio.current_time()
        reply = await client.request("/fault/drip?n=4&delay=0.05")
        elapsed = trio.current_time() - start
    assert bytes(reply.body) == pattern(4)
    assert [len(f.data) for f in client.frames(DataFrame)] == [1, 1, 1, 1]
    assert elapsed >= 0.2


async def test_delay_route(h2c: H2Server) -> None:
    async with connect(h2c) as client:
        start = trio.current_time()
        reply = await client.request("/delay/0.1")
    assert reply.status == 200 and trio.current_time() - start >= 0.1


async def test_user_routes_plain_and_raw(h2c: H2Server) -> None:
    @h2c.route("/plain")
    async def plain(request: Request) -> Response:
        return Response.json({"got": request.body.decode()}, status=201)

    @h2c.raw_route("/raw", read_body=False)
    async def raw(request: Request, stream: H2Stream) -> None:
        stream.send_headers(200, [("X-Raw", "1")])
        await stream.send_data(b"first ")
        stream.send_trailers([("x-done", "yes")])

    async with connect(h2c) as client:
        created = await client.request("/plain", "POST", body=b"ada")
        raw_reply = await client.request("/raw")
    assert (created.status, created.json()) == (201, {"got": "ada"})
    assert raw_reply.header(b"x-raw") == b"1"
    assert raw_reply.trailers == [(b"x-done", b"yes")]


async def test_handler_errors(h2c: H2Server) -> None:
    @h2c.route("/boom")
    async def boom(request: Request) -> Response:
        raise RuntimeError("boom")

    async with connect(h2c) as client:
        failed = await client.request("/boom")
        bad = await client.request("/bytes/abc")
        after = await client.request("/echo")
    assert failed.status == 500 and bad.status == 400 and after.status == 200
    assert [str(e) for e in h2c.errors] == ["boom"]


async def test_many_concurrent_streams(h2c: H2Server) -> None:
    async with connect(h2c) as client:
        sids = [client.send_request(f"/bytes/{10_000 + i}") for i in range(50)]
        await client.flush()
        for i, sid in enumerate(sids):
            reply = await client.reply(sid)
            assert bytes(reply.body) == pattern(10_000 + i)
    assert h2c.record(1).peak_active_streams > 1
    assert h2c.connections_opened == 1


async def test_a_slow_reader_throttles_only_its_own_stream(h2c: H2Server) -> None:
    async with connect(h2c, start=False) as client:
        # Big connection window, default 65,535-byte stream windows.
        await client.start()
        client.h2.increment_flow_control_window(1 << 24)
        slow = client.send_request("/bytes/200000")
        client.no_ack.add(slow)
        fast = client.send_request("/bytes/200000")
        await client.flush()
        reply = await client.reply(fast)
        assert bytes(reply.body) == pattern(200_000)
        assert len(client.replies[slow].body) == 65535  # its window, exactly
        assert not client.replies[slow].ended
        client.no_ack.clear()
        client.h2.acknowledge_received_data(65535, slow)
        await client.flush()
        assert bytes((await client.reply(slow)).body) == pattern(200_000)


# -- stalls, and what the recorder sees of the client ----------------------------------


async def test_stall_then_client_cancel_is_recorded(h2c: H2Server) -> None:
    async with connect(h2c) as client:
        sid = client.send_request("/fault/stall")
        await client.flush()
        await h2c.wait_until(lambda s: s.record(1).active_streams == 1)
        with trio.move_on_after(0.1) as scope:
            await client.reply(sid)
        assert scope.cancelled_caught
        client.h2.reset_stream(sid, ErrorCodes.CANCEL)
        await client.flush()
        with trio.fail_after(5):
            await h2c.wait_until(lambda s: s.record(1).resets_received != [])
        record = h2c.record(1)
        assert record.resets_received == [(1, ErrorCodes.CANCEL)]
        assert record.reset_code(1) == ErrorCodes.CANCEL
        assert record.active_streams == 0
        assert record.open  # a reset stream does not cost the connection
        reply = await client.request("/echo")
        assert reply.status == 200 and reply.header(b"x-stream-id") == b"3"
    assert [f.stream_id for f in client.frames(HeadersFrame)] == [3]  # none for 1


async def test_stall_body(h2c: H2Server) -> None:
    async with connect(h2c) as client:
        sid = client.send_request("/fault/stall-body?n=1000&sent=300")
        await client.flush()
        reply = client.replies[sid]
        await client.until(lambda: len(reply.body) == 300)
        with trio.move_on_after(0.1):
            await client.reply(sid)
        assert not reply.ended and reply.header(b"content-length") == b"1000"


async def test_recorder_sees_client_settings_window_updates_and_pings(
    h2c: H2Server,
) -> None:
    async with connect(h2c, start=False) as client:
        await client.start({SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
        client.h2.increment_flow_control_window(1 << 20)
        client.h2.ping(b"clientpg")
        await client.flush()
        await client.until(lambda: bool(client.events_of(h2.events.PingAckReceived)))
        record = h2c.record(1)
        assert record.settings_received[0][SettingCodes.INITIAL_WINDOW_SIZE] == 1 << 20
        assert record.settings_received[0][SettingCodes.ENABLE_PUSH] == 0
        assert (0, 1 << 20) in record.window_updates
        assert record.pings_received == [b"clientpg"]
        with trio.fail_after(5):  # the client's ACK may still be on its way
            await h2c.wait_until(lambda s: s.record(1).settings_acked == 1)
        client.h2.close_connection()
        await client.flush()
        await wait_closed(h2c)
    assert h2c.record(1).goaways_received[0].error_code == ErrorCodes.NO_ERROR
    assert h2c.open_connections == 0


# -- SETTINGS and flow control ---------------------------------------------------------


async def test_max_concurrent_streams_one() -> None:
    async with open_h2_server(faults=H2Faults(max_concurrent_streams=1)) as server:
        async with connect(server) as client:
            sid = client.send_request("/fault/stall")
            await client.flush()
            await client.until(
                lambda: client.h2.remote_settings.max_concurrent_streams == 1
            )
            settings = client.frames(SettingsFrame)[0].settings
            assert settings[SettingCodes.MAX_CONCURRENT_STREAMS] == 1
            with pytest.raises(h2.exceptions.TooManyStreamsError):
                client.send_request("/echo")
            client.h2.reset_stream(sid, ErrorCodes.CANCEL)
            reply = await client.request("/echo")
            assert reply.status == 200
        assert server.record(1).peak_active_streams == 1


async def test_a_client_over_the_stream_limit_gets_goaway() -> None:
    async with open_h2_server(faults=H2Faults(max_concurrent_streams=1)) as server:
        async with connect(server, start=False) as client:
            # Both requests leave before the server's SETTINGS can arrive.
            client.h2.initiate_connection()
            client.send_request("/fault/stall")
            client.send_request("/fault/stall")
            await client.flush()
            await client.until(lambda: client.eof or bool(client.frames(GoAwayFrame)))
        goaway = client.frames(GoAwayFrame)[0]
        assert goaway.error_code == ErrorCodes.PROTOCOL_ERROR
        await wait_closed(server)
        assert "Max inbound streams" in server.record(1).protocol_errors[0]


async def test_max_concurrent_streams_changed_mid_connection(h2c: H2Server) -> None:
    async with connect(h2c) as client:
        reply = await client.request("/fault/settings?max_concurrent_streams=2")
        assert reply.json() == {"acked": True}
        assert client.h2.remote_settings.max_concurrent_streams == 2
        changes = client.events_of(h2.events.RemoteSettingsChanged)
        assert (
            changes[-1].changed_settings[SettingCodes.MAX_CONCURRENT_STREAMS].new_value
            == 2
        )
        assert h2c.record(1).settings_acked == 2
        bad = await client.request("/fault/settings?no_such_setting=1")
        assert bad.status == 400


async def test_zero_window_then_window_update() -> None:
    faults = H2Faults(initial_window_size=0, window_update_delay=0.2)
    async with open_h2_server(faults=faults) as server, connect(server) as client:
        sid = client.send_request("/echo-body", "POST", end_stream=False)
        await client.flush()
        await client.until(lambda: client.h2.remote_settings.initial_window_size == 0)
        start = trio.current_time()
        assert client.h2.local_flow_control_window(sid) == 0
        await client.upload(sid, pattern(100_000))
        reply = await client.reply(sid)
        assert trio.current_time() - start >= 0.15
    assert bytes(reply.body) == pattern(100_000)
    second = client.frames(SettingsFrame)[1]  # after the server's first SETTINGS
    assert second.settings == {SettingCodes.INITIAL_WINDOW_SIZE: 0}
    updates = [f for f in client.frames(WindowUpdateFrame) if f.stream_id == sid]
    assert updates[0].window_increment == 65535


async def test_tiny_windows() -> None:
    faults = H2Faults(initial_window_size=1024)
    async with open_h2_server(faults=faults) as server, connect(server) as client:
        sid = client.send_request("/echo-body", "POST", end_stream=False)
        await client.flush()
        await client.until(
            lambda: client.h2.remote_settings.initial_window_size == 1024
        )
        await client.upload(sid, pattern(50_000))
        reply = await client.reply(sid)
    assert bytes(reply.body) == pattern(50_000)
    updates = [f for f in client.frames(WindowUpdateFrame) if f.stream_id == sid]
    assert len(updates) >= 40
    assert all(f.window_increment <= 1024 for f in updates)


async def test_negative_window_after_settings_change(h2c: H2Server) -> None:
    body = pattern(100_000)
    async with connect(h2c) as client:
        sid = client.send_request(
            "/fault/shrink-window?after=30000&to=1024", "POST", end_stream=False
        )
        for offset in range(0, 60_000, 15_000):
            client.h2.send_data(sid, body[offset : offset + 15_000])
        await client.flush()
        await client.until(
            lambda: client.h2.remote_settings.initial_window_size == 1024
        )
        # 60,000 bytes sent against the window the server has just shrunk.
        assert client.h2.local_flow_control_window(sid) == 1024 - 60_000
        await client.upload(sid, body[60_000:])
        reply = await client.reply(sid)
    assert bytes(reply.body) == body


# -- resets ----------------------------------------------------------------------------


async def test_reset_mid_body(h2c: H2Server) -> None:
    async with connect(h2c) as client:
        reply = await client.request(
            "/fault/reset-mid-body?n=1000&sent=500&code=CANCEL"
        )
    assert reply.status == 200 and len(reply.body) == 500
    assert reply.reset == ErrorCodes.CANCEL and not reply.ended
    assert [(f.stream_id, f.error_code) for f in client.frames(RstStreamFrame)] == [
        (1, ErrorCodes.CANCEL)
    ]
    assert h2c.record(1).resets_sent == [(1, ErrorCodes.CANCEL)]


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/fault/refuse", ErrorCodes.REFUSED_STREAM),
        ("/fault/reset", ErrorCodes.INTERNAL_ERROR),
        ("/fault/reset?code=HTTP_1_1_REQUIRED", ErrorCodes.HTTP_1_1_REQUIRED),
        ("/fault/reset?code=0x8", ErrorCodes.CANCEL),
    ],
)
async def test_reset_before_headers(h2c: H2Server, path: str, code: int) -> None:
    async with connect(h2c) as client:
        reply = await client.request(path, "POST", body=b"never read")
        assert reply.reset == code and reply.headers == []
        assert client.frames(HeadersFrame) == []
        after = await client.request("/echo")  # the connection lives on
        assert h2c.record(1).open
    assert after.status == 200


# -- GOAWAY ----------------------------------------------------------------------------


async def test_goaway_with_streams_on_both_sides_of_last_stream_id(
    h2c: H2Server,
) -> None:
    async with connect(h2c) as client:
        first = client.send_request("/delay/0.2")
        goaway = client.send_request("/fault/goaway?last=3&wait_streams=3")
        beyond = client.send_request("/delay/0.2")
        await client.flush()
        await client.until(lambda: client.replies[first].ended)
        await client.until(lambda: client.replies[goaway].ended)
        await wait_closed(h2c)
        await client.until(lambda: client.eof)
    assert (first, goaway, beyond) == (1, 3, 5)
    frames = parse_frames(bytes(client.wire))
    away = [f for f in frames if isinstance(f, GoAwayFrame)]
    assert [(f.last_stream_id, f.error_code) for f in away] == [(3, 0)]
    answered = {f.stream_id for f in frames if isinstance(f, HeadersFrame)}
    assert answered == {1, 3}  # nothing at all for stream 5
    assert client.replies[beyond].headers == [] and not client.replies[beyond].ended
    record = h2c.record(1)
    assert record.streams_opened == [1, 3, 5]
    assert record.streams_ignored == [5]
    assert record.goaways_sent[0].last_stream_id == 3
    assert sorted(r.path for r in h2c.requests) == ["/delay/0.2"] * 2 + [
        "/fault/goaway"
    ]


@pytest.mark.parametrize(
    "code", ["PROTOCOL_ERROR", "ENHANCE_YOUR_CALM", "HTTP_1_1_REQUIRED"]
)
async def test_goaway_with_an_error_code(h2c: H2Server, code: str) -> None:
    async with connect(h2c) as client:
        client.send_request(f"/fault/goaway?code={code}&debug=bye")
        await client.flush()
        await client.until(lambda: client.eof)
    [terminated] = client.events_of(h2.events.ConnectionTerminated)
    assert terminated.error_code == ErrorCodes[code]
    assert terminated.additional_data == b"bye"
    assert terminated.last_stream_id == 1
    await wait_closed(h2c)


async def test_goaway_after_n_requests_like_keepalive_requests() -> None:
    async with open_h2_server(faults=H2Faults(max_requests=2)) as server:
        async with connect(server) as client:
            one = await client.request("/echo")
            sids = [client.send_request("/delay/0.05") for _ in range(2)]
            await client.flush()
            await client.until(lambda: client.replies[sids[0]].ended)
            await client.until(lambda: client.eof)
        assert one.status == 200
        frames = parse_frames(bytes(client.wire))
        kinds = [(type(f).__name__, f.stream_id) for f in frames]
        # As nginx does: the GOAWAY comes before the answer to the last stream.
        assert kinds.index(("GoAwayFrame", 0)) < kinds.index(("HeadersFrame", 3))
        [away] = [f for f in frames if isinstance(f, GoAwayFrame)]
        assert (away.last_stream_id, away.error_code) == (3, 0)
        assert server.record(1).streams_ignored == [5]
        assert not server.record(1).open
        # The next connection starts afresh.
        async with connect(server) as again:
            assert (await again.request("/echo")).status == 200


async def test_goaway_from_the_test_itself(h2c: H2Server) -> None:
    async with connect(h2c) as client:
        sid = client.send_request("/delay/0.1")
        await client.flush()
        await h2c.wait_until(lambda s: s.record(1).active_streams == 1)
        conn = h2c.connection(1)
        assert conn is not None
        conn.send_goaway(ErrorCodes.NO_ERROR)
        reply = await client.reply(sid)
        await client.until(lambda: client.eof)
        await wait_closed(h2c)
    assert reply.status == 200
    assert h2c.connection(1) is None


# -- PING, PUSH_PROMISE, headers -------------------------------------------------------


async def test_ping_from_the_server(h2c: H2Server) -> None:
    async with connect(h2c) as client:
        reply = await client.request("/fault/ping?count=2")
    assert reply.json() == {"sent": 2, "acked": 2}
    pings = [f for f in client.frames(PingFrame) if "ACK" not in f.flags]
    assert [f.opaque_data for f in pings] == [b"ping0000", b"ping0001"]
    assert h2c.record(1).pings_acked == [b"ping0000", b"ping0001"]


async def test_push_promise_despite_enable_push_zero(h2c: H2Server) -> None:
    async with connect(h2c) as client:
        client.send_request("/fault/push-promise")
        await client.flush()
        with pytest.raises(h2.exceptions.ProtocolError):
            await client.until(lambda: False)
        client.h2.close_connection(ErrorCodes.PROTOCOL_ERROR)
        await client.flush()
        await wait_closed(h2c)
    [push] = [
        f for f in parse_frames(bytes(client.wire)) if isinstance(f, PushPromiseFrame)
    ]
    assert (push.stream_id, push.promised_stream_id) == (1, 2)
    assert h2c.record(1).goaways_received[0].error_code == ErrorCodes.PROTOCOL_ERROR


async def test_huge_response_headers_use_continuation(h2c: H2Server) -> None:
    async with connect(h2c) as client:
        client.send_request("/fault/huge-header?size=100000")
        await client.flush()
        with pytest.raises(h2.exceptions.ProtocolError):
            await client.until(lambda: False)  # over h2's 64 KiB header list limit
        frames = parse_frames(bytes(client.wire))
    [headers] = [f for f in frames if isinstance(f, HeadersFrame)]
    assert "END_HEADERS" not in headers.flags
    continuations = [f for f in frames if isinstance(f, ContinuationFrame)]
    assert continuations and "END_HEADERS" in continuations[-1].flags


async def test_continuation_flood(h2c: H2Server) -> None:
    async with connect(h2c) as client:
        client.send_request("/fault/continuation-flood?frames=100")
        await client.flush()
        with pytest.raises(h2.exceptions.ProtocolError, match="continuation"):
            await client.until(lambda: client.eof)
        await client.until(lambda: client.eof)  # the server hangs up after
    frames = parse_frames(bytes(client.wire))
    continuations = [f for f in frames if isinstance(f, ContinuationFrame)]
    assert len(continuations) > 100
    assert all(len(f.data) == 1 for f in continuations)


async def test_a_failed_tls_handshake_costs_only_its_connection(
    server_context: ssl.SSLContext, ca: trustme.CA
) -> None:
    async with open_h2_server(ssl_context=server_context) as server:
        tcp = await trio.open_tcp_stream(server.host, server.port)
        await tcp.send_all(b"definitely not a TLS client hello")
        await wait_closed(server)
        async with connect(server, client_context(ca)) as client:
            assert (await client.request("/echo")).status == 200
        await tcp.aclose()
    assert server.connections_opened == 2


# -- early responses, dropped connections, garbage -------------------------------------


async def test_early_response_during_a_large_upload(h2c: H2Server) -> None:
    async with connect(h2c) as client:
        sid = client.send_request(
            "/fault/early-response?status=413", "POST", end_stream=False
        )
        for offset in range(0, 60_000, 15_000):
            client.h2.send_data(sid, pattern(15_000, offset))
        await client.flush()
        reply = await client.reply(sid)
        await client.until(lambda: reply.reset is not None)
    assert reply.status == 413 and reply.ended
    assert reply.reset == ErrorCodes.NO_ERROR
    assert h2c.record(1).resets_sent == [(sid, ErrorCodes.NO_ERROR)]


async def test_early_response_then_drain(h2c: H2Server) -> None:
    async with connect(h2c) as client:
        sid = client.send_request(
            "/fault/early-response?then=drain", "POST", end_stream=False
        )
        await client.flush()
        reply = await client.reply(sid)
        assert reply.status == 413
        await client.upload(sid, pattern(200_000))  # the server keeps reading
        after = await client.request("/echo")
    assert reply.reset is None and after.status == 200
    assert h2c.record(1).data_received[sid] == 200_000


@pytest.mark.parametrize("how", ["close", "reset"])
async def test_connection_dropped_mid_body(h2c: H2Server, how: str) -> None:
    async with connect(h2c) as client:
        reply = client.replies[
            client.send_request(f"/fault/close-mid-body?sent=300&how={how}")
        ]
        await client.flush()
        await client.until(lambda: client.eof)
    assert client.frames(GoAwayFrame) == []  # no goodbye: the socket just went
    assert not reply.ended
    if how == "close":
        assert not client.was_reset
        assert reply.status == 200 and len(reply.body) == 300
    else:
        # A TCP reset may make the client's kernel drop what it has not read.
        assert client.was_reset
        assert len(reply.body) <= 300


async def test_garbage_instead_of_the_server_preface() -> None:
    faults = H2Faults(preface=b"HTTP/1.1 400 Bad Request\r\n\r\n")
    async with open_h2_server(faults=faults) as server, connect(server) as client:
        client.send_request("/echo")
        await client.flush()
        await client.until(lambda: client.eof)
        # h2 waits for the 4.7 MB its "frame header" announces: it sees no
        # frame at all, only the end of the connection.
        assert client.wire == b"HTTP/1.1 400 Bad Request\r\n\r\n"
        assert client.events == []
    await wait_closed(server)
    assert server.record(1).streams_opened == []


async def test_garbage_mid_connection(h2c: H2Server) -> None:
    async with connect(h2c) as client:
        assert (await client.request("/echo")).status == 200
        client.send_request("/fault/garbage")
        await client.flush()
        with pytest.raises(h2.exceptions.ProtocolError):
            await client.until(lambda: client.eof)
    assert client.wire.endswith(b"not HTTP/2 data!")


async def test_faults_chosen_per_connection() -> None:
    def faults(connection_id: int) -> H2Faults:
        return H2Faults(max_concurrent_streams=connection_id)

    async with open_h2_server(faults=faults) as server:
        for expected in (1, 2):
            async with connect(server) as client:
                await client.request("/echo")
                assert client.h2.remote_settings.max_concurrent_streams == expected
        server.faults = H2Faults(max_requests=1)
        async with connect(server) as client:
            await client.request("/echo")
            assert client.frames(GoAwayFrame)


# -- interop ---------------------------------------------------------------------------


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "h2c"])
async def test_nghttp_interop(server_context: ssl.SSLContext, tls: bool) -> None:
    nghttp = shutil.which("nghttp")
    if nghttp is None:
        pytest.skip("nghttp is not installed: apt-get install nghttp2-client")
    context = server_context if tls else None
    async with open_h2_server(ssl_context=context) as server:
        paths = ["/bytes/100000", "/status/404", "/trailers"]
        result = await trio.run_process(
            [nghttp, "-nv", *[server.url + path for path in paths]],
            capture_stdout=True,
            check=False,
        )
    out = result.stdout.decode()
    assert result.returncode == 0, out
    assert out.count("recv HEADERS frame") == 4, out  # 3 answers, 1 trailer
    assert ":status: 200" in out and ":status: 404" in out
    assert server.connections_opened == 1
    assert sorted(r.path for r in server.requests) == sorted(paths)
    assert server.record(1).goaways_received  # nghttp says goodbye when done


async def test_httpx_http2_interop(
    server_context: ssl.SSLContext, ca: trustme.CA
) -> None:
    httpx = pytest.importorskip("httpx")
    context = ssl.create_default_context()
    ca.configure_trust(context)
    async with (
        open_h2_server(ssl_context=server_context) as server,
        httpx.AsyncClient(http2=True, verify=context) as client,
    ):
        echoed = await client.post(server.url + "/echo-body", content=pattern(300_000))
        big = await client.get(server.url + "/bytes/2000000")
        teapot = await client.get(server.url + "/status/418")
    assert echoed.http_version == "HTTP/2"
    assert echoed.content == pattern(300_000)
    assert big.content == pattern(2_000_000)
    assert teapot.status_code == 418
    assert server.connections_opened == 1  # all three on one connection
    assert [r.path for r in server.requests] == [
        "/echo-body",
        "/bytes/2000000",
        "/status/418",
    ]
