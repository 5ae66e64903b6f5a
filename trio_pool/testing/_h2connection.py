"""One HTTP/2 connection of the test server, and the streams on it.

Theory of operation
-------------------

Each accepted h2 connection is served by :meth:`H2ServerConnection.serve`, which
opens a nursery for that connection alone. In it run:

* the **reader** (``_read_loop``): the only caller of ``receive_some`` and of
  ``h2.receive_data``. It turns h2's events into changes of the stream objects
  and of the :class:`~._h2record.H2ConnectionRecord`, starts one handler task
  per request, and never waits for anything but the socket;
* the **writer** (``_write_loop``): the only caller of ``send_all``. It sleeps
  until poked, writes the outbox, and when asked to, closes (or resets) the
  socket and cancels the nursery;
* one **handler task** per stream, running the route. Handlers change h2 state
  only with h2's synchronous calls (``send_headers``, ``send_data``,
  ``reset_stream``, ...), then *poke* the writer: :meth:`_poke` moves
  ``h2.data_to_send()`` into the outbox and sets the writer's event. No
  handler ever writes to the socket, so a handler cancelled anywhere cannot
  leave half a frame on the wire.

Raw frames that h2 would refuse (a PUSH_PROMISE to a client without push, a
GOAWAY after which streams still complete) go through the same outbox, after
whatever h2 had already produced, so frame order is exactly the order of calls.

Anything that waits for the client -- flow-control credit, a SETTINGS or PING
acknowledgement, request body -- parks on one parking lot per connection
(``_changes``), which the reader unparks after every batch of events; waiters
re-check their condition. That is O(streams) per batch, which is plenty for a
test server and leaves no wake-up to forget.

h2 pitfalls handled here (see ``shared/design/HTTP2.md``):

* A GOAWAY that h2 sends or receives moves h2 to CLOSED, after which it
  refuses every frame. A *graceful* GOAWAY is therefore written as a raw frame
  so streams up to ``last_stream_id`` can still be answered; one with an error
  code goes through ``h2.close_connection`` and the connection is closed.
* The receive windows never reopen by themselves: handlers call
  ``acknowledge_received_data`` for each chunk as they consume it (so the
  client's upload is throttled by the handler, as with a real server), and
  DATA for streams nobody reads is acknowledged at once.
* Sends are cut to ``min(local_flow_control_window, max_outbound_frame_size)``,
  clamped at 0 because the window may be negative after the client lowers
  INITIAL_WINDOW_SIZE.
* When ``receive_data`` raises, the events it had parsed are lost; a
  ``ProtocolError`` is therefore fatal: GOAWAY with its code, then close.
"""

from __future__ import annotations

import socket
import struct
from collections import deque
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qsl

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import trio
from h2.errors import ErrorCodes
from h2.settings import SettingCodes, Settings

from ._connection import BadRequest, Handler
from ._h2faults import H2Faults, goaway_frame
from ._h2record import H2ConnectionRecord, H2GoAway
from ._messages import Request, Response


class H2Host(Protocol):
    """What an h2 connection needs of its server (``H2Server`` is one)."""

    def resolve(self, path: str) -> H2Route: ...

    def record_request(self, request: Request) -> None: ...

    def record_error(self, exc: Exception) -> None: ...

    def changed(self) -> None: ...


__all__ = ["H2RawHandler", "H2Route", "H2ServerConnection", "H2Stream", "h2_plain"]

H2RawHandler = Callable[[Request, "H2Stream"], Awaitable[None]]
"""A raw h2 handler: ``async def handler(request, stream: H2Stream) -> None``."""

_RECEIVE_SIZE = 65536
_CLOSE_GRACE = 1.0
# A handler sending a body waits while more than this is queued for the socket.
_OUTBOX_HIGH_WATER = 1 << 20
_BODYLESS_STATUSES = frozenset({204, 304})
# Connection-specific headers are forbidden in HTTP/2 (RFC 9113 8.2.2).
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"upgrade",
    }
)


