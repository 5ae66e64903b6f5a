"""The test server: :func:`open_server` and :class:`Server`.

Theory of operation
-------------------

``open_server()`` is an async context manager in the usual trio shape. It binds
a listening socket, then opens a nursery holding one *accept task* and, beside
it, one *connection task* per accepted connection. Leaving the ``async with``
block cancels that nursery: the accept task stops and closes the listener, every
connection task is cancelled wherever it is waiting and closes its socket in a
``finally``. Nothing the server started outlives the block.

A connection task owns its connection completely (see ``_connection.py``): it
reads a request with h11, finds the route, runs the handler in the same task,
writes the answer, and loops while the connection stays keep-alive. One task per
connection means a handler that stalls forever only ties up its own connection,
and there is no shared queue, lock or polling anywhere; the server is as fast
as h11 and the socket allow.

The connection reaches the server only through the ``ConnectionHost`` methods
(finding routes, recording requests and errors, reporting that it is idle, busy
or closed); the server drives a connection only through ``serve_connection``
and its public methods. The server keeps the sets of open and idle connections
itself, and ``_connection.py`` does not import this module.

Connection tasks never let an exception escape. A client going away is just
the end of that connection; an exception from a handler is recorded in
``Server.errors`` and answered with ``500`` if nothing has been sent yet. Hence
the nursery can only ever raise what the ``async with`` body raised, which
:func:`open_server` passes on unwrapped rather than inside an exception group.

Time enters in one place only: ``idle_close_after``, which becomes the deadline
of the cancel scope around the wait for a connection's next request. The fault
routes that sleep (``/fault/drip``) do so on purpose, in their own task.
"""

from __future__ import annotations

import errno
import logging
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import trio

from ._connection import (
    Handler,
    RawConnection,
    RawHandler,
    Route,
    plain,
    serve_connection,
)
from ._messages import Request
from ._routes import BuiltinRoutes

__all__ = ["Server", "open_server"]

_log = logging.getLogger("trio_pool.testing")

_H = TypeVar("_H", bound=Handler)
_R = TypeVar("_R", bound=RawHandler)

# accept() fails with these when the process or system is out of resources;
# waiting a moment (for connections to close) is the only sensible reaction.
_ACCEPT_RETRY_ERRNOS = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
)


