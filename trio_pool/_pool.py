"""HTTPConnectionPool: a nursery of connection tasks, a limiter, an idle stack.

The pool holds state and drives the lease lifecycle; it does not know how
bytes get to the host (``_transport``), what goes on the wire (``_request``
builds the head, ``_http11`` speaks the protocol), nor how retries and
redirects are decided (``_send`` and the pure ``_retry``/``_redirect``).

Theory of operation
-------------------
``async with HTTPConnectionPool(...) as pool`` opens a nursery. Each connection
the pool opens has a task there (see ``_connection``) that owns it while idle
and closes it at the end; leaving the block discards every connection and
waits for those tasks, so nothing outlives the block.

The pool's state has one owner, this class, and every operation on it is O(1):

* ``_limiter`` — a ``trio.CapacityLimiter`` of ``maxsize`` tokens, FIFO-fair.
  A request holds a token for exactly as long as its response holds the
  connection. With ``block=False`` a request that finds no token gets an
  *overflow* connection, closed after use instead of kept.
* ``_idle`` — an insertion-ordered dict used as a stack (LIFO reuse: the most
  recently used connection is the most likely to still be alive); removing a
  connection the server dropped is a dict delete.
* ``_conns`` — every live connection, so closing the pool reaches them all.

A checkout is a *lease* (token + connection). It is given back by one
synchronous call, exactly once, on every path — end of body, release, error,
cancellation — so no ``await`` is needed on the way out of a cancelled task.
A connection whose exchange did not finish cleanly is never reused.

Trace hooks are called only after the books are settled, and an exception
from one is logged (``trio_pool.trace``) and dropped: a hook can never leak a
token, strand a connection, or crash a connection's task.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

import trio

from . import _send
from ._connection import Connection
from ._exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    EmptyPoolError,
    HTTP11Required,
    LocationValueError,
    ReadTimeoutError,
)
from ._fields import encode_request
from ._headers import HTTPHeaderDict, copy_request_headers
from ._http11 import HTTP11Connection
from ._origin import Origin
from ._protocol import RequestHead
from ._request import build_head
from ._response import HTTPResponse
from ._retry import Retry
from ._timeout import DEFAULT_TIMEOUT, Timeout, TimeoutLike
from ._trace import TraceCallback, TraceEvent, call_hook
from ._translate import translate_errors
from ._transport import DIRECT, Dial, Route, SocketOption, SocketOptions, open_stream
from ._url import encode_target, parse_url

if TYPE_CHECKING:
    from typing_extensions import Self

    # Imported when a connection speaks HTTP/2: h2 is an optional extra.
    from ._http2 import HTTP2Connection
    from ._tls import TLSConfig

__all__ = ["HTTPConnectionPool", "PoolStatistics"]

log = logging.getLogger("trio_pool.pool")
#: Bodies up to this size are sent without watching for an early answer.
_SMALL_BODY = 64 * 1024


@dataclass(frozen=True, slots=True)
class PoolStatistics:
    """A snapshot of a pool's connections and counters.

    Attributes:
        idle: connections open and waiting for a request.
        in_use: connections leased to a request or a streaming response.
        waiting: requests waiting for a limiter token (``block=True``).
        created: connections opened since the pool started.
        reused: checkouts served by an idle connection.
        dropped: connections closed before the pool closed (server closed
            them, keep-alive expired, or an exchange did not finish cleanly).
        tokens_free: limiter tokens not held by any request.
        h2_connections: open HTTP/2 connections.
        streams_active: HTTP/2 streams carrying a request or a response.
        streams_waiting: requests waiting for a stream or a connection
            (``block=True`` pools that may speak HTTP/2).
        streams_reset: streams this pool reset (cancelled, abandoned).
    """

    idle: int
    in_use: int
    waiting: int
    created: int
    reused: int
    dropped: int
    tokens_free: int
    h2_connections: int = 0
    streams_active: int = 0
    streams_waiting: int = 0
    streams_reset: int = 0


class _Waiter:
    """A request queued for room on a pool that may speak HTTP/2."""

    __slots__ = ("event", "lease")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.lease: _Lease | None = None


class _Lease:
    """One checkout: a connection, and whether it holds a limiter token."""

    __slots__ = ("conn", "holds_global", "holds_token", "http", "pool", "released")

    def __init__(self, pool: HTTPConnectionPool, holds_token: bool) -> None:
        self.pool = pool
        self.holds_token = holds_token
        self.holds_global = False
        self.conn: Connection | HTTP2Connection | None = None
        # The exchange: the connection's engine, or an HTTP/2 stream.
        self.http: Any = None
        self.released = False

    def release(self, reuse: bool) -> None:
        self.pool._release(self, reuse)


class HTTPConnectionPool:
    """A pool of keep-alive connections to one ``http://`` host.

    Use it as ``async with HTTPConnectionPool(host, port) as pool:``; the pool
    only works inside that block (``ClosedPoolError`` otherwise).

    Args:
        host: the host name or IP address (normalised: lowercase, IDNA).
        port: the port; 80 by default.
        timeout: the default :class:`Timeout` (or seconds) for requests.
        maxsize: the number of connections kept, and the number of limiter
            tokens.
        block: if True, a request waits (up to ``pool_timeout``) for a token;
            if False, it opens an extra connection that is closed after use.
        headers: default request headers (replaced wholesale by per-request
            ``headers=``, as in urllib3).
        retries: the default retry policy (``Retry``, int, False);
            ``Retry.DEFAULT`` (three retries) if None.
        keepalive_expiry: seconds an idle connection is kept before the pool
            closes it.
        trace: a callback given a :class:`TraceEvent` for each step the pool
            takes (checkout, connect, request, response, release, close).
        route: how connections reach the host (a proxy tunnel, or forwarding
            to an HTTP proxy); direct by default. Managers set this.
        global_limiter: a limiter shared with other pools (a manager's
            ``max_connections``), taken after this pool's own token.
        source_address: a ``(host, port)`` to bind to; the port is ignored.
        happy_eyeballs_delay: seconds before trying a host's next address.
        socket_options: ``(level, option, value)`` triples applied to each
            new TCP socket.
        uds: connect to this Unix domain socket instead of TCP; ``host``
            still names the ``Host`` header.
        dial: an ``async (host, port) -> Stream`` that opens raw streams in
            place of TCP (for tests).
        enforce_content_length: raise ``IncompleteRead`` for a body shorter
            than its Content-Length (urllib3's default, True).
        http2: ``True`` to offer HTTP/2 by ALPN on https (HTTP/1.1 when the
            server picks it; plain ``http://`` stays HTTP/1.1);
            ``"prior-knowledge"`` to speak h2c from the first byte on
            ``http://`` as well. False (the default): HTTP/1.1 only.
        http2_max_streams: the most streams one HTTP/2 connection carries at
            once (the server's MAX_CONCURRENT_STREAMS may lower it).

    Raises:
        LocationValueError: no host.
        LocationParseError: an invalid host name.
    """

    scheme = "http"
    default_port = 80

    def __init__(
        self,
        host: str,
        port: int | None = None,
        timeout: TimeoutLike = DEFAULT_TIMEOUT,
        maxsize: int = 1,
        block: bool = False,
        headers: Any = None,
        retries: Retry | int | bool | None = None,
        *,
        keepalive_expiry: float = 60.0,
        trace: TraceCallback | None = None,
        route: Route = DIRECT,
        global_limiter: trio.CapacityLimiter | None = None,
        source_address: tuple[str, int] | None = None,
        happy_eyeballs_delay: float = 0.25,
        socket_options: Sequence[SocketOption] | None = None,
        uds: str | None = None,
        dial: Dial | None = None,
        enforce_content_length: bool = True,
        http2: bool | str = False,
        http2_max_streams: int = 100,
    ) -> None:
        if not host:
            raise LocationValueError("No host specified.")
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        if http2 not in (False, True, "prior-knowledge"):
            raise ValueError(
                f"http2 must be True, False or 'prior-knowledge': {http2!r}"
            )
        if http2_max_streams < 1:
            raise ValueError("http2_max_streams must be at least 1")
        if http2:
            _require_h2()
        self.origin = Origin.make(self.scheme, host, port)
        self.host = self.origin.host
        self.port = port
        self.timeout = Timeout.resolve(timeout, DEFAULT_TIMEOUT)
        self.maxsize = maxsize
        self.block = block
        self.headers = HTTPHeaderDict(headers) if headers else HTTPHeaderDict()
        self.retries: Retry = Retry.from_int(retries, default=Retry.DEFAULT)
        self.keepalive_expiry = keepalive_expiry
        self.enforce_content_length = enforce_content_length
        self.route = route
        self.sockets = SocketOptions(
            source_address, happy_eyeballs_delay, socket_options, uds, dial
        )
        self._global_limiter = global_limiter
        self._trace = trace
        self._host_header = self.origin.authority.encode("ascii")
        self._origin_text = str(self.origin)
        self._limiter = trio.CapacityLimiter(maxsize)
        self._idle: dict[Connection | HTTP2Connection, None] = {}
        self._plain_heads: dict[tuple[str, str], RequestHead] = {}
        self._conns: set[Connection] = set()
        self._nursery: trio.Nursery | None = None
        self._nursery_cm: Any = None
        self._closed = False
        self._in_use = 0
        self._created = 0
        self._reused = 0
        self._dropped = 0
        self._init_h2_books(http2, http2_max_streams)

    def _init_h2_books(self, http2: bool | str, max_streams: int) -> None:
        self.http2 = http2
        self.http2_max_streams = max_streams
        # HTTP/2 books: connections with a free stream and a token already
        # held, requests waiting for room, and the first connection's probe
        # (while the origin's protocol is unknown, others wait for it).
        self._h2_conns: set[HTTP2Connection] = set()
        self._h2_room: dict[HTTP2Connection, None] = {}
        # Requests waiting for room, first come first served: a freed stream
        # is handed to the first of them directly, so no one barges in.
        self._waiters: dict[_Waiter, None] = {}
        self._protocol: str | None = None
        self._probe: trio.Event | None = None
        self._resets = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(host={self.host!r}, port={self.port!r})"

    # -- lifetime ---------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._nursery_cm is not None or self._nursery is not None:
            raise RuntimeError(f"{self!r} can be entered only once")
        self._nursery_cm = trio.open_nursery()
        self.attach(await self._nursery_cm.__aenter__())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close_all()
        # The body's own exception is not handed to the nursery, which would
        # wrap it in an ExceptionGroup; it propagates unchanged after this.
        await self._nursery_cm.__aexit__(None, None, None)
        self._nursery = None

    def attach(self, nursery: trio.Nursery) -> None:
        """Run this pool's connection tasks in ``nursery`` (a manager's);
        the pool is then not entered itself. Used by managers."""
        self._nursery = nursery

    async def aclose(self) -> None:
        """Close every connection; later requests raise ``ClosedPoolError``.

        Responses still streaming from the pool fail on their next read.
        Leaving the ``async with`` block does this too. If cancelled: the
        connections are closed all the same (closing is synchronous; only the
        final checkpoint is cancelled).
        """
        self.close_all()
        await trio.lowlevel.checkpoint()

    def close_all(self) -> None:
        """Close every connection now (synchronous; for managers)."""
        self.retire()
        for conn in list(self._conns):
            conn.discard()
        for h2conn in list(self._h2_conns):
            h2conn.close()
        # Wake every request still waiting for a token: it gets one, finds
        # the pool closed and raises ClosedPoolError instead of waiting on.
        self._limiter.total_tokens = math.inf
        self._wake_waiters(look_again=len(self._waiters))

    def retire(self) -> None:
        """Stop taking requests and close idle connections; connections still
        leased close when their responses give them back."""
        self._closed = True
        idle, self._idle = self._idle, {}
        for conn in idle:
            conn.discard() if isinstance(conn, Connection) else conn.close()
        self._h2_room.clear()

    def _check_open(self) -> trio.Nursery:
        if self._closed or self._nursery is None:
            raise ClosedPoolError(
                self, "Pool is not open: use it inside `async with pool:`"
            )
        return self._nursery

    def statistics(self) -> PoolStatistics:
        """A frozen snapshot of the pool's connections and counters."""
        limiter = self._limiter.statistics()
        parked = len(self._waiters)
        return PoolStatistics(
            idle=len(self._idle),
            in_use=self._in_use,
            waiting=limiter.tasks_waiting + parked,
            created=self._created,
            reused=self._reused,
            dropped=self._dropped,
            tokens_free=max(self.maxsize - limiter.borrowed_tokens, 0),
            h2_connections=len(self._h2_conns),
            streams_active=sum(conn.active for conn in self._h2_conns),
            streams_waiting=parked,
            streams_reset=self._resets + sum(c.resets for c in self._h2_conns),
        )

    # -- checkout and release ---------------------------------------------------

    async def _acquire(self) -> _Lease:
        """Get a limiter token (or, with ``block=False``, maybe none).

        With ``block=True`` this waits for a token, FIFO; the caller bounds
        the wait with a cancel scope (``pool_timeout``).
        """
        self._check_open()
        if self.http2:
            return await self._acquire_multiplexed()
        lease = _Lease(self, holds_token=True)
        if self.block:
            # Only a contended limiter is waited on (FIFO, a checkpoint); a
            # free token is taken at once: the exchange's first send is this
            # request's checkpoint, and a schedule point here costs more
            # than the rest of the checkout.
            try:
                self._limiter.acquire_on_behalf_of_nowait(lease)
            except trio.WouldBlock:
                await self._limiter.acquire_on_behalf_of(lease)
        else:
            try:
                self._limiter.acquire_on_behalf_of_nowait(lease)
            except trio.WouldBlock:
                lease.holds_token = False
        return await self._take_global(lease)

    async def _acquire_multiplexed(self) -> _Lease:
        """Checkout for a pool that may speak HTTP/2: a free stream on a
        connection in use; else a token for a connection (idle or new);
        else wait (``block=True``) for either, FIFO; else an extra
        connection. While the first connection finds out which protocol the
        origin speaks, others wait for its answer."""
        await trio.lowlevel.checkpoint()
        woken = False  # a woken waiter goes first: it does not queue again
        while True:
            self._check_open()
            if self._waiters and not woken:
                lease = await self._wait_for_room()
                if lease is not None:
                    return lease
                woken = True
                continue
            woken = False
            lease = self._stream_lease()
            if lease is not None:
                return lease
            if self._probe is not None:
                await self._probe.wait()
                continue
            lease = _Lease(self, holds_token=True)
            try:
                self._limiter.acquire_on_behalf_of_nowait(lease)
            except trio.WouldBlock:
                if self.block:
                    handed = await self._wait_for_room()
                    if handed is not None:
                        return handed
                    woken = True
                    continue
                lease.holds_token = False
            return await self._take_global(lease)

    async def _wait_for_room(self) -> _Lease | None:
        """Queue (FIFO) until a stream is handed over, or something else
        changed (a token or a connection freed: look again)."""
        waiter = _Waiter()
        self._waiters[waiter] = None
        try:
            await waiter.event.wait()
        except BaseException:
            self._waiters.pop(waiter, None)
            if waiter.lease is not None:
                waiter.lease.release(reuse=False)
            raise
        return waiter.lease

    def _wake_waiters(self, look_again: int = 0) -> None:
        """Hand free streams to the first waiters, then wake ``look_again``
        more (a token or a connection was freed) to try for themselves."""
        for conn in list(self._h2_room):
            while self._waiters and conn in self._h2_room:
                waiter = next(iter(self._waiters))
                del self._waiters[waiter]
                waiter.lease = self._stream_lease()
                waiter.event.set()
        while self._waiters and look_again > 0:
            waiter = next(iter(self._waiters))
            del self._waiters[waiter]
            waiter.event.set()
            look_again -= 1

    def _stream_lease(self) -> _Lease | None:
        """A new stream on an HTTP/2 connection that has room (O(1))."""
        conn = next(iter(self._h2_room), None)
        if conn is None:
            return None
        lease = _Lease(self, holds_token=False)
        lease.conn = conn
        lease.http = conn.open_stream()
        if not conn.has_room():
            del self._h2_room[conn]
        self._reused += 1
        return lease

    async def _take_global(self, lease: _Lease) -> _Lease:
        if self._global_limiter is not None:
            # A manager-wide limit: taken after this pool's token, so a task
            # waiting here holds only its own host's token, and every global
            # token belongs to a request that is making progress (no cycle).
            try:
                await self._global_limiter.acquire_on_behalf_of(lease)
            except BaseException:
                self._release(lease, reuse=False)
                raise
            lease.holds_global = True
        return lease

    def _lease_now(self) -> _Lease | None:
        """The common checkout without a coroutine: a free token of an
        HTTP/1.1 pool with no manager-wide limit; else None (``_checkout``)."""
        if self.http2 or self._global_limiter is not None:
            return None
        self._check_open()
        lease = _Lease(self, holds_token=True)
        try:
            self._limiter.acquire_on_behalf_of_nowait(lease)
        except trio.WouldBlock:
            return None
        return lease

    def _reuse_now(self, lease: _Lease) -> bool:
        """Lend ``lease`` the newest idle connection if it can be taken
        without waiting (see ``Connection.take_at_once``). False leaves the
        rest (TLS hand-offs and probes, HTTP/2) to ``_connect``."""
        idle = self._idle
        while lease.holds_token and idle:
            conn = next(reversed(idle))
            if not isinstance(conn, Connection):
                return False
            taken = conn.take_at_once()
            if taken is None:
                return False
            del idle[conn]
            if taken:
                self._reused += 1
                self._lend(lease, conn)
                if self._trace:
                    self._emit("reuse", trio.current_time())
                return True
        return False

    async def _checkout(self, pool_timeout: float | None) -> _Lease:
        """A lease, waiting at most ``pool_timeout`` for a token.

        Raises:
            EmptyPoolError: no token was freed in time (``block=True``).
        """
        if not self.block or pool_timeout is None:
            return await self._acquire()
        with trio.move_on_after(pool_timeout):
            return await self._acquire()
        raise EmptyPoolError(
            self, "Pool is full and no connection was freed within pool_timeout"
        )

    async def _connect(self, lease: _Lease, limits: Timeout) -> None:
        """Give the lease a connection: an idle one if possible, else a new one."""
        nursery = self._check_open()
        started = trio.current_time() if self._trace else 0.0
        if lease.holds_token:
            idle = self._idle
            while idle:
                conn, _ = idle.popitem()
                if isinstance(conn, Connection):
                    if not await conn.take():
                        continue
                    self._reused += 1
                    self._lend(lease, conn)
                elif conn.has_room():
                    self._reused += 1
                    self._lend_h2(lease, conn)
                else:
                    continue  # draining: it closes by itself
                if self._trace:
                    self._emit("reuse", started)
                return
        stream = await self._open_probing(limits)
        self._created += 1
        if self._speaks_h2(stream):
            from ._http2 import HTTP2Connection

            h2conn = HTTP2Connection(
                stream, self, self.http2_max_streams, self._h2_changed
            )
            self._h2_conns.add(h2conn)
            nursery.start_soon(h2conn.run, self._h2_closed)
            self._lend_h2(lease, h2conn)
        else:
            self._settle_protocol("h1")
            conn = Connection(HTTP11Connection(stream, self))
            self._conns.add(conn)
            nursery.start_soon(conn.run, self._on_closed)
            self._lend(lease, conn)
        log.debug(
            "Starting new %s connection (%d): %s:%s",
            self.scheme.upper(),
            self._created,
            self.host,
            self.origin.port,
        )
        if self._trace:
            self._emit("connect", started, **_connection_facts(stream))

    def _emit(self, name: str, started: float, **detail: Any) -> None:
        assert self._trace is not None
        now = trio.current_time()
        event = TraceEvent(name, str(self.origin), started, now - started, detail)
        call_hook(self._trace, event)

    def _lend(self, lease: _Lease, conn: Connection) -> None:
        lease.conn = conn
        lease.http = conn.http
        self._in_use += 1

    # -- HTTP/2 books -------------------------------------------------------------

    async def _open_probing(self, limits: Timeout) -> trio.abc.Stream:
        """Open a stream; while the origin's protocol is unknown, the first
        one opened is the probe that other requests wait for."""
        if not self.http2 or self._protocol is not None or self._probe is not None:
            return await self._open_stream(limits)
        self._probe = trio.Event()
        try:
            return await self._open_stream(limits)
        except BaseException:
            self._settle_protocol(None)  # the waiters each try for themselves
            raise

    def _settle_protocol(self, protocol: str | None) -> None:
        if protocol is not None and self._protocol != "h1-only":
            self._protocol = protocol
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.set()

    def _speaks_h2(self, stream: trio.abc.Stream) -> bool:
        if not self.http2 or self._protocol == "h1-only":
            return False
        if isinstance(stream, trio.SSLStream):
            return bool(stream.selected_alpn_protocol() == "h2")
        return self.http2 == "prior-knowledge" and self.route.forward_proxy is None

    def _lend_h2(self, lease: _Lease, conn: HTTP2Connection) -> None:
        """An HTTP/2 connection goes from no streams to one: the lease's
        tokens now belong to the connection until its last stream ends."""
        conn.token_lease = lease
        conn.set_idle_deadline(math.inf)
        lease.conn = conn
        lease.http = conn.open_stream()
        self._in_use += 1
        if conn.has_room():
            self._h2_room[conn] = None

    def _h2_changed(self, conn: HTTP2Connection) -> None:
        """Told by an HTTP/2 connection when its streams or limits change."""
        if conn.active == 0 and conn.token_lease is not None:
            self._h2_unused(conn)
        if conn.active > 0 and conn.has_room():
            self._h2_room[conn] = None
        else:
            self._h2_room.pop(conn, None)
        if self._probe is not None and (conn.settled or conn.draining):
            self._settle_protocol("h2")
        if self._waiters:
            closing = conn.draining or conn.closed
            self._wake_waiters(look_again=len(self._waiters) if closing else 0)

    def _h2_unused(self, conn: HTTP2Connection) -> None:
        """The last stream ended: the tokens go back, the connection idles
        (or closes, if it was an extra one or is draining)."""
        holder = conn.token_lease
        assert isinstance(holder, _Lease)
        conn.token_lease = None
        self._in_use -= 1
        if holder.holds_token and not (conn.draining or self._closed):
            conn.set_idle_deadline(trio.current_time() + self.keepalive_expiry)
            self._idle[conn] = None
        else:
            conn.close()
        self._give_back_tokens(holder)

    def _h2_closed(self, conn: HTTP2Connection, reason: str) -> None:
        """Told by an HTTP/2 connection's task as it ends."""
        self._h2_conns.discard(conn)
        self._h2_room.pop(conn, None)
        self._idle.pop(conn, None)
        self._resets += conn.resets
        conn.resets = 0
        if self._probe is not None:
            self._settle_protocol(None)
        self._report_closed(reason)
        if self._waiters:
            self._wake_waiters(look_again=len(self._waiters))

    def _tls(self) -> tuple[TLSConfig | None, str]:
        """TLS for new connections, and the name to verify (https pools)."""
        return None, ""

    async def _open_stream(self, limits: Timeout) -> trio.abc.Stream:
        """Open the transport to the host, within the connect timeout."""
        limit = limits.connect_timeout
        tls, server_hostname = self._tls()
        with trio.move_on_after(math.inf if limit is None else limit):
            with translate_errors("connect", pool=self, host=self.host):
                return await open_stream(
                    self.origin, self.route, self.sockets, tls, server_hostname
                )
        raise ConnectTimeoutError(
            self, f"Connection to {self.host} timed out. (connect timeout={limit})"
        )

    def _release(self, lease: _Lease, reuse: bool) -> None:
        if lease.released:
            return
        lease.released = True
        conn = lease.conn
        if conn is not None and not isinstance(conn, Connection):
            # HTTP/2: the stream ends (reset if unfinished); the connection
            # stays, and its tokens go back with its last stream (_h2_changed).
            lease.http.release()
            if self._trace:
                self._emit("release", trio.current_time(), reuse=not conn.draining)
            return
        kept = False
        if conn is not None:
            self._in_use -= 1
            if reuse and lease.holds_token and not self._closed:
                conn.make_idle(trio.current_time() + self.keepalive_expiry)
                self._idle[conn] = None
                kept = True
            else:
                conn.discard()
        self._give_back_tokens(lease)
        if self._trace:
            self._emit("release", trio.current_time(), reuse=kept)

    def _give_back_tokens(self, lease: _Lease) -> None:
        if lease.holds_token:
            self._limiter.release_on_behalf_of(lease)
        if lease.holds_global:
            assert self._global_limiter is not None
            self._global_limiter.release_on_behalf_of(lease)
        if self._waiters:
            self._wake_waiters(look_again=1)

    def _on_closed(self, conn: Connection, reason: str) -> None:
        """Told by a connection's task as it closes the connection."""
        self._conns.discard(conn)
        self._idle.pop(conn, None)
        self._report_closed(reason)

    def _report_closed(self, reason: str) -> None:
        if not self._closed:
            self._dropped += 1
            if reason != "discarded":
                log.info("Connection to %s dropped: %s", self.origin, reason)
        if self._trace:
            self._emit("close", trio.current_time(), reason=reason)

    # -- one attempt (what the retry loop calls) --------------------------------

    async def send_once(self, attempt: _send.Attempt) -> HTTPResponse:
        """One attempt: checkout, one exchange, and (if asked) the body,
        within ``total``. Used by the retry/redirect loop (``_send``).

        If cancelled, the connection is closed and the token returned.
        """
        head = self._head(attempt)
        started = trio.current_time() if self._trace else 0.0
        lease = self._lease_now() or await self._checkout(attempt.pool_timeout)
        if self._trace:
            self._emit("checkout", started, tokened=lease.holds_token)
        limits = attempt.timeout
        response: HTTPResponse | None = None
        with _total_scope(limits.total) as total:
            try:
                if lease.http is None and not self._reuse_now(lease):
                    await self._connect(lease, limits)
                response = await self._exchange(lease, head, attempt)
                if attempt.preload_content:
                    await response.read()
            except HTTP11Required:
                lease.release(reuse=False)
                self._fall_back_to_h1()
                raise
            except BaseException:
                lease.release(reuse=False)
                raise
        if total.cancelled_caught:
            raise self._total_timeout(lease, attempt)
        assert response is not None
        return response

    def _fall_back_to_h1(self) -> None:
        """The origin wants HTTP/1.1 (HTTP_1_1_REQUIRED): remember that, and
        let its HTTP/2 connections drain."""
        log.info("%s requires HTTP/1.1; not offering HTTP/2 again", self.origin)
        self._protocol = "h1-only"
        for conn in list(self._h2_conns):
            conn.draining = True
            self._h2_changed(conn)

    def _total_timeout(self, lease: _Lease, attempt: _send.Attempt) -> Exception:
        total = attempt.timeout.total
        if lease.conn is None:
            return ConnectTimeoutError(
                self, f"Connecting took longer than the total timeout ({total})"
            )
        return ReadTimeoutError(
            self, attempt.url, f"Request took longer than the total timeout ({total})"
        )

    async def _exchange(
        self, lease: _Lease, head: RequestHead, attempt: _send.Attempt
    ) -> HTTPResponse:
        http = lease.http
        body = attempt.body
        started = trio.current_time() if self._trace else 0.0
        early = await http.send_request(
            head,
            body.chunks(),
            _read_limit(attempt),
            watch_for_answer=body.length is None or body.length > _SMALL_BODY,
        )
        if self._trace:
            self._emit("request", started, method=attempt.method, url=attempt.url)
            started = trio.current_time()
        response_head = early if early is not None else await http.receive_response()
        if self._trace:
            self._emit("response", started, status=response_head.status)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                '%s "%s %s HTTP/%s" %s %s',
                self.origin,
                attempt.method,
                attempt.url,
                {11: "1.1", 10: "1.0", 20: "2"}[response_head.version],
                response_head.status,
                response_head.headers.get("Content-Length", "-"),
            )
        return HTTPResponse(
            status=response_head.status,
            reason=response_head.reason,
            version=response_head.version,
            headers=response_head.headers,
            lease=lease,
            request_method=attempt.method,
            request_url=self.absolute_url(attempt.url),
            decode_content=attempt.decode_content,
            enforce_content_length=self.enforce_content_length,
        )

    # -- request preparation --------------------------------------------------

    def _head(self, attempt: _send.Attempt) -> RequestHead:
        """Build (and so check) the request head before any I/O."""
        headers = attempt.headers if attempt.headers is not None else self.headers
        proxy = self.route.forward_proxy
        if proxy is None:
            # A request with no headers of its own and no body has the same
            # head each time it is sent: it is built (and checked) once.
            plain = not headers and not attempt.chunked and attempt.body.is_empty
            key = (attempt.method, attempt.url)
            head = self._plain_heads.get(key) if plain else None
            if head is None:
                head = build_head(
                    attempt.method,
                    self._target(attempt.url),
                    headers,
                    attempt.body,
                    attempt.chunked,
                    host=self._host_header,
                    url=attempt.url,
                )
                if plain:
                    if len(self._plain_heads) >= _PLAIN_HEADS_MAX:
                        self._plain_heads.clear()
                    self._plain_heads[key] = head
            return head
        # To an HTTP proxy: the absolute URL without userinfo, the target's
        # Host and ``Accept: */*`` first (as urllib3), the proxy's headers last.
        parsed = parse_url(attempt.url)
        forwarded = HTTPHeaderDict({"Accept": "*/*", "Host": parsed.netloc or ""})
        forwarded.update(copy_request_headers(headers))
        forwarded.update(proxy.headers)
        target = parsed._replace(auth=None, fragment=None).url
        return build_head(
            attempt.method,
            target,
            forwarded,
            attempt.body,
            attempt.chunked,
            host=None,
            url=attempt.url,
        )

    def _target(self, url: str) -> str:
        """The request target urllib3 would send for ``url`` on this pool."""
        if url.startswith("/"):
            return encode_target(url)
        return parse_url(url).url

    def absolute_url(self, url: str) -> str:
        """``url`` made absolute on this pool's origin (for responses and
        redirects)."""
        if url.startswith("/"):
            return self._origin_text + url
        return url

    def is_same_host(self, url: str) -> bool:
        """True if ``url`` is relative or points at this pool's origin."""
        if url.startswith("/"):
            return True
        parsed = parse_url(url)
        if parsed.host is None:
            return False
        try:
            return Origin.of_url(parsed) == self.origin
        except LocationValueError:
            return False

    # -- the public request API -------------------------------------------------

    async def urlopen(
        self,
        method: str,
        url: str,
        body: Any = None,
        headers: Any = None,
        retries: Retry | int | bool | None = None,
        redirect: bool = True,
        assert_same_host: bool = True,
        timeout: TimeoutLike = Timeout.DEFAULT_TIMEOUT,  # noqa: ASYNC109
        pool_timeout: float | None = None,
        release_conn: bool | None = None,
        chunked: bool = False,
        body_pos: int | None = None,
        preload_content: bool = True,
        decode_content: bool = True,
    ) -> HTTPResponse:
        """Send one request (with retries and same-host redirects).

        Args:
            method: the HTTP method, e.g. ``"GET"``.
            url: a path (``"/x?y=1"``, sent as given, ``.`` segments
                included) or an absolute URL on this pool's host.
            body: bytes, str, a file, or an (async) iterable of bytes.
            headers: request headers; the pool's ``headers`` if None.
            retries: a ``Retry``, a number of retries, False (no retries,
                redirects returned as they are), or None (the pool's).
            redirect: follow redirects (same host only for a pool).
            assert_same_host: raise ``HostChangedError`` for another host.
            timeout: a :class:`Timeout` or seconds; the pool's by default.
            pool_timeout: with ``block=True``, how long to wait for a token.
            release_conn: accepted for urllib3 compatibility; the connection is
                given back when the body has been read or the response released.
            chunked: send the body with chunked transfer-encoding.
            body_pos: where a file body starts, for rewinding on retries.
            preload_content: read the whole body before returning.
            decode_content: decode gzip/deflate/br/zstd bodies.

        Returns:
            The response. With ``preload_content=False`` it holds its connection
            until the body is read, or it is released or closed.

        If cancelled, the request is abandoned at once: its connection is
        closed (never reused) and its limiter token returned.
        """
        options = _send.RequestOptions(
            body=body,
            headers=headers,
            retries=retries,
            redirect=redirect,
            assert_same_host=assert_same_host,
            timeout=timeout,
            pool_timeout=pool_timeout,
            chunked=chunked,
            body_pos=body_pos,
            preload_content=preload_content,
            decode_content=decode_content,
        )
        return await _send.urlopen(self, method, url, options)

    async def request(
        self,
        method: str,
        url: str,
        fields: Any = None,
        headers: Any = None,
        json: Any = None,
        body: Any = None,
        *,
        encode_multipart: bool = True,
        multipart_boundary: str | None = None,
        **urlopen_kw: Any,
    ) -> HTTPResponse:
        """Like :meth:`urlopen`, encoding ``fields`` or ``json`` for you.

        ``fields`` go into the query string for GET, HEAD, DELETE and OPTIONS,
        and into a multipart (or, with ``encode_multipart=False``, urlencoded)
        body otherwise. ``json`` is serialised as the body with
        ``Content-Type: application/json``. The caller's headers win over the
        encoding's ``Content-Type``. Other keyword arguments are
        :meth:`urlopen`'s. If cancelled: as :meth:`urlopen`.
        """
        method = method.upper()
        encoded = encode_request(
            method,
            url,
            fields=fields,
            headers=headers,
            json=json,
            body=body,
            default_headers=self.headers,
            encode_multipart=encode_multipart,
            multipart_boundary=multipart_boundary,
        )
        return await self.urlopen(
            method,
            encoded.url,
            body=encoded.body,
            headers=encoded.headers,
            **urlopen_kw,
        )


def _require_h2() -> None:
    """HTTP/2 needs the optional h2 package: say so when the pool is made."""
    if importlib.util.find_spec("h2") is None:
        raise ImportError(
            "http2=True needs the h2 package: pip install 'trio-pool[http2]'"
        )


def _connection_facts(stream: trio.abc.Stream) -> dict[str, Any]:
    """What a ``connect`` trace event reports about a new connection."""
    if not isinstance(stream, trio.SSLStream):
        return {}
    return {"tls": stream.version(), "alpn": stream.selected_alpn_protocol()}


def _read_limit(attempt: _send.Attempt) -> float | None:
    """The read timeout the engine applies to each wait of this exchange.

    None when the attempt's ``total`` bounds every wait first: the read
    limit is the total itself (no shorter ``read`` was set) and the body is
    preloaded, so no wait of the exchange happens after the total's scope
    has ended. Each wait is then spared a check of the enclosing deadline.
    """
    limits = attempt.timeout
    read = limits.read_timeout
    if attempt.preload_content and limits.total is not None and read == limits.total:
        return None
    return read


#: Heads of requests without headers or body, remembered per pool.
_PLAIN_HEADS_MAX = 64


class _NoScope:
    """A do-nothing ``with`` block shaped like a cancel scope."""

    __slots__ = ()
    cancelled_caught = False

    def __enter__(self) -> _NoScope:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None


_NO_SCOPE = _NoScope()


def _total_scope(total: float | None) -> trio.CancelScope | _NoScope:
    """A cancel scope that ends the attempt when ``total`` runs out; without
    a total, a stand-in that costs nothing and never reports a cancel."""
    if total is None:
        return _NO_SCOPE
    return trio.CancelScope(deadline=trio.current_time() + total)
