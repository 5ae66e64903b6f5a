"""The task that owns each pooled connection while it is idle.

(Opening the connection's stream is ``_transport``'s job; speaking HTTP on it
is the protocol engine's, through ``_protocol.ProtocolConnection``.)

Theory of operation
-------------------
Every connection a pool opens gets a task in the pool's nursery
(:meth:`Connection.run`). The task is the connection's owner of last resort:
it is the only code that closes the stream, so closing never needs an
``await`` from whoever decides it (a release in a ``finally`` block, a
cancelled request) and nothing outlives the pool's nursery.

A connection is in one of three states:

``ACTIVE``
    leased to a request/response. The task sleeps on ``_wake``.
``IDLE``
    in the pool's idle set. The task watches the connection inside a cancel
    scope whose deadline is the keep-alive expiry. If the server closes the
    connection, sends stray bytes, or the deadline passes, the task drops the
    connection from the pool and closes it — so a dead connection is found
    before a request is written to it.
``CLOSED``
    finished; the task has closed (or is closing) the stream.

How the task watches depends on the stream:

* A plain TCP ``SocketStream`` is watched with ``trio.lowlevel.wait_readable``
  on its socket. Cancelling that wait unregisters it synchronously, so a
  checkout (:meth:`Connection.take`) just cancels the watch scope and owns
  the stream at once; a zero-timeout poll then tells whether the socket
  became readable (closed or stray bytes) in the meantime.
* Any other stream (TLS, memory streams in tests) is watched with
  ``receive_some``: TLS 1.3 session tickets and other non-data records are
  consumed there without counting as data. A checkout cancels the watch scope
  and waits for the task to confirm the hand-off, because the task may
  instead report that the server closed the connection at that very moment
  (the pool then tries another connection). Cancelling a receive on an
  ``SSLStream`` past its handshake loses no data, so a handed-off connection
  is intact.

A checkout counter (``_lends``) lets the task tell "a request took the
connection (and maybe already gave it back)" from "the keep-alive expired".
"""

from __future__ import annotations

import enum
import math
import select
from collections.abc import Callable

import trio

from ._protocol import ProtocolConnection

__all__ = ["ConnState", "Connection"]


class ConnState(enum.Enum):
    """Where a connection is in its life."""

    ACTIVE = "active"
    IDLE = "idle"
    CLOSED = "closed"


#: Called by the task as it closes its connection, with the reason.
CloseHook = Callable[["Connection", str], None]