class Server:
    """A running test server, as yielded by :func:`open_server`.

    Attributes:
        host: The host it listens on, as given to :func:`open_server`.
        port: The port it listens on.
        url: ``http://host:port`` (``https://`` with TLS; IPv6 hosts in
            brackets), without a trailing slash.
        idle_close_after: Seconds a connection may wait for its next request
            before the server closes it, or ``None`` for no limit.
        requests: Every request received, in order of arrival (unless
            ``record_requests=False`` was given).
        request_count: How many requests the server has received.
        errors: Exceptions raised by handlers (each answered with 500 when
            possible), and any unexpected internal error, for assertions.
        fail_counts: How many requests each ``/fail/<n>?key=`` key has seen.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: bool = False,
        idle_close_after: float | None = None,
        record_requests: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.idle_close_after = idle_close_after
        scheme = "https" if tls else "http"
        netloc = f"[{host}]" if ":" in host else host
        self.url = f"{scheme}://{netloc}:{port}"
        self.requests: list[Request] = []
        self.request_count = 0
        self._record_requests = record_requests
        self.errors: list[Exception] = []
        self._routes: dict[str, Route] = {}
        self._builtins = BuiltinRoutes()
        self.fail_counts = self._builtins.fail_counts
        self._connections_opened = 0
        self._open: set[RawConnection] = set()
        self._idle: set[RawConnection] = set()
        self._changes = trio.lowlevel.ParkingLot()

    @property
    def connections_opened(self) -> int:
        """How many connections the server has accepted in total."""
        return self._connections_opened

    @property
    def open_connections(self) -> int:
        """How many accepted connections the server has not closed yet."""
        return len(self._open)

    def add_route(self, path: str, handler: Handler) -> None:
        """Serve ``path`` (exact match, no query) with an ordinary handler.

        The handler is ``async def handler(request: Request) -> Response``. A
        route added here takes precedence over a built-in route.
        """
        self._routes[path] = Route(plain(handler))

    def route(self, path: str) -> Callable[[_H], _H]:
        """Decorator form of :meth:`add_route`."""

        def register(handler: _H) -> _H:
            self.add_route(path, handler)
            return handler

        return register

    def add_raw_route(
        self, path: str, handler: RawHandler, *, read_body: bool = True
    ) -> None:
        """Serve ``path`` with a raw handler that answers by itself.

        The handler is ``async def handler(request, conn: RawConnection) ->
        None``; see :class:`RawConnection`.

        Args:
            path: The exact path to match.
            handler: The raw handler.
            read_body: If false the handler is called as soon as the request
                head has arrived, with an empty ``request.body``; it may read
                the body with ``conn.receive_body()`` or not at all.
        """
        self._routes[path] = Route(handler, read_body)

    def raw_route(self, path: str, *, read_body: bool = True) -> Callable[[_R], _R]:
        """Decorator form of :meth:`add_raw_route`."""

        def register(handler: _R) -> _R:
            self.add_raw_route(path, handler, read_body=read_body)
            return handler

        return register

    async def wait_until(self, condition: Callable[[Server], bool]) -> None:
        """Wait until ``condition(server)`` is true, without polling.

        The condition is checked now and again whenever the server records a
        request or an error, or a connection opens or closes; e.g.
        ``await server.wait_until(lambda s: s.open_connections == 0)``.

        If cancelled, it simply stops waiting.
        """
        while not condition(self):
            await self._changes.park()

    def close_idle_connections(self) -> int:
        """Close every connection that is waiting for its next request.

        The connections are closed (cleanly, without a response) by their own
        tasks as soon as those next run. A connection whose keep-alive
        response has been fully handed to the socket counts as waiting, even
        if its task has not got round to waiting yet.

        Returns:
            How many connections were told to close.
        """
        return sum(conn.close_if_idle() for conn in list(self._idle))

    # -- the ConnectionHost interface, called by the connections ---------------

    def resolve(self, path: str) -> Route:
        """Return the route for ``path``: a user route, else a built-in one."""
        route = self._routes.get(path)
        return route if route is not None else self._builtins.resolve(path)

    def record_request(self, request: Request) -> None:
        """Count ``request`` (and keep it, unless ``record_requests=False``)."""
        self.request_count += 1
        if self._record_requests:
            self.requests.append(request)
        self._changes.unpark_all()

    def record_error(self, exc: Exception) -> None:
        """Add ``exc`` to :attr:`errors` and log it."""
        self.errors.append(exc)
        _log.error("trio_pool.testing: handler failed", exc_info=exc)
        self._changes.unpark_all()

    def connection_idle(self, conn: RawConnection) -> None:
        """Expose ``conn`` to :meth:`close_idle_connections`."""
        self._idle.add(conn)

    def connection_busy(self, conn: RawConnection) -> None:
        """Stop exposing ``conn`` to :meth:`close_idle_connections`."""
        self._idle.discard(conn)

    def connection_closed(self, conn: RawConnection) -> None:
        """Stop counting ``conn`` as open (or idle)."""
        self._open.discard(conn)
        self._idle.discard(conn)
        self._changes.unpark_all()

    # -- tasks -----------------------------------------------------------------

    async def _accept_loop(
        self,
        listener: trio.SocketListener,
        nursery: trio.Nursery,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        async with listener:
            while True:
                try:
                    tcp_stream = await listener.accept()
                except OSError as exc:  # pragma: no cover - needs fd exhaustion
                    if exc.errno not in _ACCEPT_RETRY_ERRNOS:
                        raise
                    await trio.sleep(0.05)
                    continue
                self._connections_opened += 1
                stream: trio.abc.Stream = tcp_stream
                if ssl_context is not None:
                    stream = trio.SSLStream(tcp_stream, ssl_context, server_side=True)
                conn = RawConnection(self, stream, self._connections_opened)
                self._open.add(conn)
                self._changes.unpark_all()
                nursery.start_soon(serve_connection, conn)


@asynccontextmanager
async def open_server(
    host: str = "127.0.0.1",
    port: int = 0,
    ssl_context: ssl.SSLContext | None = None,
    idle_close_after: float | None = None,
    *,
    record_requests: bool = True,
) -> AsyncIterator[Server]:
    """Run a test HTTP/1.1 server for the duration of an ``async with`` block.

    Args:
        host: The address to listen on. A name that resolves to several
            addresses listens on the first only.
        port: The port; ``0`` picks a free one (see ``server.port``).
        ssl_context: A server-side context to serve HTTPS. A client whose TLS
            handshake fails only loses its own connection.
        idle_close_after: Close a connection that waits longer than this many
            seconds for its next request (or its first), sending nothing.
        record_requests: Keep every request in ``server.requests``. Turn it
            off for long benchmarks, where the list would only grow;
            ``server.request_count`` still counts.

    Yields:
        The :class:`Server`, already accepting connections.

    If the block is cancelled or raises, the server stops just the same; an
    exception from the block propagates as itself, not in an exception group.
    """
    listeners = await trio.open_tcp_listeners(port, host=host)
    for extra in listeners[1:]:
        await extra.aclose()
    listener = listeners[0]
    bound_port = listener.socket.getsockname()[1]
    server = Server(
        host,
        bound_port,
        tls=ssl_context is not None,
        idle_close_after=idle_close_after,
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
            # Re-raised below, outside the nursery, so that it is not wrapped
            # into an ExceptionGroup.
            failure = exc
        finally:
            nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure
