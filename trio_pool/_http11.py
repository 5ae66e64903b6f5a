"""HTTP/1.1 over a trio Stream: the only module that imports h11.

An :class:`HTTP11Connection` is a trio ``Stream`` plus an ``h11.Connection``,
and implements :class:`~trio_pool._protocol.ProtocolConnection`. It knows
nothing of pools or retries: it turns a trio_pool
:class:`~trio_pool._protocol.RequestHead` into h11 events, sends them with the
body, hands back a :class:`~trio_pool._protocol.ResponseHead`, then the body
piece by piece as it arrives, and finally says whether the connection may
carry another request. :func:`open_tunnel` runs a ``CONNECT`` for proxies.

This is also the one place where h11's errors become trio_pool's, decided by
the error's type and h11's state (never by its message text).

Every wait on the socket is bounded by the exchange's read timeout (a fresh
``move_on_after`` per receive or send), so "read timeout" means what urllib3
means: the longest silence, not the whole body. A wait that an enclosing
deadline (the attempt's ``total``, or the caller's) ends sooner anyway gets no
scope of its own: it could never fire first. The caller's cancel scopes
apply as usual; a cancelled or failed exchange leaves the h11 state mid-cycle,
which :meth:`HTTP11Connection.finish_cycle` reports as not reusable.

The hot path
------------
h11 checks every request head and parses every response head and decides
its framing; what it costs beyond that is kept off the common path:

* a request is validated by h11 once per distinct method, target and
  header lines (a pool sends the same few again and again): the
  ``h11.Request`` event is remembered and sent again as it is (h11 never
  changes an event), and h11's validated ``Headers`` of each header set are
  remembered too, for new targets with known headers;
* a ``Content-Length`` body is read past h11 once h11 has parsed the head:
  first the bytes h11 had buffered beyond the head, then straight from the
  stream, counted against the length h11 parsed and checked; instead of
  passing every byte through h11's buffer and out again as ``Data`` and
  ``EndOfMessage`` events. Which responses have such a body is h11's rule
  (:func:`_length_framed`: none after HEAD, a 204 or 304). h11 is then left
  behind mid-body, so the next exchange gets a fresh ``h11.Connection``, if
  h11 said (when it read the head) that the connection may be kept alive
  and nothing came after the body;
* a plain TCP stream is read and written through its trio socket, as
  ``SocketStream`` does it but without its wrapper layers; errors are
  translated in an ``except`` clause, which costs nothing when there is none.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Any, TypeVar

import h11
import trio

from ._exceptions import (
    HTTPError,
    IncompleteRead,
    InvalidChunkLength,
    InvalidHeader,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
)
from ._headers import HTTPHeaderDict
from ._protocol import RequestHead, ResponseHead
from ._translate import translate_errors

__all__ = ["MAX_HEADER_BYTES", "HTTP11Connection", "open_tunnel"]

#: Largest response head (status line + headers) accepted, like urllib3's
#: http.client limit of 100 headers of 64 KiB would allow at most.
MAX_HEADER_BYTES = 64 * 1024
_RECEIVE_SIZE = 64 * 1024
#: How much of an early answer's body is read ahead before the upload stops.
_PREFETCH_LIMIT = 1024 * 1024
_VERSIONS = {b"1.1": 11, b"1.0": 10}
#: h11 events are never changed by h11: one end-of-message serves every request.
_END = h11.EndOfMessage()
#: Header sets h11 has validated, by their lines: h11's ``Headers`` for each.
_VALIDATED: dict[tuple[tuple[bytes, bytes], ...], Any] = {}
#: Whole request events h11 has validated, by method, target and lines.
_REQUESTS: dict[tuple[bytes, bytes, tuple[tuple[bytes, bytes], ...]], h11.Request] = {}
_CACHE_MAX = 256
_K = TypeVar("_K")
_V = TypeVar("_V")


def _h11_request(head: RequestHead) -> h11.Request:
    """h11's request event for ``head``; h11 checks every byte of it (once
    per distinct request, and the header lines once per distinct set: see
    the module's docstring). h11 never changes an event it is given, so a
    remembered one is sent again as it is.

    Raises:
        InvalidHeader: a header line or target that may not be sent.
    """
    lines = tuple(head.headers)
    key = (head.method, head.target, lines)
    request = _REQUESTS.get(key)
    if request is not None:
        return request
    known = _VALIDATED.get(lines)
    try:
        request = h11.Request(
            method=head.method,
            target=head.target,
            headers=head.headers if known is None else known,
        )
    except h11.LocalProtocolError as exc:
        raise InvalidHeader(f"Request cannot be sent: {exc}") from exc
    _remember(_VALIDATED, lines, request.headers)
    _remember(_REQUESTS, key, request)
    return request


def _remember(cache: dict[_K, _V], key: _K, value: _V) -> None:
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[key] = value


def _response_head(event: h11.Response) -> tuple[ResponseHead, int | None, bool]:
    """The neutral head, the body's Content-Length (None if the body is
    chunked or has none) and whether it is chunked."""
    version = _VERSIONS.get(bytes(event.http_version))
    if version is None:
        raise ProtocolError(
            f"Unsupported HTTP version in the status line: HTTP/"
            f"{bytes(event.http_version).decode('ascii', 'replace')}"
        )
    headers = HTTPHeaderDict._from_wire(event.headers.raw_items())
    # h11 accepts only "chunked" as a response's Transfer-Encoding, and has
    # checked that a Content-Length is one number.
    chunked = "transfer-encoding" in headers
    length = headers.get("content-length")
    head = ResponseHead(
        status=event.status_code,
        reason=bytes(event.reason).decode("latin-1"),
        version=version,
        headers=headers,
    )
    return head, None if chunked or length is None else int(length), chunked


class HTTP11Connection:
    """A trio stream speaking HTTP/1.1 through h11, one exchange at a time.

    Args:
        stream: the transport (a ``SocketStream``, ``SSLStream`` or, in tests,
            a memory stream).
        owner: named in timeout errors (``ReadTimeoutError.pool``).
    """

    __slots__ = (
        "_body_read",
        "_chunked",
        "_direct",
        "_eof",
        "_expected",
        "_h11",
        "_heard",
        "_in_body",
        "_method",
        "_pending",
        "_prefetched",
        "_read_timeout",
        "_sock",
        "_url",
        "owner",
        "stream",
        "trailers",
    )

    def __init__(self, stream: trio.abc.Stream, owner: object = None) -> None:
        self.stream = stream
        self.owner = owner
        # A plain TCP stream is read and written through its socket: the
        # same calls SocketStream makes, without its layer of wrappers.
        self._sock = stream.socket if type(stream) is trio.SocketStream else None
        self._url = ""
        self._method = b""
        self._read_timeout: float | None = None
        self._h11 = h11.Connection(
            h11.CLIENT, max_incomplete_event_size=MAX_HEADER_BYTES
        )
        self._expected: int | None = None
        self._chunked = False
        self._body_read = 0
        self._eof = False  # the server closed its side
        self._heard = False  # bytes arrived since this exchange began
        self._in_body = False  # the response head is in, its body is not
        # A Content-Length body is read past h11: what h11 had buffered
        # beyond the head (``_pending``), then the stream itself.
        self._direct = False
        self._pending = b""
        # Body pieces of an early answer, read while the upload was stopped.
        self._prefetched: list[bytes] | None = None
        #: A chunked body's trailer fields, once its end has been read.
        self.trailers: HTTPHeaderDict | None = None

    # -- sending ---------------------------------------------------------

    async def send_request(
        self,
        head: RequestHead,
        body: AsyncIterable[bytes] | None,
        read_timeout: float | None,
        *,
        watch_for_answer: bool = False,
    ) -> ResponseHead | None:
        """Send a request head and body.

        Returns ``None`` normally. If the server breaks the connection while
        the body is being sent but has already answered (an "early
        response", e.g. 413 before reading a large upload), that response
        head is returned instead of an error; the connection will not be
        reused.

        With ``watch_for_answer`` (for large uploads) the response head is
        awaited while the body is sent, so a server that answers and stops
        reading is noticed at once rather than after a write timeout.

        If cancelled, the request may have been partly sent; the connection
        is then not reusable.
        """
        self._url = head.url
        self._method = head.method
        self._read_timeout = read_timeout
        self.trailers = None
        self._heard = False
        self._in_body = False
        request = _h11_request(head)
        if body is None:
            # Head and end of message in one write.
            try:
                data = self._h11.send(request) or b""
                data += self._h11.send(_END) or b""
            except h11.LocalProtocolError as exc:  # e.g. a Content-Length > 0
                raise InvalidHeader(f"Request cannot be sent: {exc}") from exc
            await self._send(data)
            return None
        await self._send_event(request)
        if watch_for_answer:
            return await self._send_body_watching(body)
        return await self._send_body(body)

    def _raise_translated(self, phase: str, exc: Exception) -> None:
        """Raise trio_pool's error for a trio, ssl or OS error ``exc``; for
        anything else return, and the caller re-raises ``exc``."""
        if isinstance(exc, HTTPError):
            return
        where = translate_errors(phase, pool=self.owner, url=self._url)
        translated = where.translate(exc)
        if translated is not None:
            raise translated[0] from translated[1]

    async def _send_chunks(self, body: AsyncIterable[bytes]) -> None:
        async for chunk in body:
            if chunk:
                await self._send_event(h11.Data(data=chunk))
        await self._send_event(_END)

    async def _send_body(self, body: AsyncIterable[bytes]) -> ResponseHead | None:
        """Send the body; after a broken send, look for an early answer."""
        try:
            await self._send_chunks(body)
        except ProtocolError:
            early = await self._early_response()
            if early is None:
                raise
            return early
        return None

    async def _send_body_watching(
        self, body: AsyncIterable[bytes]
    ) -> ResponseHead | None:
        """Send a large body while watching for an early response.

        A server may answer (413, 401, ...) and stop reading long before a big
        upload is through; waiting for the upload would end in a write
        timeout or a reset. So a second task waits for the response head
        meanwhile. If it comes first, the upload stops and that response is
        returned (the connection is then not reusable: h11 never saw the end
        of the request). If the upload finishes first, the watch is cancelled
        — a receive cancelled in trio loses no bytes, and whatever h11
        already buffered stays buffered for ``receive_response``.
        """
        head: ResponseHead | None = None
        stopped = False
        failure: Exception | None = None
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                nonlocal head, stopped
                try:
                    head = await self.receive_response()
                    if not _stops_upload(head):
                        return  # e.g. a 200 while the server reads on
                    # Cancelling a send breaks a TLS stream for reading too,
                    # so the answer's body is fetched before the upload stops.
                    await self._prefetch_body()
                except (ProtocolError, ReadTimeoutError):
                    return  # the upload side will see the same trouble
                stopped = True
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch)
            try:
                await self._send_chunks(body)
            except Exception as exc:  # re-raised after the nursery, unwrapped
                failure = exc
            # A broken upload: the watch goes on, to find an answer the server
            # sent before breaking off (it ends at EOF or a read timeout).
            # A finished one: the head, if not already here, is read later.
            if head is None and not isinstance(failure, ProtocolError):
                nursery.cancel_scope.cancel()
        if head is not None and (stopped or failure is None or _stops_upload(head)):
            return head
        if failure is not None:
            raise failure
        return None

    async def _prefetch_body(self) -> None:
        """Read an early answer's body (up to a cap) ahead of its reader."""
        chunks: list[bytes] = []
        try:
            while sum(map(len, chunks)) < _PREFETCH_LIMIT:
                data = await self.receive_data()
                chunks.append(data)
                if not data:
                    return
        finally:
            # Served by receive_data from now on (b"" marks the end).
            self._prefetched = chunks

    async def _send_event(self, event: Any) -> None:
        try:
            data = self._h11.send(event)
        except h11.LocalProtocolError as exc:
            raise InvalidHeader(f"Request cannot be sent: {exc}") from exc
        await self._send(data)

    def _wait_limit(self) -> float | None:
        """The read timeout the next wait needs a scope for: None without
        one, or when an enclosing deadline comes no later (it fires first)."""
        limit = self._read_timeout
        if limit is None:
            return None
        if trio.current_effective_deadline() < trio.current_time() + limit:
            return None
        return limit

    async def _send(self, data: bytes | None) -> None:
        """Write ``data`` within the write timeout, errors translated."""
        if not data:
            return
        try:
            limit = self._wait_limit()
            if limit is None:
                await self._write(data)
                return
            with trio.move_on_after(limit) as scope:
                await self._write(data)
        except Exception as exc:
            self._raise_translated("send", exc)
            raise
        if scope.cancelled_caught:
            raise ReadTimeoutError(
                self.owner,
                self._url,
                f"Write timed out. (write timeout={self._read_timeout})",
            )

    async def _write(self, data: bytes) -> None:
        sock = self._sock
        if sock is None:
            await self.stream.send_all(data)
            return
        sent = await sock.send(data)
        if sent < len(data):
            with memoryview(data) as view:
                while sent < len(data):
                    sent += await sock.send(view[sent:])

    async def _early_response(self) -> ResponseHead | None:
        """After a failed send: a response the server managed to send first."""
        # h11 lets the server answer while we are still in SEND_BODY, so the
        # head can be read as usual; a plain socket still delivers what
        # arrived before the peer's reset.
        try:
            return await self.receive_response()
        except (ProtocolError, ReadTimeoutError):
            return None

    # -- receiving -------------------------------------------------------

    async def receive_response(self) -> ResponseHead:
        """Wait for the response head, skipping 1xx interim responses."""
        while True:
            event = await self._next_event()
            if type(event) is h11.Response:
                head, self._expected, self._chunked = _response_head(event)
                self._body_read = 0
                self._in_body = True
                if self._expected is not None and _length_framed(
                    self._method, head.status
                ):
                    self._read_past_h11()
                return head
            if isinstance(event, h11.InformationalResponse):
                continue
            raise ProtocolError(
                "Remote end closed connection without response"
                if isinstance(event, h11.ConnectionClosed)
                else f"Unexpected event before the response: {event!r}"
            )

    def _read_past_h11(self) -> None:
        """From here the body is read without h11 (see the module's
        docstring): first what h11 buffered beyond the head, then the stream."""
        self._pending, closed = self._h11.trailing_data
        self._eof = self._eof or closed
        self._direct = True

    async def receive_data(self) -> bytes:
        """The next piece of the response body; ``b""`` at its end."""
        if self._prefetched:
            return self._prefetched.pop(0)
        if self._direct:
            return await self._receive_direct()
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise self._protocol_error(exc, self._in_body) from exc
            if event is h11.NEED_DATA:
                await self._receive()
                continue
            if type(event) is h11.Data:
                data = event.data
                self._body_read += len(data)
                return data if type(data) is bytes else bytes(data)
            if type(event) is h11.EndOfMessage:
                self._in_body = False
                if event.headers:
                    self.trailers = HTTPHeaderDict._from_wire(event.headers.raw_items())
                return b""
            raise ProtocolError(f"Unexpected event in the response body: {event!r}")

    async def _receive_direct(self) -> bytes:
        """The next piece of a Content-Length body, from the stream itself."""
        assert self._expected is not None
        left = self._expected - self._body_read
        pending = self._pending
        if left <= 0:
            self._in_body = False
            return b""
        if pending:
            data: bytes | bytearray = pending[:left]
            self._pending = pending[len(data) :]
        else:
            data = await self._receive_some(min(left, _RECEIVE_SIZE))
            if not data:
                self._eof = True
                raise IncompleteRead(self._body_read, left)
        self._body_read += len(data)
        return data if type(data) is bytes else bytes(data)

    async def _next_event(self) -> Any:
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise self._protocol_error(exc, self._in_body) from exc
            if event is not h11.NEED_DATA:
                return event
            await self._receive()

    def _protocol_error(
        self, exc: h11.RemoteProtocolError, in_body: bool
    ) -> ProtocolError:
        """What went wrong, told by h11's error hint and state."""
        if exc.error_status_hint == 431:  # h11: the head outgrew its buffer
            return ProtocolError(
                f"Response head larger than {MAX_HEADER_BYTES} bytes (or never ended)"
            )
        if not in_body:
            if self._eof and not self._heard:
                return ProtocolError("Remote end closed connection without response")
            return ProtocolError(f"Malformed response from server: {exc}")
        if self._eof:
            left = None if self._expected is None else self._expected - self._body_read
            return IncompleteRead(self._body_read, left)
        if self._chunked:
            return InvalidChunkLength(f"Invalid chunk in response body: {exc}")
        return ProtocolError(f"Malformed response body: {exc}")

    async def _receive(self) -> None:
        """Feed h11 the next bytes from the stream (b"" at EOF)."""
        data = await self._receive_some(_RECEIVE_SIZE)
        if not data:
            self._eof = True
        self._h11.receive_data(data if type(data) is bytes else bytes(data))

    async def _receive_some(self, size: int) -> bytes | bytearray:
        sock = self._sock
        try:
            limit = self._wait_limit()
            if limit is None:
                if sock is None:
                    data = await self.stream.receive_some(size)
                else:
                    data = await sock.recv(size)
            else:
                with trio.move_on_after(limit) as scope:
                    data = await self._read(size)
                if scope.cancelled_caught:
                    raise ReadTimeoutError(
                        self.owner,
                        self._url,
                        f"Read timed out. (read timeout={self._read_timeout})",
                    )
        except Exception as exc:
            self._raise_translated("receive", exc)
            raise
        if data:
            self._heard = True
        return data

    async def _read(self, size: int) -> bytes | bytearray:
        if self._sock is None:
            return await self.stream.receive_some(size)
        return await self._sock.recv(size)

    # -- lifecycle -------------------------------------------------------

    def finish_cycle(self) -> bool:
        """True if the last exchange completed cleanly and may be followed;
        h11 is then reset for the next exchange.

        Bytes the server sent after the end of the response (already read
        from the socket, so invisible to the idle watch) make the connection
        unusable: they would be taken for the next request's response.
        """
        conn = self._h11
        if self._direct:
            # h11 saw the head but not the body: a fresh one for the next
            # exchange, if it had found the connection may be kept alive
            # (a "close" makes h11 move our side from DONE to MUST_CLOSE).
            self._direct = False
            if conn.our_state is not h11.DONE or self._in_body or self._eof:
                return False
            if self._pending:
                return False  # bytes after the body would pass for the next response
            self._h11 = h11.Connection(
                h11.CLIENT, max_incomplete_event_size=MAX_HEADER_BYTES
            )
            return True
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            leftover, closed = conn.trailing_data
            if leftover or closed:
                return False
            conn.start_next_cycle()
            return True
        return False


def _length_framed(method: bytes, status: int) -> bool:
    """Whether a final response with a Content-Length has a body of that
    length: h11's rule (RFC 9112 section 6.3), which reads none after HEAD,
    a 204 or 304, or a successful CONNECT."""
    if method == b"HEAD" or status == 204 or status == 304:
        return False
    return not (method == b"CONNECT" and 200 <= status < 300)


def _stops_upload(head: ResponseHead) -> bool:
    """Whether an answer that arrives mid-upload ends the upload: an error
    status, or a server that says it will close. Any other (a 100-continue
    aside, a 2xx sent while the server reads on) lets the upload finish."""
    if head.status >= 400:
        return True
    return "close" in head.headers.get("Connection", "").lower()


# -- CONNECT -------------------------------------------------------------------


async def open_tunnel(
    stream: trio.abc.Stream, authority: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    """Ask an HTTP proxy on ``stream`` for a tunnel to ``authority``.

    On return the stream carries the tunnel's bytes (h11 left in
    ``SWITCHED_PROTOCOL``, nothing of the target's read).

    Raises:
        ProxyError: the proxy refused (e.g. 407), did not speak HTTP, closed
            the connection, or sent bytes before the tunnel was used.
    """
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=_RECEIVE_SIZE)
    wire = [(b"Host", authority), *headers]
    try:
        request = h11.Request(method=b"CONNECT", target=authority, headers=wire)
    except h11.LocalProtocolError as exc:
        raise InvalidHeader(f"CONNECT request cannot be sent: {exc}") from exc
    await stream.send_all(conn.send(request) + (conn.send(h11.EndOfMessage()) or b""))
    response = await _tunnel_answer(conn, stream)
    if not 200 <= response.status_code < 300:
        reason = bytes(response.reason).decode("latin-1", "replace")
        raise ProxyError(
            "Unable to connect to proxy",
            OSError(f"Tunnel connection failed: {response.status_code} {reason}"),
        )
    if conn.their_state is not h11.SWITCHED_PROTOCOL or conn.trailing_data[0]:
        raise ProxyError("The proxy sent data before the tunnel was used")


async def _tunnel_answer(conn: h11.Connection, stream: trio.abc.Stream) -> h11.Response:
    """The proxy's final answer to CONNECT (interim 1xx skipped)."""
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise ProxyError("The proxy's answer to CONNECT was not HTTP", exc) from exc
        if event is h11.NEED_DATA:
            conn.receive_data(bytes(await stream.receive_some(_RECEIVE_SIZE)))
        elif isinstance(event, h11.Response):
            return event
        elif not isinstance(event, h11.InformationalResponse):
            raise ProxyError("The proxy closed the connection during CONNECT")