class Connection:
    """One pooled connection and its owning task.

    Args:
        http: the protocol engine on the connected transport.
    """

    __slots__ = (
        "_handoff",
        "_lends",
        "_park",
        "_poll",
        "_socket",
        "_watch_from",
        "_watch_scope",
        "http",
        "idle_deadline",
        "state",
    )

    def __init__(self, http: ProtocolConnection) -> None:
        self.http = http
        stream = http.stream
        self.state = ConnState.ACTIVE
        self.idle_deadline = math.inf
        # While the task is parked: the scope it sleeps in. Its deadline is
        # when to start watching (inf while ACTIVE); moving the deadline is
        # synchronous and costs no task switch.
        self._park: trio.CancelScope | None = None
        self._watch_from = math.inf
        self._watch_scope: trio.CancelScope | None = None
        self._handoff: trio.Event | None = None
        # Counts checkouts, so the task can tell "taken" from "expired".
        self._lends = 0
        transport = (
            stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
        )
        raw = transport.socket if isinstance(transport, trio.SocketStream) else None
        # A plain TCP stream is watched with wait_readable on its socket...
        self._socket = raw if transport is stream else None
        # ...and any stream over TCP (TLS too) can be polled at checkout.
        self._poll = raw

    #: One exchange at a time (an HTTP/2 connection says True).
    multiplexed = False

    def __repr__(self) -> str:
        return f"<Connection {self.state.value} at {id(self):#x}>"

    # -- called by the pool (synchronous: safe in finally blocks) ----------

    def make_idle(self, deadline: float) -> None:
        """Hand the connection back to its task to watch until ``deadline``.

        A plain TCP connection is only watched once it has been idle for
        ``WATCH_GRACE`` seconds (or until its keep-alive deadline, if that
        comes first): until then a checkout's poll finds a dead one just as
        well, and a busy connection seldom wakes its task.
        """
        self.state = ConnState.IDLE
        self.idle_deadline = deadline
        now = trio.current_time()
        if self._poll is not None:
            self._watch_from = min(now + WATCH_GRACE, deadline)
        else:
            self._watch_from = now
        park = self._park
        # Only ever move the wake-up earlier: on a busy connection the task
        # wakes at most once per grace period, finds it in use, and parks again.
        if park is not None and park.deadline > self._watch_from:
            park.deadline = self._watch_from

    def discard(self) -> None:
        """Have the task close the connection; it will never be used again."""
        self.state = ConnState.CLOSED
        for scope in (self._park, self._watch_scope):
            if scope is not None:
                scope.cancel()

    def take_at_once(self) -> bool | None:
        """:meth:`take` when no waiting is needed: True (taken), False (dead,
        discarded: try another), None (left idle: ``await take()``).

        No waiting is needed for plain TCP (cancelling ``wait_readable``
        unregisters it synchronously, so the stream is ours at once) and for
        any stream whose task has not started watching; a poll tells whether
        the connection is still open. A TLS connection that got bytes while
        idle needs a probe, and one being watched a hand-off.
        """
        plain = self._socket is not None
        if not plain and self._watch_scope is not None:
            return None
        readable = self._poll is not None and _readable_now(self._poll)
        if readable and not plain:
            return None
        self._mark_taken()
        if self._watch_scope is not None:
            self._watch_scope.cancel()
        if readable:
            self.discard()
            return False
        return True

    def _mark_taken(self) -> None:
        self.state = ConnState.ACTIVE
        self._lends += 1  # tells the task "taken", not "expired"
        self._watch_from = math.inf

    async def take(self) -> bool:
        """Take an idle connection out of its task's watch, for a request.

        Returns False if the connection turned out to be dead (the caller
        should try another). If cancelled while waiting for the hand-off or
        the probe, the connection is discarded.
        """
        taken = self.take_at_once()
        if taken is not None:
            return taken
        self._mark_taken()
        scope = self._watch_scope
        if scope is None:
            # Not watched yet, but bytes came while idle.
            return await self._probe()
        self._handoff = handoff = trio.Event()
        scope.cancel()
        try:
            await handoff.wait()
        except BaseException:
            self.discard()
            raise
        return self.state is ConnState.ACTIVE

    async def _probe(self) -> bool:
        """A TLS connection got bytes while idle: a session ticket (harmless),
        or a close, an EOF or stray data (unusable). Read briefly to tell;
        the bytes are already here, so a ticket costs only ``_PROBE`` seconds.
        """
        try:
            with trio.move_on_after(_PROBE):
                await self.http.stream.receive_some(1)
                self.discard()  # data or EOF while idle
                return False
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            self.discard()
            return False
        except BaseException:
            self.discard()
            raise
        return True

    # -- the task ---------------------------------------------------------

    async def run(self, on_closed: CloseHook) -> None:
        """The connection's task: watch while idle, close at the end.

        Args:
            on_closed: told (synchronously) as the connection closes, and why.
        """
        reason = "discarded"
        try:
            while self.state is not ConnState.CLOSED:
                if (
                    self.state is ConnState.IDLE
                    and trio.current_time() >= self._watch_from
                ):
                    dropped = await self._watch()
                    if dropped is not None:
                        reason = dropped
                        self.state = ConnState.CLOSED
                else:
                    await self._sleep_until(self._watch_from)
        finally:
            self.state = ConnState.CLOSED
            if self._handoff is not None:
                self._handoff.set()
            on_closed(self, reason)
            await trio.aclose_forcefully(self.http.stream)

    async def _sleep_until(self, deadline: float) -> None:
        """Park until ``deadline``, which make_idle/take/discard may move."""
        with trio.CancelScope(deadline=deadline) as park:
            self._park = park
            try:
                await trio.sleep_forever()
            finally:
                self._park = None

    async def _watch(self) -> str | None:
        """Watch an idle connection; None when a request took it."""
        lends = self._lends
        with trio.CancelScope(deadline=self.idle_deadline) as scope:
            self._watch_scope = scope
            try:
                if self._socket is not None:
                    await trio.lowlevel.wait_readable(self._socket)
                    noticed = "closed by the server (or stray bytes) while idle"
                elif await self.http.stream.receive_some(1):
                    noticed = "unexpected data while idle"
                else:
                    noticed = "closed by the server"
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                noticed = "connection error while idle"
            finally:
                self._watch_scope = None
        if self._handoff is not None:
            handoff, self._handoff = self._handoff, None
            handoff.set()
            return None
        if self.state is ConnState.CLOSED:
            return "discarded"
        if self._lends != lends:
            return None  # taken (and maybe already given back) meanwhile
        if not scope.cancelled_caught:
            return noticed
        return "keep-alive expired"


#: Seconds a connection over TCP sits idle before its task starts watching.
#: A busy connection's task wakes once per period to find it in use (at
#: 1,000 connections a 1 s period cost 5% of the instructions per request).
WATCH_GRACE = 5.0
#: How long a checkout reads a TLS connection that got bytes while idle.
_PROBE = 0.005


def _readable_now(sock: trio.socket.SocketType) -> bool:
    """True if the socket has bytes or EOF waiting: an idle connection that
    is readable has been closed by the server, or got stray bytes."""
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(0))
