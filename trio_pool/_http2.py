"""HTTP/2 over a trio Stream: the only module that imports h2.

Theory of operation
-------------------
An :class:`HTTP2Connection` is one h2 connection and its task
(:meth:`HTTP2Connection.run`, started in the pool's nursery). The task runs a
*reader* — the only caller of ``receive_some`` and of h2's ``receive_data`` —
and a *writer* — the only caller of ``send_all``, which drains h2's outgoing
buffer whenever it is poked. Request tasks never touch the socket: they
change h2's state with synchronous calls (open a stream, send headers and
data, reset, credit a window) and poke the writer. trio runs one task at a
time, so a run of synchronous h2 calls is atomic without a lock, and a task
cancelled at any checkpoint leaves h2 consistent: that is what lets a
cancelled stream be reset, and its slot returned, with no ``await`` at all.

Each request is an :class:`HTTP2Stream`, which implements the pool's
:class:`~trio_pool._protocol.ProtocolConnection` for one exchange. The reader
sorts h2's events into the streams (a deque of body pieces and a wake-up
each); it never waits on a stream's consumer and never runs user code.

Flow control: the connection window is credited as data arrives (so one
slow reader cannot starve the others), a stream's window as its body is
consumed (so a slow reader throttles only its own stream). Uploads send at
most what the stream's window allows, wait for a ``WindowUpdated`` when it
is spent, and wait for the writer when too much is queued.

h2 4.x closes its state machine as soon as any GOAWAY arrives. A graceful
GOAWAY (NO_ERROR) must instead let the streams up to ``last_stream_id``
finish (RFC 9113 section 6.8), so :class:`_H2` keeps the machine open for
those: the connection is then *draining* — no new streams — and closes when
its last stream ends. Streams above ``last_stream_id`` and streams the server
refuses (REFUSED_STREAM) were never processed, so they fail with
:class:`~trio_pool._exceptions.StreamRefusedError`, which the retry loop
retries on another connection whatever the method.
"""

from __future__ import annotations

import ssl
from collections import deque
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hpack
import hpack.table
import trio

from ._connection import ConnState
from ._exceptions import (
    ClosedPoolError,
    HTTP11Required,
    IncompleteRead,
    ProtocolError,
    ReadTimeoutError,
    StreamRefusedError,
)
from ._headers import HTTPHeaderDict
from ._protocol import RequestHead, ResponseHead
from ._translate import translate_errors

__all__ = ["HTTP2Connection", "HTTP2Stream"]

_RECEIVE_SIZE = 64 * 1024
#: Each stream's receive window, and the connection's (RFC 9113 section 6.9).
STREAM_WINDOW = 1024 * 1024
CONNECTION_WINDOW = 16 * 1024 * 1024
#: Request tasks wait for the writer while more than this is queued.
_HIGH_WATER = 1024 * 1024
_MAX_HEADER_LIST = 64 * 1024
#: Headers that mean something only to one HTTP/1.1 connection.
_CONNECTION_HEADERS = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"upgrade",
    }
)
_REFUSED = (h2.errors.ErrorCodes.REFUSED_STREAM,)
_TRANSPORT_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)
_H1_REQUIRED = h2.errors.ErrorCodes.HTTP_1_1_REQUIRED
_Bytes = bytes | bytearray


class _RepeatingDecoder(hpack.Decoder):
    """HPACK decoding that remembers the header blocks it can answer again
    without decoding them.

    Decoding a header block is most of h2's work per response (Huffman
    decoding in pure Python: ~45 us for nginx's 117-byte block). A server
    that keeps its dynamic table empty (nginx sets its size to 0) sends the
    same bytes for the same headers, so a block is remembered when the
    table is empty before and after decoding it and its size did not
    change: decoding was then a pure function of the bytes and the limits
    in the key, and it changed nothing, so giving its result again is
    exactly what decoding again would do. Any block that reads or changes
    the dynamic table, and any block that fails, is decoded every time.
    """

    _LIMIT = 64  # blocks remembered; forgotten all at once when full
    _LARGEST = 1024  # bytes: larger blocks are rare, and would hold memory

    def __init__(self) -> None:
        super().__init__()
        self._seen: dict[tuple[bytes, bool, int, int, int], list[Any]] = {}

    def decode(self, data: bytes, raw: bool = False) -> Any:
        table = self.header_table
        if table.dynamic_entries:
            return super().decode(data, raw)
        size = table.maxsize
        key = (
            bytes(data),
            raw,
            size,
            self.max_allowed_table_size,
            self.max_header_list_size,
        )
        seen = self._seen.get(key)
        if seen is not None:
            return list(seen)
        headers = list(super().decode(data, raw))
        if (
            not table.dynamic_entries
            and table.maxsize == size
            and len(data) <= self._LARGEST
        ):
            if len(self._seen) >= self._LIMIT:
                self._seen.clear()
            self._seen[key] = headers
            return list(headers)
        return headers


