"""The HTTP/2 mode of the test server: :func:`open_h2_server` and :class:`H2Server`.

Theory of operation
-------------------

``open_h2_server()`` has the shape of :func:`~trio_pool.testing.open_server`:
it binds a listener, then runs a nursery with one *accept task* and one
*connection task* per accepted connection; leaving the ``async with`` block
cancels the nursery, so nothing outlives it, and an exception from the block
propagates as itself.

A connection task first settles the protocol. Over TLS it completes the
handshake and reads the ALPN result: ``h2`` (or no ALPN, if ``http/1.1`` was
not offered) is served by :class:`~._h2connection.H2ServerConnection`;
``http/1.1`` is handed to an ordinary HTTP/1.1 :class:`~._server.Server`
(``H2Server.http1``) that never listens itself but serves such connections with
the same routes a user added. Without TLS the connection is h2c with prior
knowledge: the client's first bytes must be the HTTP/2 preface.

How one h2 connection is served (one reader, one writer, a task per stream,
handlers that only call h2 and poke the writer) is explained in
``_h2connection.py``; what the connection carried is kept in an
:class:`~._h2record.H2ConnectionRecord` per connection, in ``server.records``.

Faults are chosen in two ways. Connection-level ones (:class:`H2Faults`: odd
SETTINGS, windows, GOAWAY after N requests, a garbage preface) come from
``faults=``, a value or a function of the connection number, read when the
connection is accepted (``server.faults`` may be changed between connections).
Request-level ones are routes under ``/fault/`` (``_h2routes.py``).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TypeVar

import trio

from ._connection import Handler, RawConnection, serve_connection
from ._h2connection import H2RawHandler, H2Route, H2ServerConnection, h2_plain
from ._h2faults import H2Faults
from ._h2record import H2ConnectionRecord
from ._h2routes import H2BuiltinRoutes
from ._messages import Request
from ._server import Server

__all__ = ["H2Server", "open_h2_server"]

_H = TypeVar("_H", bound=Handler)
_R = TypeVar("_R", bound=H2RawHandler)

FaultChoice = H2Faults | Callable[[int], H2Faults]
_HANDSHAKE_TIMEOUT = 10.0


class H2Server:
    """A running HTTP/2 test server, as yielded by :func:`open_h2_server`.

    Attributes:
        host: The host it listens on.
        port: The port it listens on.
        url: ``https://host:port`` over TLS, ``http://host:port`` for h2c.
        alpn: The ALPN protocols offered, in order of preference.
        faults: Connection-level faults for connections accepted from now on:
            an :class:`H2Faults`, or a function from the connection number
            (from 1) to one.
        records: One :class:`H2ConnectionRecord` per accepted connection, in
            order (HTTP/1.1 fallbacks included, with ``protocol="http/1.1"``).
        requests: Every request received over h2, in order (unless
            ``record_requests=False``); ``http_version`` is ``"2"``.
        request_count: How many requests were received over h2.
        errors: Exceptions raised by handlers (each answered with 500 when
            possible).
        http1: The HTTP/1.1 server that serves connections whose client chose
            ``http/1.1`` by ALPN; its ``requests`` are theirs.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: bool,
        alpn: Sequence[str],
        faults: FaultChoice,
        record_requests: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        netloc = f"[{host}]" if ":" in host else host
        self.url = f"{'https' if tls else 'http'}://{netloc}:{port}"
        self.alpn = tuple(alpn)
        self.faults = faults
        self.records: list[H2ConnectionRecord] = []
        self.requests: list[Request] = []
        self.request_count = 0
        self.errors: list[Exception] = []
        self.http1 = Server(host, port, tls=tls, record_requests=record_requests)
        self._record_requests = record_requests
        self._routes: dict[str, H2Route] = {}
        self._builtins = H2BuiltinRoutes()
        self._live: dict[int, H2ServerConnection] = {}
        self._changes = trio.lowlevel.ParkingLot()

    @property
    def connections_opened(self) -> int:
        """How many connections the server has accepted (any protocol)."""
        return len(self.records)

    @property
    def open_connections(self) -> int:
        """How many accepted connections are still open."""
        return sum(record.open for record in self.records)

    def record(self, connection_id: int) -> H2ConnectionRecord:
        """The record of connection ``connection_id`` (from 1)."""
        return self.records[connection_id - 1]

    def connection(self, connection_id: int) -> H2ServerConnection | None:
        """The live h2 connection ``connection_id``, to act on it from a test
        (``send_goaway``, ``ping``, ``update_settings``, ``close``...), or
        ``None`` once it has closed."""
        conn = self._live.get(connection_id)
        return conn if conn is not None and conn.record.open else None

    def add_route(self, path: str, handler: Handler) -> None:
        """Serve ``path`` with an ordinary ``request -> Response`` handler.

        The route is served over HTTP/1.1 fallback connections too, and takes
        precedence over the built-in routes.
        """
        self._routes[path] = H2Route(h2_plain(handler))
        self.http1.add_route(path, handler)

    def route(self, path: str) -> Callable[[_H], _H]:
        """Decorator form of :meth:`add_route`."""

        def register(handler: _H) -> _H:
            self.add_route(path, handler)
            return handler

        return register

    def add_raw_route(
        self, path: str, handler: H2RawHandler, *, read_body: bool = True
    ) -> None:
        """Serve ``path`` with a raw handler that answers on its :class:`H2Stream`.

        Args:
            path: The exact path to match.
            handler: ``async def handler(request, stream) -> None``.
            read_body: If false the handler is called as soon as the request
                headers have arrived (``request.body`` is empty); it may read
                the body with ``stream.receive_some()`` or not at all.
        """
        self._routes[path] = H2Route(handler, read_body)

    def raw_route(self, path: str, *, read_body: bool = True) -> Callable[[_R], _R]:
        """Decorator form of :meth:`add_raw_route`."""

        def register(handler: _R) -> _R:
            self.add_raw_route(path, handler, read_body=read_body)
            return handler

        return register

    async def wait_until(self, condition: Callable[[H2Server], bool]) -> None:
        """Wait until ``condition(server)`` is true, without polling.

        Checked again whenever a connection receives frames, a stream's
        handler finishes, or a connection opens or closes. If cancelled, it
        simply stops waiting.
        """
        while not condition(self):
            await self._changes.park()

    # -- used by the connections ---------------------------------------------

    def resolve(self, path: str) -> H2Route:
        """The route for ``path`` (a user route, else a built-in one)."""
        route = self._routes.get(path)
        return route if route is not None else self._builtins.resolve(path)

    def record_request(self, request: Request) -> None:
        """Count (and keep, unless told not to) a request received."""
        self.request_count += 1
        if self._record_requests:
            self.requests.append(request)
        self.changed()

    def record_error(self, exc: Exception) -> None:
        """Keep an exception a route handler raised."""
        self.errors.append(exc)
        self.changed()

    def changed(self) -> None:
        """Wake ``wait_until`` callers: something they watch may have changed."""
        self._changes.unpark_all()

    def _faults_for(self, connection_id: int) -> H2Faults:
        faults = self.faults
        return faults if isinstance(faults, H2Faults) else faults(connection_id)

    # -- tasks -----------------------------------------------------------------

    async def _accept_loop(
        self,
        listener: trio.SocketListener,
        nursery: trio.Nursery,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        async with listener:
            while True:
                tcp_stream = await listener.accept()
                record = H2ConnectionRecord(len(self.records) + 1)
                self.records.append(record)
                self.changed()
                nursery.start_soon(self._serve, tcp_stream, record, ssl_context)

    async def _serve(
        self,
        tcp_stream: trio.SocketStream,
        record: H2ConnectionRecord,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        stream: trio.abc.Stream = tcp_stream
        try:
            if ssl_context is not None:
                stream = await self._handshake(tcp_stream, ssl_context, record)
            if record.protocol == "http/1.1":
                await self._serve_http1(stream, record)
                return
            conn = H2ServerConnection(
                self, stream, record, self._faults_for(record.connection_id)
            )
            self._live[record.connection_id] = conn
            await conn.serve()
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError):
            pass  # a failed handshake only loses that connection
        finally:
            self._live.pop(record.connection_id, None)
            record.open = False
            self.changed()
            await trio.aclose_forcefully(stream)

    async def _handshake(
        self,
        tcp_stream: trio.SocketStream,
        ssl_context: ssl.SSLContext,
        record: H2ConnectionRecord,
    ) -> trio.SSLStream[trio.SocketStream]:
        ssl_stream = trio.SSLStream(tcp_stream, ssl_context, server_side=True)
        with trio.fail_after(_HANDSHAKE_TIMEOUT):
            await ssl_stream.do_handshake()
        record.alpn = ssl_stream.selected_alpn_protocol()
        if record.alpn == "http/1.1" or (
            record.alpn is None and "http/1.1" in self.alpn
        ):
            record.protocol = "http/1.1"
        return ssl_stream

    async def _serve_http1(
        self, stream: trio.abc.Stream, record: H2ConnectionRecord
    ) -> None:
        await serve_connection(RawConnection(self.http1, stream, record.connection_id))


@asynccontextmanager
async def open_h2_server(
    host: str = "127.0.0.1",
    port: int = 0,
    ssl_context: ssl.SSLContext | None = None,
    *,
    alpn: Sequence[str] = ("h2", "http/1.1"),
    faults: FaultChoice | None = None,
    record_requests: bool = True,
) -> AsyncIterator[H2Server]:
    """Run an HTTP/2 test server for the duration of an ``async with`` block.

    Args:
        host: The address to listen on (the first address of a name).
        port: The port; ``0`` picks a free one (see ``server.port``).
        ssl_context: A server-side context: serve h2 over TLS, negotiated by
            ALPN (the context's ALPN protocols are set to ``alpn``). Without
            one, serve h2c with prior knowledge.
        alpn: The protocols to offer by ALPN. A connection whose client picks
            ``http/1.1`` is served by the HTTP/1.1 server, ``server.http1``;
            pass ``("h2",)`` to refuse HTTP/1.1.
        faults: Connection-level faults: an :class:`H2Faults`, or a function
            from the connection number (from 1) to one. Default: none.
        record_requests: Keep every request in ``server.requests``.

    Yields:
        The :class:`H2Server`, already accepting connections.

    If the block is cancelled or raises, the server stops just the same; an
    exception from the block propagates as itself, not in an exception group.
    """
    if ssl_context is not None:
        ssl_context.set_alpn_protocols(list(alpn))
    listeners = await trio.open_tcp_listeners(port, host=host)
    for extra in listeners[1:]:
        await extra.aclose()
    listener = listeners[0]
    server = H2Server(
        host,
        listener.socket.getsockname()[1],
        tls=ssl_context is not None,
        alpn=alpn,
        faults=faults if faults is not None else H2Faults(),
        record_requests=record_requests,
    )
    failure: BaseException | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server._accept_loop, listener, nursery, ssl_context)
        try:
            yield server
        except BaseException as exc:
            if isinstance(exc, (trio.Cancelled, KeyboardInterrupt, GeneratorExit)):
                raise
            failure = exc  # re-raised outside the nursery, unwrapped
        finally:
            nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure
