"""One accepted connection: the h11 request loop and the raw-handler seam.

Every route, built-in or user-supplied, is at bottom a *raw handler*: an
``async def handler(request, conn)`` that is given the parsed request and the
:class:`RawConnection` and must do the answering itself. Ordinary handlers
(``request -> Response``) are wrapped into raw ones by :func:`plain`. This keeps
one code path for serving, and lets a fault route do anything a broken server
could do: write arbitrary bytes, stop half-way, close, or reset.

The connection knows its server only through :class:`ConnectionHost`, a narrow
interface: the host finds routes, records requests and errors, and is told
when the connection becomes idle, busy again, or closed. The host keeps its own
set of idle connections and asks one of them to close with
:meth:`RawConnection.close_if_idle`.

A connection is *idle* while it waits for the first byte of its next request.
Only then is it exposed to ``idle_close_after`` and to
``Server.close_idle_connections()``; both work by cancelling the cancel scope
around that one receive. The scope is created and registered slightly early:
just before the bytes that complete a keep-alive response are written. A client
in the same trio run can read the whole response and call
``close_idle_connections()`` before the server task is scheduled again, and the
early registration makes that call close the connection instead of missing it.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Protocol, cast
from urllib.parse import parse_qsl, urlsplit

import h11
import trio

from ._messages import Request, Response

__all__ = [
    "BadRequest",
    "ConnectionHost",
    "Handler",
    "RawConnection",
    "RawHandler",
    "Route",
    "plain",
    "serve_connection",
]

Handler = Callable[[Request], Awaitable[Response]]
"""An ordinary handler: ``async def handler(request) -> Response``."""

RawHandler = Callable[[Request, "RawConnection"], Awaitable[None]]
"""A raw handler: ``async def handler(request, conn) -> None``."""

_RECEIVE_SIZE = 65536
# Up to this size the pieces h11 produces for one send are joined into a single
# write; a copy this small costs less than the extra system calls.
_JOIN_LIMIT = 1 << 20
# How long a graceful close may wait for TLS close_notify to be written.
_CLOSE_GRACE = 1.0
_BODYLESS_STATUSES = frozenset({204, 304})


class BadRequest(Exception):
    """Raised by a handler to answer ``400 Bad Request`` with this message.

    Unlike other exceptions it is not recorded in ``Server.errors``.
    """


@dataclass(frozen=True)
class Route:
    """A raw handler, and whether the server reads the body before calling it."""

    handler: RawHandler
    read_body: bool = True


def plain(handler: Handler) -> RawHandler:
    """Wrap an ordinary handler into a raw one that sends its response."""

    async def run_plain(request: Request, conn: RawConnection) -> None:
        await conn.send_response(await handler(request))

    return run_plain


class ConnectionHost(Protocol):
    """What a :class:`RawConnection` needs from the server that accepted it.

    The connection calls these from its own task; none of them may block.
    """

    @property
    def idle_close_after(self) -> float | None:
        """Seconds an idle connection may wait for a request, or ``None``."""
        ...

    def resolve(self, path: str) -> Route:
        """Return the route serving ``path`` (a 404 route if there is none)."""
        ...

    def record_request(self, request: Request) -> None:
        """Note a request that has been read (its body too, if wanted)."""
        ...

    def record_error(self, exc: Exception) -> None:
        """Note an exception from a handler, or from the server itself."""
        ...

    def connection_idle(self, conn: RawConnection) -> None:
        """``conn`` is waiting, or about to wait, for its next request."""
        ...

    def connection_busy(self, conn: RawConnection) -> None:
        """``conn`` has stopped waiting for a request (one came, or none will)."""
        ...

    def connection_closed(self, conn: RawConnection) -> None:
        """``conn`` has been closed or reset; it is told so once."""
        ...


class RawConnection:
    """The server side of one connection, as given to raw handlers.

    A raw handler may mix three levels: whole responses
    (:meth:`send_response`), h11 events (:meth:`start_response`,
    :meth:`send_events`, or the :attr:`h11` state machine itself), and raw bytes
    and socket actions (:meth:`send`, :meth:`close`, :meth:`reset`,
    :meth:`send_eof`, :attr:`stream`).

    When the handler returns, the server closes the connection unless h11 says
    that both the request and the response are complete; in that case (after
    discarding any request body the handler left unread) the connection waits
    for its next request.

    Attributes:
        stream: The connection's trio stream (a ``trio.SSLStream`` for HTTPS).
        h11: The server-side ``h11.Connection``.
        connection_id: The number of this connection, from 1.
        request_number: How many requests this connection has received.
        closed: Whether the server has closed (or reset) the connection.
    """

    def __init__(
        self, host: ConnectionHost, stream: trio.abc.Stream, connection_id: int
    ) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.SERVER)
        self.connection_id = connection_id
        self.request_number = 0
        self.closed = False
        self._host = host
        self._head_request = False
        self._idle_scope: trio.CancelScope | None = None

    # -- sending -------------------------------------------------------------

    def standard_headers(self) -> list[tuple[str, str]]:
        """Return the headers the server adds to every response."""
        return [
            ("X-Connection-Id", str(self.connection_id)),
            ("X-Request-Number", str(self.request_number)),
        ]

    async def send(self, data: bytes) -> None:
        """Write raw bytes, bypassing h11.

        Raises:
            trio.BrokenResourceError: If the client has gone away.
        """
        await self.stream.send_all(data)

    async def send_events(self, *events: h11.Event) -> None:
        """Pass ``events`` through h11 and write the resulting bytes at once.

        Raises:
            h11.LocalProtocolError: If the events break HTTP/1.1 (for
                example more body than the declared Content-Length).
            trio.BrokenResourceError: If the client has gone away.
        """
        pieces: list[bytes] = []
        for event in events:
            pieces.extend(self.h11.send_with_data_passthrough(event) or ())
        h11_conn = self.h11
        if h11_conn.our_state is h11.DONE and h11_conn.their_state is h11.DONE:
            self._become_idle()
        await self._write(pieces)

    async def _write(self, pieces: list[bytes]) -> None:
        if len(pieces) == 1:
            await self.send(pieces[0])
        elif sum(map(len, pieces)) <= _JOIN_LIMIT:
            await self.send(b"".join(pieces))
        else:
            for piece in pieces:
                if piece:
                    await self.send(piece)

    def _response_event(
        self, status: int, headers: Sequence[tuple[str, str]], reason: str | None
    ) -> h11.Response:
        if reason is None:
            reason = _phrase(status)
        return h11.Response(
            status_code=status,
            headers=[
                (name.encode("latin-1"), value.encode("latin-1"))
                for name, value in (*headers, *self.standard_headers())
            ],
            reason=reason.encode("latin-1"),
        )

    async def start_response(
        self,
        status: int,
        headers: Sequence[tuple[str, str]] = (),
        *,
        reason: str | None = None,
    ) -> None:
        """Send a status line and headers (plus :meth:`standard_headers`).

        Continue with :meth:`send_events` (``h11.Data``, ``h11.EndOfMessage``)
        or with raw bytes. Without a ``Content-Length`` header h11 frames the
        body as chunked.
        """
        await self.send_events(self._response_event(status, headers, reason))

    async def send_response(self, response: Response) -> None:
        """Send a complete :class:`Response`, framed as described there.

        Raises:
            h11.LocalProtocolError: If the response is not valid HTTP/1.1 (a
                1xx status, a body that contradicts its Content-Length, ...).
            trio.BrokenResourceError: If the client has gone away.
        """
        headers = list(response.headers)
        names = {name.lower() for name, _ in headers}
        framed = "content-length" in names or "transfer-encoding" in names
        bodiless = response.status in _BODYLESS_STATUSES
        if not framed and not bodiless and response.chunks is None:
            headers.append(("Content-Length", str(len(response.body))))
        head = self._response_event(response.status, headers, response.reason)
        if bodiless or self._head_request:
            await self.send_events(head, h11.EndOfMessage())
        elif response.chunks is None:
            body = [h11.Data(data=response.body)] if response.body else []
            await self.send_events(head, *body, h11.EndOfMessage())
        else:
            await self.send_events(head)
            await self._send_chunks(response.chunks)

    async def _send_chunks(
        self, chunks: Iterable[bytes] | AsyncIterable[bytes]
    ) -> None:
        # The last chunk is held back so that it goes out together with the
        # end of the message (see the module docstring on idle registration).
        pending = b""
        if isinstance(chunks, AsyncIterable):
            async for chunk in chunks:
                if chunk:
                    if pending:
                        await self.send_events(h11.Data(data=pending))
                    pending = chunk
        else:
            for chunk in chunks:
                if chunk:
                    if pending:
                        await self.send_events(h11.Data(data=pending))
                    pending = chunk
        last = [h11.Data(data=pending)] if pending else []
        await self.send_events(*last, h11.EndOfMessage())

    # -- receiving -----------------------------------------------------------

    async def _receive(self) -> bytes:
        try:
            return bytes(await self.stream.receive_some(_RECEIVE_SIZE))
        except trio.BrokenResourceError:
            # A reset, or a TLS failure: for a server that is just the end.
            return b""

    async def _next_event(self) -> h11.Event | type[h11.PAUSED]:
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return cast("h11.Event | type[h11.PAUSED]", event)
            self.h11.receive_data(await self._receive())

    async def receive_body(self) -> bytes:
        """Read the rest of the request body (for ``read_body=False`` routes).

        Sends ``100 Continue`` first if the client is waiting for it. Returns
        ``b""`` if the body has already been read.

        Raises:
            h11.RemoteProtocolError: If the client closes before the body is
                complete, or frames it wrongly.
        """
        if self.h11.their_state is not h11.SEND_BODY:
            return b""
        if self.h11.they_are_waiting_for_100_continue:
            go_on = h11.InformationalResponse(
                status_code=100, headers=[], reason=b"Continue"
            )
            await self.send_events(go_on)
        parts: list[bytes] = []
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Data):
                parts.append(bytes(event.data))
            else:
                # In SEND_BODY h11 produces only Data and then EndOfMessage.
                assert isinstance(event, h11.EndOfMessage)
                return b"".join(parts)

    async def discard_input(self) -> None:
        """Read and drop raw bytes until the client closes its side.

        This is how a route stalls: it returns when the client closes (or
        resets) the connection; put it in a cancel scope to bound it.
        """
        while await self._receive():
            pass

    async def _next_request(self) -> h11.Request | None:
        """Wait for the next request's head; ``None`` means close the connection."""
        scope = self._idle_scope or self._become_idle()
        try:
            event = self.h11.next_event()
            if event is h11.NEED_DATA and not self.h11.trailing_data[0]:
                after = self._host.idle_close_after
                if after is not None:
                    scope.deadline = trio.current_time() + after
                data = None
                with scope:
                    data = await self._receive()
                if data is None:
                    return None
                self.h11.receive_data(data)
                event = await self._next_event()
            elif event is h11.NEED_DATA:
                event = await self._next_event()
        finally:
            self._idle_scope = None
            self._host.connection_busy(self)
        return event if isinstance(event, h11.Request) else None

    def _become_idle(self) -> trio.CancelScope:
        if self._idle_scope is None:
            self._idle_scope = trio.CancelScope()
            self._host.connection_idle(self)
        return self._idle_scope

    def close_if_idle(self) -> bool:
        """Close the connection if it is waiting for its next request.

        It also counts as waiting once the bytes completing a keep-alive
        response are being written. The close (clean, without a response)
        happens in the connection's own task, when that next runs.

        Returns:
            Whether the connection was told to close (``False`` if it is busy,
            or was already told).
        """
        if self._idle_scope is None or self._idle_scope.cancel_called:
            return False
        self._idle_scope.cancel()
        return True

    # -- closing -------------------------------------------------------------

    def _mark_closed(self) -> bool:
        if self.closed:
            return False
        self.closed = True
        self._host.connection_closed(self)
        return True

    async def send_eof(self) -> bool:
        """Half-close: send FIN but keep reading. Plain TCP only.

        Returns:
            Whether it was done (``False`` for TLS, which cannot half-close).
        """
        if isinstance(self.stream, trio.abc.HalfCloseableStream):
            await self.stream.send_eof()
            return True
        return False

    async def close(self) -> None:
        """Close the connection cleanly: FIN (after TLS close_notify)."""
        if not self._mark_closed():
            return
        with trio.move_on_after(_CLOSE_GRACE):
            try:
                await self.stream.aclose()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    async def reset(self) -> None:
        """Abort the connection with a TCP RST (SO_LINGER 0, then close)."""
        if not self._mark_closed():
            return
        transport: trio.abc.Stream = self.stream
        while isinstance(transport, trio.SSLStream):
            transport = transport.transport_stream
        if isinstance(transport, trio.SocketStream):
            linger = struct.pack("ii", 1, 0)
            transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        await trio.aclose_forcefully(transport)

    async def _abort(self) -> None:
        if self._mark_closed():
            await trio.aclose_forcefully(self.stream)

    # -- the request loop ----------------------------------------------------

    async def _serve(self) -> None:
        try:
            await self._request_loop()
        except h11.RemoteProtocolError as exc:
            await self._reject(exc)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away
        await self.close()

    async def _request_loop(self) -> None:
        h11_conn = self.h11
        while True:
            event = await self._next_request()
            if event is None:
                return
            self.request_number += 1
            self._head_request = event.method == b"HEAD"
            path, query_string = _split_target(event)
            route = self._host.resolve(path)
            body = await self.receive_body() if route.read_body else b""
            request = self._make_request(event, path, query_string, body)
            self._host.record_request(request)
            await self._run_handler(route, request)
            if self.closed:
                return
            if h11_conn.our_state is h11.DONE:
                await self.receive_body()  # whatever the handler left unread
            if (
                h11_conn.our_state is not h11.DONE
                or h11_conn.their_state is not h11.DONE
            ):
                return
            h11_conn.start_next_cycle()

    async def _run_handler(self, route: Route, request: Request) -> None:
        try:
            await route.handler(request, self)
        except (h11.RemoteProtocolError, trio.BrokenResourceError):
            raise
        except BadRequest as exc:
            await self._answer_error(400, str(exc))
        except Exception as exc:
            self._host.record_error(exc)
            await self._answer_error(500, "Internal Server Error")

    async def _answer_error(self, status: int, message: str) -> None:
        """Answer with an error if nothing of a response has been sent yet."""
        if self.closed or self.h11.our_state is not h11.SEND_RESPONSE:
            return
        await self.send_response(Response.text(message, status))

    async def _reject(self, exc: h11.RemoteProtocolError) -> None:
        """Answer a request h11 could not parse, then let the loop close."""
        if self.closed or self.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        self._head_request = False
        response = Response.text(str(exc), exc.error_status_hint)
        response.headers = [*response.headers, ("Connection", "close")]
        try:
            await self.send_response(response)
        except (h11.LocalProtocolError, trio.BrokenResourceError):
            pass

    def _make_request(
        self, event: h11.Request, path: str, query_string: str, body: bytes
    ) -> Request:
        query: dict[str, list[str]] = {}
        for name, value in parse_qsl(query_string, keep_blank_values=True):
            query.setdefault(name, []).append(value)
        return Request(
            method=event.method.decode("latin-1"),
            target=event.target.decode("latin-1"),
            path=path,
            query=query,
            headers=[
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in event.headers.raw_items()
            ],
            body=body,
            connection_id=self.connection_id,
            request_number=self.request_number,
            http_version=event.http_version.decode("latin-1"),
        )


async def serve_connection(conn: RawConnection) -> None:
    """Serve requests on ``conn`` until it closes; its socket is closed after.

    Never raises :class:`Exception`: an error inside the server itself is
    handed to the host's ``record_error``, so that one broken connection
    cannot take the server's nursery down.
    """
    try:
        await conn._serve()
    except Exception as exc:  # pragma: no cover - a bug in the server itself
        conn._host.record_error(exc)
    finally:
        await conn._abort()


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _split_target(event: h11.Request) -> tuple[str, str]:
    """Return the (still percent-encoded) path and the query string."""
    target = event.target.decode("latin-1")
    if target.startswith(("http://", "https://")):
        parts = urlsplit(target)
        return parts.path or "/", parts.query
    path, _, query_string = target.partition("?")
    return path, query_string