class _VersionedTable(hpack.table.HeaderTable):
    """hpack's dynamic table, counting its changes (entries added, size set:
    the only ways the encoder changes it)."""

    def __init__(self) -> None:
        super().__init__()
        self.version = 0

    def add(self, name: bytes, value: bytes) -> None:
        self.version += 1
        super().add(name, value)

    @property
    def maxsize(self) -> int:
        return self._maxsize

    @maxsize.setter
    def maxsize(self, newmax: int) -> None:
        self.version += 1
        hpack.table.HeaderTable.maxsize.fset(self, newmax)  # type: ignore[attr-defined]


class _RepeatingEncoder(hpack.Encoder):
    """HPACK encoding that remembers header lists whose encoding left the
    dynamic table unchanged.

    A client sends the same headers again and again: once they are in the
    dynamic table, each request's block is a few indexes (seven bytes for
    trio_pool's default GET), yet encoding it costs ~15 us. Output depends
    only on the headers (with their never-index marks), the Huffman flag and
    the table; so a block that changed nothing is kept, keyed by what it
    encoded, until the table next changes. Lists of more than ``_LARGEST``
    bytes of names and values are not kept (nor their values in memory).
    """

    _LIMIT = 64
    _LARGEST = 2048

    def __init__(self) -> None:
        super().__init__()
        self._table = self.header_table = _VersionedTable()
        self._seen: dict[tuple[Any, ...], bytes] = {}
        self._seen_version = 0

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        if self.table_size_changes or isinstance(headers, dict):
            return super().encode(headers, huffman)
        table = self._table
        if table.version != self._seen_version:
            self._seen.clear()
            self._seen_version = table.version
        headers = tuple(headers)
        key = (huffman, headers, tuple(map(type, headers)))
        block = self._seen.get(key)
        if block is None:
            block = super().encode(headers, huffman)
            if (
                table.version == self._seen_version
                and len(self._seen) < self._LIMIT
                and sum(len(h[0]) + len(h[1]) for h in headers) <= self._LARGEST
            ):
                self._seen[key] = block
        return block


class _H2(h2.connection.H2Connection):
    """h2 with a graceful GOAWAY: the state machine stays open after a
    NO_ERROR GOAWAY so that the streams the server agreed to serve finish;
    and with an HPACK decoder and encoder that remember repeated blocks."""

    def __init__(self, config: h2.config.H2Configuration) -> None:
        super().__init__(config=config)
        decoder = _RepeatingDecoder()
        decoder.max_header_list_size = self.decoder.max_header_list_size
        decoder.max_allowed_table_size = self.decoder.max_allowed_table_size
        self.decoder = decoder
        self.encoder = _RepeatingEncoder()

    def _receive_goaway_frame(self, frame: Any) -> tuple[list[Any], list[Any]]:
        if frame.error_code != 0:
            return super()._receive_goaway_frame(frame)
        event = h2.events.ConnectionTerminated()
        event.error_code = h2.errors.ErrorCodes.NO_ERROR
        event.last_stream_id = frame.last_stream_id
        event.additional_data = frame.additional_data or None
        return [], [event]