@dataclass(frozen=True)
class H2Route:
    """A raw h2 handler, and whether the server reads the body before calling it."""

    handler: H2RawHandler
    read_body: bool = True


def h2_plain(handler: Handler) -> H2RawHandler:
    """Wrap an ordinary ``request -> Response`` handler into a raw h2 one."""

    async def run_plain(request: Request, stream: H2Stream) -> None:
        await stream.send_response(await handler(request))

    return run_plain


class H2Stream:
    """The server side of one HTTP/2 stream, as given to raw h2 handlers.

    Sending methods change h2's state at once and wake the connection's
    writer; only :meth:`send_data` (and what calls it) waits, for the
    client's flow-control window. A handler is cancelled when the client
    resets its stream.

    Attributes:
        connection: The :class:`H2ServerConnection` the stream belongs to.
        stream_id: The stream's id.
        headers: The request headers as h2 decoded them (bytes pairs, pseudo
            headers first).
        request_number: The stream's 1-based position among the connection's
            requests.
        trailers: The request's trailers, once received.
        reset_code: The error code the client reset the stream with, if it did.
        reset_sent: Whether the server reset the stream.
        response_started: Whether response headers have been sent.
        response_ended: Whether the response has been ended (END_STREAM).
        body_ended: Whether the whole request body has arrived.
    """

    def __init__(
        self,
        connection: H2ServerConnection,
        stream_id: int,
        headers: list[tuple[bytes, bytes]],
        request_number: int,
    ) -> None:
        self.connection = connection
        self.stream_id = stream_id
        self.headers = headers
        self.request_number = request_number
        self.trailers: list[tuple[bytes, bytes]] | None = None
        self.reset_code: int | None = None
        self.response_started = False
        self.response_ended = False
        self.body_ended = False
        self.reset_sent = False
        self._chunks: deque[tuple[bytes, int]] = deque()
        self._scope = trio.CancelScope()
        self._head = self.pseudo(b":method") == b"HEAD"

    def pseudo(self, name: bytes) -> bytes | None:
        """The value of pseudo-header ``name`` (e.g. ``b":path"``), if sent."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def h2(self) -> h2.connection.H2Connection:
        """The connection's server-side ``h2.connection.H2Connection``."""
        return self.connection.h2

    # -- receiving ---------------------------------------------------------

    async def receive_some(self) -> bytes:
        """Return the next piece of request body, ``b""`` at its end.

        The piece is acknowledged to h2 as it is handed out, so the client's
        window reopens as fast as the handler reads.
        """
        await self.connection.wait_for(lambda: bool(self._chunks) or self.body_ended)
        if not self._chunks:
            return b""
        data, flow_length = self._chunks.popleft()
        self.connection._acknowledge(flow_length, self.stream_id)
        return data

    async def receive_body(self) -> bytes:
        """Read the rest of the request body."""
        parts = []
        while part := await self.receive_some():
            parts.append(part)
        return b"".join(parts)

    def buffered(self) -> int:
        """Body bytes received but not yet read (nor acknowledged)."""
        return sum(len(data) for data, _ in self._chunks)

    # -- sending -----------------------------------------------------------

    def standard_headers(self) -> list[tuple[bytes, bytes]]:
        """The headers the server adds to every response."""
        return [
            (b"x-connection-id", str(self.connection.connection_id).encode()),
            (b"x-request-number", str(self.request_number).encode()),
            (b"x-stream-id", str(self.stream_id).encode()),
        ]

    def send_headers(
        self,
        status: int,
        headers: Sequence[tuple[str, str]] = (),
        *,
        end_stream: bool = False,
    ) -> None:
        """Send the response headers (plus :meth:`standard_headers`).

        Names are lowercased and connection-specific headers dropped, as
        HTTP/2 requires.
        """
        block = [(b":status", str(status).encode())]
        for name, value in headers:
            key = name.lower().encode("latin-1")
            if key not in _HOP_BY_HOP:
                block.append((key, value.encode("latin-1")))
        block.extend(self.standard_headers())
        self.h2.send_headers(self.stream_id, block, end_stream=end_stream)
        self.response_started = True
        self.response_ended = end_stream
        self.connection._poke()

    def _sendable(self, wanted: int) -> int:
        window = self.h2.local_flow_control_window(self.stream_id)
        return max(0, min(wanted, window, self.h2.max_outbound_frame_size))

    async def send_data(self, data: bytes, *, end_stream: bool = False) -> None:
        """Send body bytes, as fast as the client's windows allow.

        Waits for WINDOW_UPDATE (or SETTINGS) from the client while its
        windows are closed, and while the socket is not keeping up.
        """
        offset = 0
        while offset < len(data):
            left = len(data) - offset
            await self.connection._wait_outbox()
            await self.connection.wait_for(lambda: self._sendable(1) > 0)
            n = self._sendable(left)
            last = end_stream and n == left
            chunk = data[offset : offset + n]
            self.h2.send_data(self.stream_id, chunk, end_stream=last)
            offset += n
            self.connection._poke()
        if end_stream and not data:
            self.end()
        self.response_ended = self.response_ended or end_stream

    def end(self) -> None:
        """End the response (an empty DATA frame with END_STREAM)."""
        self.h2.end_stream(self.stream_id)
        self.response_ended = True
        self.connection._poke()

    def send_trailers(self, trailers: Sequence[tuple[str, str]]) -> None:
        """End the response with a trailing HEADERS frame."""
        block = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in trailers
        ]
        self.h2.send_headers(self.stream_id, block, end_stream=True)
        self.response_ended = True
        self.connection._poke()

    def reset(self, code: int = ErrorCodes.INTERNAL_ERROR) -> None:
        """Reset the stream with RST_STREAM(``code``)."""
        self.reset_sent = True
        self.h2.reset_stream(self.stream_id, code)
        self.connection.record.resets_sent.append((self.stream_id, _code(code)))
        self.response_ended = True
        self.connection._poke()

    async def send_response(self, response: Response) -> None:
        """Send a complete :class:`Response` (HEAD, 204 and 304 without body)."""
        headers = list(response.headers)
        names = {name.lower() for name, _ in headers}
        bodiless = self._head or response.status in _BODYLESS_STATUSES
        if (
            response.chunks is None
            and "content-length" not in names
            and response.status not in _BODYLESS_STATUSES
        ):
            headers.append(("content-length", str(len(response.body))))
        if bodiless or (response.chunks is None and not response.body):
            self.send_headers(response.status, headers, end_stream=True)
            return
        self.send_headers(response.status, headers)
        if response.chunks is None:
            await self.send_data(response.body, end_stream=True)
            return
        if isinstance(response.chunks, AsyncIterable):
            async for chunk in response.chunks:
                await self.send_data(chunk)
        else:
            for chunk in response.chunks:
                await self.send_data(chunk)
        self.end()

    def _answer_error(self, status: int, message: str) -> None:
        if not self.response_started and self.reset_code is None:
            body = message.encode()
            self.send_headers(status, [("content-length", str(len(body)))])
            self.h2.send_data(self.stream_id, body, end_stream=True)
            self.response_ended = True
            self.connection._poke()

    # -- fed by the reader -------------------------------------------------

    def _push(self, data: bytes, flow_length: int) -> None:
        self._chunks.append((data, flow_length))

    def _reset_by_client(self, code: int) -> None:
        self.reset_code = code
        self._scope.cancel()

    def _unread_credit(self) -> int:
        credit = sum(flow for _, flow in self._chunks)
        self._chunks.clear()
        return credit


def _code(code: int) -> int:
    try:
        return ErrorCodes(code)
    except ValueError:
        return code


class H2ServerConnection:
    """The server side of one HTTP/2 connection (see the module docstring).

    Raw handlers reach it as ``stream.connection`` for connection-level
    actions: :meth:`send_goaway`, :meth:`ping`, :meth:`update_settings`,
    :meth:`send_raw`, :meth:`close`, and :meth:`wait_for`.

    Attributes:
        h2: The server-side ``h2.connection.H2Connection``.
        transport: The trio stream (a ``trio.SSLStream`` over TLS).
        connection_id: The connection's number, from 1.
        record: What the connection carried (:class:`H2ConnectionRecord`).
        faults: The connection-level faults in force.
    """

    def __init__(
        self,
        server: H2Host,
        transport: trio.abc.Stream,
        record: H2ConnectionRecord,
        faults: H2Faults,
    ) -> None:
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.h2 = h2.connection.H2Connection(config=config)
        self.transport = transport
        self.connection_id = record.connection_id
        self.record = record
        self.faults = faults
        self.graceful_last_stream_id: int | None = None
        self._server = server
        self._streams: dict[int, H2Stream] = {}
        self._running: set[int] = set()
        self._requests = 0
        self._outbox = bytearray()
        self._wake = trio.Event()
        self._changes = trio.lowlevel.ParkingLot()
        self._drained = trio.lowlevel.ParkingLot()
        self._closing: str | None = None
        self._nursery: trio.Nursery | None = None
        self._reader_done = trio.Event()
        self._settings_sent = 0
        record._count_active = lambda: self.h2.open_inbound_streams

    # -- the connection task -------------------------------------------------

    async def serve(self) -> None:
        """Serve the connection until it closes; never raises (but Cancelled)."""
        try:
            if self.faults.preface is not None:
                await self._send_fake_preface(self.faults.preface)
                return
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._start()
                nursery.start_soon(self._write_loop)
                await self._read_loop()
                self.close("close")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away
        finally:
            self.record.open = False
            self._server.changed()
            await trio.aclose_forcefully(self.transport)

    def _start(self) -> None:
        initial: dict[SettingCodes | int, int] = dict(self.h2.local_settings.items())
        initial.update(self.faults.settings)
        if self.faults.max_concurrent_streams is not None:
            initial[SettingCodes.MAX_CONCURRENT_STREAMS] = (
                self.faults.max_concurrent_streams
            )
        self.h2.local_settings = Settings(client=False, initial_values=initial)  # type: ignore[arg-type]
        self.h2.initiate_connection()
        self._settings_sent = 1
        if self.faults.initial_window_size is not None:
            size = self.faults.initial_window_size
            self.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: size})
        self._poke()

    async def _send_fake_preface(self, preface: bytes) -> None:
        await self.transport.send_all(preface)
        # A lingering close, as in _shut_down: FIN, then read and drop until
        # the client closes too (TLS cannot half-close: there it is a wait).
        with trio.move_on_after(_CLOSE_GRACE):
            if isinstance(self.transport, trio.abc.HalfCloseableStream):
                await self.transport.send_eof()
            while await self._receive():
                pass
        with trio.move_on_after(_CLOSE_GRACE):
            await self.transport.aclose()

    async def _receive(self) -> bytes:
        try:
            return bytes(await self.transport.receive_some(_RECEIVE_SIZE))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return b""  # a reset, a TLS failure, or the writer closed the socket

    async def _read_loop(self) -> None:
        while data := await self._receive():
            if self._closing is not None:
                continue  # lingering close: drop what still arrives
            try:
                events = self.h2.receive_data(data)
            except h2.exceptions.ProtocolError as exc:
                self._protocol_error(exc)
                continue
            for event in events:
                self._dispatch(event)
            self._poke()
            self._changes.unpark_all()
            self._server.changed()
        self._reader_done.set()

    async def _write_loop(self) -> None:
        while True:
            while not self._outbox and self._closing is None:
                self._wake = trio.Event()
                await self._wake.wait()
            if not self._outbox:
                await self._shut_down()
                return
            data = bytes(self._outbox)
            self._outbox.clear()
            self._drained.unpark_all()
            try:
                await self.transport.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._closing = self._closing or "close"  # the client went away
                self._outbox.clear()

    async def _shut_down(self) -> None:
        """Close the socket, then end the connection's tasks.

        A clean close of plain TCP lingers: FIN first, then wait (a moment at
        most) for the client to close its side, reading and dropping its
        bytes meanwhile. Closing with unread bytes in the kernel's buffer
        would send a TCP reset, which can destroy the last response before
        the client has read it.
        """
        self.record.open = False
        self._server.changed()
        if self._closing == "close" and isinstance(
            self.transport, trio.abc.HalfCloseableStream
        ):
            with trio.move_on_after(_CLOSE_GRACE):
                try:
                    await self.transport.send_eof()
                    await self._reader_done.wait()
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
        await self._close_transport()
        assert self._nursery is not None
        self._nursery.cancel_scope.cancel()

    async def _close_transport(self) -> None:
        if self._closing == "reset":
            raw: trio.abc.Stream = self.transport
            while isinstance(raw, trio.SSLStream):
                raw = raw.transport_stream
            if isinstance(raw, trio.SocketStream):
                linger = struct.pack("ii", 1, 0)
                raw.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            await trio.aclose_forcefully(raw)
            return
        with trio.move_on_after(_CLOSE_GRACE):
            try:
                await self.transport.aclose()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    # -- for handlers ------------------------------------------------------

    def _poke(self) -> None:
        self._outbox += self.h2.data_to_send()
        self._wake.set()

    async def _wait_outbox(self) -> None:
        while len(self._outbox) > _OUTBOX_HIGH_WATER:
            await self._drained.park()

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition()`` is true; re-checked after each batch of
        frames from the client."""
        while not condition():
            await self._changes.park()

    def send_raw(self, data: bytes) -> None:
        """Queue raw bytes (frames h2 would not send) after h2's own output."""
        self._outbox += self.h2.data_to_send()
        self._outbox += data
        self._wake.set()

    def close(self, how: str = "close") -> None:
        """Close the connection once everything queued is written.

        Args:
            how: ``"close"`` (FIN, after TLS close_notify) or ``"reset"`` (a
                TCP reset).
        """
        if self._closing is None:
            self._closing = how
        self._wake.set()

    def send_goaway(
        self, code: int = 0, last_stream_id: int | None = None, debug: bytes = b""
    ) -> None:
        """Send GOAWAY.

        With ``NO_ERROR`` the GOAWAY is graceful: streams up to
        ``last_stream_id`` (default: the highest received) still complete,
        later streams are ignored (their handlers cancelled) and the
        connection closes when the last handler is done. With any other code
        h2 closes the connection at once.
        """
        last = (
            self.h2.highest_inbound_stream_id
            if last_stream_id is None
            else last_stream_id
        )
        self.record.goaways_sent.append(H2GoAway(_code(code), last, debug))
        if code != ErrorCodes.NO_ERROR:
            self.h2.close_connection(code, debug, last_stream_id=last)
            self._poke()
            self.close()
            return
        self.graceful_last_stream_id = last
        self.send_raw(goaway_frame(last, code, debug))
        for sid, stream in list(self._streams.items()):
            if sid > last:
                self._ignore(sid)
                stream._scope.cancel()
        self._maybe_drained()

    def ping(self, opaque: bytes = b"trio_poo") -> None:
        """Send a PING (``opaque``: 8 bytes); acks go to ``record.pings_acked``."""
        self.h2.ping(opaque)
        self.record.pings_sent.append(opaque)
        self._poke()

    def update_settings(self, settings: dict[int, int]) -> int:
        """Send a SETTINGS frame.

        Returns:
            The value ``record.settings_acked`` reaches once the client has
            acknowledged it, e.g.
            ``await conn.wait_for(lambda: conn.record.settings_acked >= n)``.
        """
        self.h2.update_settings(settings)
        self._settings_sent += 1
        self._poke()
        return self._settings_sent

    def open_window(self, increment: int, stream_id: int | None = None) -> None:
        """Send WINDOW_UPDATE for a stream (or, with ``None``, the connection)."""
        self.h2.increment_flow_control_window(increment, stream_id=stream_id)
        self._poke()

    def _acknowledge(self, flow_length: int, stream_id: int) -> None:
        if flow_length and self._closing is None:
            try:
                self.h2.acknowledge_received_data(flow_length, stream_id)
            except h2.exceptions.ProtocolError:
                pass  # the connection is closing: nothing to credit any more
            self._poke()

    # -- the reader's event handling -----------------------------------------

    def _protocol_error(self, exc: h2.exceptions.ProtocolError) -> None:
        # h2 has already queued a GOAWAY with the error's code.
        self.record.protocol_errors.append(str(exc))
        if self._closing is not None:
            # Frames that crossed our own GOAWAY: do not send a second one.
            self.h2.clear_outbound_data_buffer()
        else:
            code = _code(getattr(exc, "error_code", ErrorCodes.PROTOCOL_ERROR))
            last = self.h2.highest_inbound_stream_id
            self.record.goaways_sent.append(H2GoAway(code, last))
            self._poke()
        self.close()

    def _dispatch(self, event: h2.events.Event) -> None:
        record = self.record
        if isinstance(event, h2.events.RequestReceived):
            self._on_request(event)
        elif isinstance(event, h2.events.DataReceived):
            self._on_data(event)
        elif isinstance(event, h2.events.StreamEnded):
            self._on_stream_ended(event.stream_id)
        elif isinstance(event, h2.events.TrailersReceived):
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                stream.trailers = list(event.headers)
        elif isinstance(event, h2.events.StreamReset):
            self._on_reset(event)
        elif isinstance(event, h2.events.WindowUpdated):
            record.window_updates.append((event.stream_id or 0, event.delta or 0))
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            changes = {
                _setting(k): v.new_value for k, v in event.changed_settings.items()
            }
            record.settings_received.append(changes)
        elif isinstance(event, h2.events.SettingsAcknowledged):
            record.settings_acked += 1
        elif isinstance(event, h2.events.PingReceived):
            record.pings_received.append(event.ping_data or b"")
        elif isinstance(event, h2.events.PingAckReceived):
            record.pings_acked.append(event.ping_data or b"")
        elif isinstance(event, h2.events.ConnectionTerminated):
            goaway = H2GoAway(
                _code(event.error_code or 0),
                event.last_stream_id or 0,
                event.additional_data or b"",
            )
            record.goaways_received.append(goaway)
            self.close()  # h2 is CLOSED now: it would refuse to answer anything

    def _on_request(self, event: h2.events.RequestReceived) -> None:
        sid = event.stream_id or 0
        record = self.record
        record.streams_opened.append(sid)
        active = self.h2.open_inbound_streams
        record.peak_active_streams = max(record.peak_active_streams, active)
        last = self.graceful_last_stream_id
        if last is not None and sid > last:
            self._ignore(sid)
            return
        self._requests += 1
        headers = list(event.headers or ())
        stream = H2Stream(self, sid, headers, self._requests)
        self._streams[sid] = stream
        assert self._nursery is not None
        if self.faults.window_update_delay is not None:
            self._nursery.start_soon(self._open_window_later, sid)
        self._running.add(sid)
        self._nursery.start_soon(self._run_stream, stream)
        limit = self.faults.max_requests
        if limit is not None and self._requests >= limit and last is None:
            self.send_goaway(ErrorCodes.NO_ERROR, last_stream_id=sid)

    def _ignore(self, sid: int) -> None:
        if sid not in self.record.streams_ignored:
            self.record.streams_ignored.append(sid)
        stream = self._streams.pop(sid, None)
        if stream is not None:
            self._credit(stream._unread_credit(), sid)

    def _on_data(self, event: h2.events.DataReceived) -> None:
        sid = event.stream_id or 0
        length = event.flow_controlled_length or 0
        received = self.record.data_received
        received[sid] = received.get(sid, 0) + length
        stream = self._streams.get(sid)
        if stream is None or stream.reset_code is not None:
            self._credit(length, sid)  # nobody will read it
        else:
            stream._push(event.data or b"", length)

    def _credit(self, length: int, sid: int) -> None:
        if length:
            try:
                self.h2.acknowledge_received_data(length, sid)
            except h2.exceptions.ProtocolError:
                pass

    def _on_stream_ended(self, sid: int) -> None:
        stream = self._streams.get(sid)
        if stream is not None:
            stream.body_ended = True

    def _on_reset(self, event: h2.events.StreamReset) -> None:
        sid = event.stream_id or 0
        code = _code(event.error_code or 0)
        self.record.resets_received.append((sid, code))
        stream = self._streams.get(sid)
        if stream is not None:
            self._credit(stream._unread_credit(), sid)
            stream._reset_by_client(code)

    async def _open_window_later(self, sid: int) -> None:
        assert self.faults.window_update_delay is not None
        await trio.sleep(self.faults.window_update_delay)
        if sid in self._streams and self._closing is None:
            try:
                self.open_window(self.faults.window_update_size, sid)
            except h2.exceptions.StreamClosedError:
                pass

    # -- handler tasks -------------------------------------------------------

    async def _run_stream(self, stream: H2Stream) -> None:
        try:
            with stream._scope:
                await self._handle(stream)
            self._finish_stream(stream)
        except h2.exceptions.ProtocolError:
            pass  # the connection (or the stream) closed under the handler
        finally:
            self._running.discard(stream.stream_id)
            self._streams.pop(stream.stream_id, None)
            self._maybe_drained()
            self._server.changed()

    async def _handle(self, stream: H2Stream) -> None:
        path_bytes = stream.pseudo(b":path") or b"/"
        path, _, query = path_bytes.decode("latin-1").partition("?")
        route = self._server.resolve(path)
        body = await stream.receive_body() if route.read_body else b""
        request = self._make_request(stream, path, query, body)
        self._server.record_request(request)
        try:
            await route.handler(request, stream)
        except BadRequest as exc:
            stream._answer_error(400, str(exc))
        except (h2.exceptions.ProtocolError, trio.BrokenResourceError):
            raise
        except Exception as exc:
            self._server.record_error(exc)
            stream._answer_error(500, "Internal Server Error")

    def _finish_stream(self, stream: H2Stream) -> None:
        """Leave the stream closed in h2 whatever the handler did."""
        if stream.reset_code is not None or stream.reset_sent:
            return
        if self._closing is not None or stream.stream_id in self.record.streams_ignored:
            return
        if self.h2.state_machine.state.name == "CLOSED":
            return
        if stream.response_ended and not stream.body_ended:
            stream.reset(ErrorCodes.NO_ERROR)  # RFC 9113 8.1: stop the upload
        elif not stream.response_ended:
            stream.reset(ErrorCodes.INTERNAL_ERROR)

    def _maybe_drained(self) -> None:
        last = self.graceful_last_stream_id
        if last is None or self._closing is not None:
            return
        if not any(sid <= last for sid in self._running):
            self.close()

    def _make_request(
        self, stream: H2Stream, path: str, query_string: str, body: bytes
    ) -> Request:
        query: dict[str, list[str]] = {}
        for name, value in parse_qsl(query_string, keep_blank_values=True):
            query.setdefault(name, []).append(value)
        return Request(
            method=(stream.pseudo(b":method") or b"").decode("latin-1"),
            target=(stream.pseudo(b":path") or b"").decode("latin-1"),
            path=path,
            query=query,
            headers=[
                (k.decode("latin-1"), v.decode("latin-1")) for k, v in stream.headers
            ],
            body=body,
            connection_id=self.connection_id,
            request_number=stream.request_number,
            http_version="2",
        )


def _setting(key: int) -> int:
    try:
        return SettingCodes(key)
    except ValueError:
        return key