class HTTP2Connection:
    """One HTTP/2 connection: its task, its streams, its stream limit.

    Args:
        stream: the transport (TLS with ALPN ``h2``, or plain for h2c).
        owner: named in errors (the pool).
        max_streams: the most streams this side opens at once; the server's
            MAX_CONCURRENT_STREAMS lowers it, and until its SETTINGS arrive
            only one stream is opened.
        on_change: called (synchronously, from the connection's task) when
            the connection gains room for streams or stops taking them.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        owner: object,
        max_streams: int,
        on_change: Callable[[HTTP2Connection], None],
    ) -> None:
        self.stream = stream
        self.owner = owner
        self.max_streams = max_streams
        self.capacity = 1
        self.active = 0
        self.resets = 0
        self.draining = False
        self.closed = False
        self.settled = False  # the server's first SETTINGS have arrived
        self.settings_seen = trio.Event()
        self.failure: BaseException | None = None
        self.token_lease: object = None  # the lease whose tokens it holds
        self._on_change = on_change
        self._streams: dict[int, HTTP2Stream] = {}
        self._life = trio.CancelScope()
        self._wake_writer = trio.Event()
        self._room = trio.Event()
        self._queued = 0
        self._unacked = 0
        # What the reader took from h2 for the writer (acks), oldest first.
        self._outbox: list[bytes] = []
        # Request heads are checked by ``_request`` before any I/O (and
        # lower-cased in ``_request_headers``): h2 need not check them again.
        # What the server sends is still checked.
        config = h2.config.H2Configuration(
            client_side=True,
            header_encoding=None,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        self._h2 = _H2(config)
        self._h2.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: max_streams,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: _MAX_HEADER_LIST,
            },
        )
        self._h2.initiate_connection()
        self._h2.increment_flow_control_window(CONNECTION_WINDOW - 65535)

    #: Carries several exchanges at once (see ``Connection.multiplexed``).
    multiplexed = True

    def __repr__(self) -> str:
        return f"<HTTP2Connection {self.active}/{self.capacity} streams>"

    # -- what the pool asks ------------------------------------------------

    @property
    def state(self) -> ConnState:
        """Where the connection is in its life, as for HTTP/1.1 ones."""
        if self.closed:
            return ConnState.CLOSED
        return ConnState.ACTIVE if self.active else ConnState.IDLE

    def has_room(self) -> bool:
        """Whether a new stream may start here now."""
        return not (self.draining or self.closed) and self.active < self.capacity

    @property
    def open_outbound_streams(self) -> int:
        """h2's own count of our open streams (for checking our books)."""
        return self._h2.open_outbound_streams

    def open_stream(self) -> HTTP2Stream:
        """A new stream for one request (synchronous; headers go later)."""
        assert self.has_room()
        self.active += 1
        return HTTP2Stream(self)

    def set_idle_deadline(self, deadline: float) -> None:
        """Close (with GOAWAY) at ``deadline`` unless a stream starts first."""
        self._life.deadline = deadline

    def close(self) -> None:
        """Stop taking streams and end the task (GOAWAY, then close)."""
        self.draining = True
        self._life.cancel()

    # -- the task ----------------------------------------------------------

    async def run(self, on_closed: Callable[[HTTP2Connection, str], None]) -> None:
        """The connection's task: read and write until the connection ends."""
        reason = "discarded"
        try:
            with self._life:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._writer)
                    reason = await self._reader()
                    nursery.cancel_scope.cancel()
            if self._life.cancelled_caught and reason == "discarded":
                reason = "keep-alive expired" if not self.draining else reason
            if self.failure is not None and reason == "discarded":
                reason = "connection error"
        finally:
            self.closed = True
            self._fail(self.failure or ClosedPoolError(self.owner, "Connection closed"))
            on_closed(self, reason)
            await self._goodbye()

    async def _goodbye(self) -> None:
        """GOAWAY(NO_ERROR) if the connection is still sound, then close."""
        try:
            with trio.move_on_after(0.5) as scope:
                scope.shield = True
                if self.failure is None or isinstance(self.failure, ClosedPoolError):
                    self._h2.close_connection()
                    data = self._outgoing()
                    if data:
                        await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        except h2.exceptions.ProtocolError:
            pass
        finally:
            await trio.aclose_forcefully(self.stream)

    def _outgoing(self) -> bytes:
        """Everything queued for the server, in the order h2 produced it."""
        data = self._h2.data_to_send()
        if self._outbox:
            self._outbox.append(data)
            data = b"".join(self._outbox)
            self._outbox.clear()
        return data

    async def _writer(self) -> None:
        while True:
            data = self._outgoing()
            if data:
                self._queued = 0
                room, self._room = self._room, trio.Event()
                room.set()
                try:
                    await self.stream.send_all(data)
                except _TRANSPORT_ERRORS as exc:
                    self._broken(exc)
                    return
                continue
            self._wake_writer = trio.Event()
            await self._wake_writer.wait()

    def _broken(self, exc: Exception) -> None:
        """The transport failed: every stream fails, the task ends."""
        translated = translate_errors("receive", pool=self.owner).translate(exc)
        error = translated[0] if translated else ProtocolError(f"Broken: {exc!r}")
        error.__cause__ = exc
        self._fail(error)
        self._life.cancel()

    def poke(self) -> None:
        """Have the writer flush what h2 has queued."""
        self._wake_writer.set()

    async def wait_for_writer(self, queued: int) -> None:
        """Back-pressure for uploads: wait while too much is queued."""
        self._queued += queued
        if self._queued > _HIGH_WATER:
            await self._room.wait()
        else:
            await trio.lowlevel.checkpoint()

    async def _reader(self) -> str:
        drain = _tls_drain(self.stream)
        while True:
            try:
                data = await self.stream.receive_some(_RECEIVE_SIZE)
            except _TRANSPORT_ERRORS as exc:
                self._broken(exc)
                return "connection error"
            if not data:
                self._fail(ProtocolError("The server closed the HTTP/2 connection"))
                return "closed by the server"
            if drain is not None:
                data = drain(data)
            try:
                events = self._h2.receive_data(data)
            except h2.exceptions.ProtocolError as exc:
                self._fail(
                    ProtocolError(f"HTTP/2 protocol error from the server: {exc}")
                )
                return "protocol error"
            for event in events:
                self._dispatch(event)
            # Most reads make h2 answer nothing: the writer is woken only
            # when there is something (acks, window credit) to send.
            acks = self._h2.data_to_send()
            if acks:
                self._outbox.append(acks)
                self.poke()
            if self.draining and self.active == 0:
                return "server sent GOAWAY"

    # -- events --------------------------------------------------------------

    def _dispatch(self, event: Any) -> None:
        stream = self._streams.get(getattr(event, "stream_id", 0) or 0)
        if isinstance(event, h2.events.DataReceived):
            self._credit_connection(event.flow_controlled_length)
            if stream is not None:
                stream._on_data(bytes(event.data), event.flow_controlled_length)
        elif isinstance(event, h2.events.ResponseReceived) and stream is not None:
            stream._on_head(event.headers)
        elif isinstance(event, h2.events.StreamEnded) and stream is not None:
            stream._on_end()
        elif isinstance(event, h2.events.TrailersReceived) and stream is not None:
            stream.trailers = _header_dict(event.headers)
        elif isinstance(event, h2.events.StreamReset):
            if stream is not None:
                stream._on_reset(event.error_code)
        elif isinstance(event, h2.events.WindowUpdated):
            self._wake_senders(stream)
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self._settings_changed()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._goaway(event)

    def _credit_connection(self, size: int) -> None:
        """Reopen the connection window as data arrives, in large steps."""
        self._unacked += size
        if self._unacked >= CONNECTION_WINDOW // 4:
            self._h2.increment_flow_control_window(self._unacked)
            self._unacked = 0

    def _wake_senders(self, stream: HTTP2Stream | None) -> None:
        for target in self._streams.values() if stream is None else (stream,):
            target._signal()

    def _settings_changed(self) -> None:
        self.settled = True
        self.settings_seen.set()
        remote = self._h2.remote_settings.max_concurrent_streams
        self.capacity = max(min(remote, self.max_streams), 0)
        self._wake_senders(None)  # the initial window may have changed
        self._on_change(self)

    def _goaway(self, event: Any) -> None:
        self.draining = True
        last = event.last_stream_id or 0
        if event.error_code == h2.errors.ErrorCodes.NO_ERROR:
            refused = StreamRefusedError(
                self.owner, "The server went away (GOAWAY) before this stream"
            )
            for stream_id, stream in list(self._streams.items()):
                if stream_id > last:
                    stream._fail(refused)
        else:
            self._fail(
                ProtocolError(
                    f"The server ended the connection: GOAWAY {event.error_code!r}"
                )
            )
        self._on_change(self)

    def _fail(self, error: BaseException) -> None:
        """Every open stream fails with ``error``; no new ones start."""
        if self.failure is None:
            self.failure = error
        self.draining = True
        self.settings_seen.set()  # nobody waits for SETTINGS that won't come
        for stream in list(self._streams.values()):
            stream._fail(error)

    # -- for streams -----------------------------------------------------------

    def _register(self, stream: HTTP2Stream, stream_id: int) -> None:
        self._streams[stream_id] = stream

    def _forget(self, stream: HTTP2Stream) -> None:
        """A stream is done with (synchronous): reset it if h2 still has it
        open, and give back its slot."""
        stream_id = stream.stream_id
        if stream_id is not None:
            self._streams.pop(stream_id, None)
            if not self.closed and not stream.closed_in_h2():
                try:
                    self._h2.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
                    self.resets += 1
                except h2.exceptions.ProtocolError:
                    pass  # h2 has closed it meanwhile: nothing to tell
                self.poke()
        self.active -= 1
        if self.draining and self.active == 0:
            self._life.cancel()
        self._on_change(self)


def _header_dict(headers: list[tuple[bytes, bytes]]) -> HTTPHeaderDict:
    return HTTPHeaderDict._from_wire(
        (name, value) for name, value in headers if not name.startswith(b":")
    )


def _request_headers(head: RequestHead, scheme: str) -> list[tuple[bytes, bytes]]:
    """HTTP/2's header block: pseudo-headers first, ``Host`` as
    ``:authority``, the connection-specific headers dropped."""
    authority = b""
    rest: list[tuple[bytes, bytes]] = []
    for name, value in head.headers:
        lower = name.lower()
        if lower == b"host":
            authority = value
        elif lower in _CONNECTION_HEADERS or (
            lower == b"te" and value.lower() != b"trailers"
        ):
            continue
        else:
            rest.append((lower, value))
    return [
        (b":method", head.method),
        (b":scheme", scheme.encode("ascii")),
        (b":authority", authority),
        (b":path", head.target),
        *rest,
    ]


class HTTP2Stream:
    """One request and its response on an h2 connection.

    Implements :class:`~trio_pool._protocol.ProtocolConnection` for its one
    exchange; :meth:`release` (synchronous) ends it, resetting the stream if
    it is still open.
    """

    def __init__(self, conn: HTTP2Connection) -> None:
        self.conn = conn
        self.stream_id: int | None = None
        self.trailers: HTTPHeaderDict | None = None
        self._head: ResponseHead | None = None
        self._pieces: deque[tuple[bytes, int]] = deque()
        self._ended = False
        self._error: BaseException | None = None
        # The task waiting for news of this stream (its response, body,
        # end, a failure, or window to send in): at most one at a time.
        self._parked: trio.lowlevel.Task | None = None
        self._consumed = 0
        self._received = 0
        self._expected: int | None = None
        self._read_timeout: float | None = None
        self._url = ""
        self._released = False

    @property
    def stream(self) -> trio.abc.Stream:
        return self.conn.stream

    # -- called by the reader (synchronous) ------------------------------------

    def _signal(self) -> None:
        """Wake the task waiting on this stream, if any: it looks again."""
        task = self._parked
        if task is not None:
            self._parked = None
            trio.lowlevel.reschedule(task)

    def _on_head(self, headers: list[tuple[bytes, bytes]]) -> None:
        status = 0
        for name, value in headers:
            if name == b":status":
                status = int(value)
        if status < 200:
            return  # 1xx: interim
        head = ResponseHead(status, "", 20, _header_dict(headers))
        length = head.headers.get("Content-Length")
        self._expected = int(length) if length and length.isdigit() else None
        self._head = head
        self._signal()

    def _on_data(self, data: bytes, flow_length: int) -> None:
        if data or flow_length:
            self._pieces.append((data, flow_length))
            self._received += len(data)
            self._signal()

    def _on_end(self) -> None:
        self._ended = True
        self._signal()

    def _on_reset(self, code: Any) -> None:
        if code in _REFUSED:
            self._fail(
                StreamRefusedError(self.conn.owner, "The server refused the stream")
            )
        elif code == _H1_REQUIRED:
            self._fail(HTTP11Required(self.conn.owner, "The server requires HTTP/1.1"))
        elif self._head is not None and self._ended:
            return
        elif code == h2.errors.ErrorCodes.NO_ERROR and self._head is not None:
            # The answer is complete as far as the server cares (RFC 9113
            # section 8.1): it stops our upload, not the response.
            self._ended = True
            self._signal()
        else:
            self._fail(ProtocolError(f"The server reset the stream: {code!r}"))

    def _fail(self, error: BaseException) -> None:
        if self._error is None and not (self._ended and self._head is not None):
            self._error = error
        self._signal()

    def closed_in_h2(self) -> bool:
        """Whether h2 no longer counts this stream as open."""
        assert self.stream_id is not None
        streams = self.conn._h2.streams
        stream = streams.get(self.stream_id)
        return stream is None or stream.closed

    # -- the exchange (request task) ---------------------------------------------

    async def send_request(
        self,
        head: RequestHead,
        body: AsyncIterable[bytes] | None,
        read_timeout: float | None,
        *,
        watch_for_answer: bool = False,
    ) -> ResponseHead | None:
        """Open the stream: headers, then the body as DATA frames.

        Returns the response head if the server answered and ended (or
        stopped) the upload early. If cancelled, the stream is reset when
        the pool gives it back; the connection stays.
        """
        self._read_timeout = read_timeout
        self._url = head.url
        conn = self.conn
        if conn.failure is not None or conn.closed:
            raise StreamRefusedError(conn.owner, "The HTTP/2 connection is closing")
        h2conn = conn._h2
        stream_id = h2conn.get_next_available_stream_id()
        headers = _request_headers(head, _scheme_of(conn))
        try:
            h2conn.send_headers(stream_id, headers, end_stream=body is None)
        except h2.exceptions.ProtocolError as exc:
            raise ProtocolError(f"Cannot start an HTTP/2 stream: {exc}") from exc
        self.stream_id = stream_id
        conn._register(self, stream_id)
        conn.poke()
        if body is not None:
            await self._send_body(body)
        if self._head is not None and self._ended:
            return self._head
        return None

    async def _send_body(self, body: AsyncIterable[bytes]) -> None:
        assert self.stream_id is not None
        if not self.conn.settled:
            # DATA waits for the server's first SETTINGS: a server that lowers
            # INITIAL_WINDOW_SIZE there (nghttp2 does) counts what it already
            # holds against the new window and resets the stream otherwise.
            await self._wait(self.conn.settings_seen.wait, "Write")
        async for chunk in body:
            view = memoryview(chunk)
            while view:
                if self._stopped():
                    # The server answered and ended: the rest is not sent.
                    aclose = getattr(body, "aclose", None)
                    if aclose is not None:
                        await aclose()
                    return
                size = self._window(len(view))
                if size <= 0:
                    await self._wait(self._park, "Write")
                    continue
                self.conn._h2.send_data(self.stream_id, bytes(view[:size]))
                self.conn.poke()
                view = view[size:]
                # The reader gets a turn between frames (window updates,
                # settings, an early answer), and the writer holds the queue.
                await self.conn.wait_for_writer(size)
        if not self._stopped():
            self.conn._h2.end_stream(self.stream_id)
            self.conn.poke()

    def _stopped(self) -> bool:
        """The upload is over: a failure, or the server answered and ended."""
        if self._error is not None:
            raise self._error_now()
        return self._ended and self._head is not None

    def _window(self, wanted: int) -> int:
        assert self.stream_id is not None
        h2conn = self.conn._h2
        window = h2conn.local_flow_control_window(self.stream_id)
        return min(wanted, window, h2conn.max_outbound_frame_size)

    async def _wait(self, sleep: Callable[[], Awaitable[None]], what: str) -> None:
        """``await sleep()``, bounded by the read timeout."""
        if self._read_timeout is None:
            await sleep()
            return
        with trio.move_on_after(self._read_timeout) as scope:
            await sleep()
        if scope.cancelled_caught:
            raise ReadTimeoutError(
                self.conn.owner,
                self._url,
                f"{what} timed out. ({what.lower()} timeout={self._read_timeout})",
            )

    async def _park(self) -> None:
        """Sleep until :meth:`_signal` (a schedule point; cancellable).

        A parked task costs no event object per wait: the reader wakes it
        directly. Callers look at the stream again when woken.
        """
        if self._parked is not None:
            raise trio.BusyResourceError(
                "Another task is already waiting on this HTTP/2 stream"
            )
        self._parked = trio.lowlevel.current_task()
        await trio.lowlevel.wait_task_rescheduled(self._unpark)

    def _unpark(self, _: object) -> trio.lowlevel.Abort:
        self._parked = None
        return trio.lowlevel.Abort.SUCCEEDED

    def _error_now(self) -> BaseException:
        """A fresh exception for this stream, chained from the stored one."""
        error = self._error
        assert error is not None
        if isinstance(error, IncompleteRead) or self._head is None:
            fresh: BaseException = _copy(error)
        elif self._expected is not None and self._received < self._expected:
            fresh = IncompleteRead(self._received, self._expected - self._received)
        else:
            fresh = _copy(error)
        fresh.__cause__ = error
        return fresh

    async def receive_response(self) -> ResponseHead:
        while self._head is None:
            if self._error is not None:
                raise self._error_now()
            if self._ended:
                raise ProtocolError("The stream ended without a response")
            await self._wait(self._park, "Read")
        return self._head

    async def receive_data(self) -> bytes:
        """The next DATA frame's bytes; ``b""`` at the end of the body."""
        while not self._pieces:
            if self._error is not None:
                raise self._error_now()
            if self._ended:
                self._check_length()
                return b""
            await self._wait(self._park, "Read")
        data, flow_length = self._pieces.popleft()
        self._credit_stream(flow_length)
        return data

    def _check_length(self) -> None:
        if self._expected is not None and self._received < self._expected:
            raise IncompleteRead(self._received, self._expected - self._received)

    def _credit_stream(self, size: int) -> None:
        """Reopen this stream's window as its body is consumed."""
        self._consumed += size
        if self._consumed >= STREAM_WINDOW // 2 and not self._ended:
            assert self.stream_id is not None
            try:
                self.conn._h2.increment_flow_control_window(
                    self._consumed, stream_id=self.stream_id
                )
            except h2.exceptions.ProtocolError:
                return  # the stream closed meanwhile
            self._consumed = 0
            self.conn.poke()

    def finish_cycle(self) -> bool:
        """True when the response arrived whole (the stream is then done)."""
        return self._ended and self._error is None

    def release(self) -> None:
        """Done with the stream (synchronous, exactly once): reset it if it
        is still open, drop its events, give back its slot."""
        if self._released:
            return
        self._released = True
        self._pieces.clear()
        self.conn._forget(self)


def _tls_drain(stream: trio.abc.Stream) -> Callable[[_Bytes], _Bytes] | None:
    """For a TLS stream: a function that adds to what ``receive_some``
    returned every record already received and decryptable, or None.

    trio's ``SSLStream.receive_some`` returns one TLS record per call, and
    each call is a trip through the run loop; a server that sends each
    response in a record of its own (nginx does) would cost a pass per
    response. The records were read from the socket together, so they are
    decrypted here at once. Only the reader receives, and nothing here
    awaits, so trio's SSLStream sees the same sequence of SSLObject calls
    it would make itself; anything OpenSSL queues to send meanwhile (a TLS
    1.3 KeyUpdate answer) stays in order in the outgoing buffer, which
    trio's next receive or send flushes first. Any error is left for that
    next ``receive_some`` to raise as trio does.
    """
    ssl_object = getattr(stream, "_ssl_object", None)
    if not isinstance(stream, trio.SSLStream) or not isinstance(
        ssl_object, ssl.SSLObject
    ):
        return None
    read = ssl_object.read

    def drain(first: _Bytes) -> _Bytes:
        parts: list[_Bytes] = [first]
        try:
            while piece := read(_RECEIVE_SIZE):
                parts.append(piece)
        except ssl.SSLError:  # SSLWantReadError: nothing more decryptable yet
            pass
        return first if len(parts) == 1 else b"".join(parts)

    return drain


def _scheme_of(conn: HTTP2Connection) -> str:
    return "https" if isinstance(conn.stream, trio.SSLStream) else "http"


def _copy(error: BaseException) -> BaseException:
    """The same error as a new object, so that each stream raises its own
    (one exception object raised in several tasks would share tracebacks)."""
    fresh = type(error).__new__(type(error))
    fresh.args = error.args
    fresh.__dict__.update(getattr(error, "__dict__", {}))
    return fresh
