"""HTTPConnectionPool: a nursery of connection tasks, a limiter, an idle stack.

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
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

import h11
import trio

from . import _send
from ._body import RequestBody
from ._connection import Connection
from ._exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    EmptyPoolError,
    InvalidHeader,
    LocationValueError,
    NewConnectionError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
    translate_errors,
)
from ._headers import HTTPHeaderDict
from ._proxy import HTTPProxyConfig, SOCKSProxyConfig
from ._response import HTTPResponse
from ._retry import Retry
from ._timeout import DEFAULT_TIMEOUT, Timeout, TimeoutLike
from ._trace import TraceCallback, TraceEvent
from ._url import parse_url
from ._version import __version__

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["HTTPConnectionPool", "PoolStatistics", "connection_from_url"]

DEFAULT_USER_AGENT: Final = f"python-trio-pool/{__version__}"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
#: Bodies up to this size are sent without watching for an early answer.
_SMALL_BODY = 64 * 1024
_KNOWN_CONN_KW = frozenset({"source_address", "happy_eyeballs_delay"})


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
    """

    idle: int
    in_use: int
    waiting: int
    created: int
    reused: int
    dropped: int
    tokens_free: int


class _Lease:
    """One checkout: a connection, and whether it holds a limiter token."""

    __slots__ = ("conn", "global_token", "pool", "released", "tokened")

    def __init__(self, pool: HTTPConnectionPool, tokened: bool) -> None:
        self.pool = pool
        self.tokened = tokened
        self.global_token = False
        self.conn: Connection | None = None
        self.released = False

    @property
    def http(self) -> Any:
        assert self.conn is not None
        return self.conn.http

    def release(self, reuse: bool) -> None:
        self.pool._release(self, reuse)


class HTTPConnectionPool:
    """A pool of keep-alive connections to one ``http://`` host.

    Use it as ``async with HTTPConnectionPool(host, port) as pool:``; the pool
    only works inside that block (``ClosedPoolError`` otherwise).

    Args:
        host: the host name or IP address.
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
        **conn_kw: ``source_address`` (a ``(host, port)`` to bind to; the port
            is ignored) and ``happy_eyeballs_delay``.
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
        _proxy: HTTPProxyConfig | SOCKSProxyConfig | None = None,
        _forward: bool = False,
        _global_limiter: trio.CapacityLimiter | None = None,
        **conn_kw: Any,
    ) -> None:
        if not host:
            raise LocationValueError("No host specified.")
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        unknown = set(conn_kw) - _KNOWN_CONN_KW
        if unknown:
            raise TypeError(f"Unknown connection options: {', '.join(sorted(unknown))}")
        self.host = _normalize_host(host)
        self.port = port
        self.timeout = Timeout.resolve(timeout, DEFAULT_TIMEOUT)
        self.maxsize = maxsize
        self.block = block
        self.headers = HTTPHeaderDict(headers) if headers else HTTPHeaderDict()
        self.retries: Retry = Retry.from_int(retries, default=Retry.DEFAULT)
        self.keepalive_expiry = keepalive_expiry
        self.conn_kw = conn_kw
        # A proxy in between: tunnel through it, or (``_forward``) this pool
        # *is* the pool to an HTTP proxy and writes absolute-form targets.
        self._proxy = _proxy
        self._forward = _forward
        self._global_limiter = _global_limiter
        self._trace = trace
        self._origin = f"{self.scheme}://{self._host_header()}"
        self._default_wire_headers = (
            (b"Host", self._host_header().encode("idna")),
            (b"Accept-Encoding", b"identity"),
            (b"User-Agent", DEFAULT_USER_AGENT.encode()),
        )
        self._limiter = trio.CapacityLimiter(maxsize)
        self._idle: dict[Connection, None] = {}
        self._conns: set[Connection] = set()
        self._nursery: trio.Nursery | None = None
        self._nursery_cm: Any = None
        self._closed = False
        self._in_use = 0
        self._created = 0
        self._reused = 0
        self._dropped = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(host={self.host!r}, port={self.port!r})"

    # -- lifetime ---------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._nursery_cm is not None or self._nursery is not None:
            raise RuntimeError(f"{self!r} can be entered only once")
        self._nursery_cm = trio.open_nursery()
        self._attach(await self._nursery_cm.__aenter__())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close_all()
        # The body's own exception is not handed to the nursery, which would
        # wrap it in an ExceptionGroup; it propagates unchanged after this.
        await self._nursery_cm.__aexit__(None, None, None)
        self._nursery = None

    def _attach(self, nursery: trio.Nursery) -> None:
        """Run this pool's connection tasks in ``nursery`` (a manager's, or
        the pool's own)."""
        self._nursery = nursery

    async def aclose(self) -> None:
        """Close every connection; later requests raise ``ClosedPoolError``.

        Responses still streaming from the pool fail on their next read.
        Leaving the ``async with`` block does this too.
        """
        self._close_all()
        await trio.lowlevel.checkpoint()

    def _close_all(self) -> None:
        self._retire()
        for conn in list(self._conns):
            conn.discard()
        # Wake every request still waiting for a token: it gets one, finds
        # the pool closed and raises ClosedPoolError instead of waiting on.
        self._limiter.total_tokens = math.inf

    def _retire(self) -> None:
        """Stop taking requests and close idle connections; connections still
        leased close when their responses give them back."""
        self._closed = True
        idle, self._idle = self._idle, {}
        for conn in idle:
            conn.discard()

    def _check_open(self) -> trio.Nursery:
        if self._closed or self._nursery is None:
            raise ClosedPoolError(
                self, "Pool is not open: use it inside `async with pool:`"
            )
        return self._nursery

    def statistics(self) -> PoolStatistics:
        """A frozen snapshot of the pool's connections and counters."""
        limiter = self._limiter.statistics()
        return PoolStatistics(
            idle=len(self._idle),
            in_use=self._in_use,
            waiting=limiter.tasks_waiting,
            created=self._created,
            reused=self._reused,
            dropped=self._dropped,
            tokens_free=max(self.maxsize - limiter.borrowed_tokens, 0),
        )

    # -- checkout and release ---------------------------------------------------

    async def _acquire(self) -> _Lease:
        """Get a limiter token (or, with ``block=False``, maybe none).

        With ``block=True`` this waits for a token, FIFO; the caller bounds
        the wait with a cancel scope (``pool_timeout``).
        """
        self._check_open()
        lease = _Lease(self, tokened=True)
        if self.block:
            await self._limiter.acquire_on_behalf_of(lease)
        else:
            try:
                self._limiter.acquire_on_behalf_of_nowait(lease)
            except trio.WouldBlock:
                lease.tokened = False
        if self._global_limiter is not None:
            # A manager-wide limit: taken after this pool's token, so a task
            # waiting here holds only its own host's token, and every global
            # token belongs to a request that is making progress (no cycle).
            try:
                await self._global_limiter.acquire_on_behalf_of(lease)
            except BaseException:
                self._release(lease, reuse=False)
                raise
            lease.global_token = True
        return lease

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
        if lease.tokened:
            idle = self._idle
            while idle:
                conn, _ = idle.popitem()
                if await conn.take():
                    self._reused += 1
                    self._lend(lease, conn)
                    if self._trace:
                        self._emit("reuse", started)
                    return
        stream = await self._open_stream(limits)
        conn = Connection(stream, self)
        self._conns.add(conn)
        self._created += 1
        nursery.start_soon(conn.run, self._on_closed)
        self._lend(lease, conn)
        if self._trace:
            self._emit("connect", started, **self._connection_facts(stream))

    def _connection_facts(self, stream: trio.abc.Stream) -> dict[str, Any]:
        """What a ``connect`` trace event reports about a new connection."""
        return {}

    def _emit(self, name: str, started: float, **detail: Any) -> None:
        assert self._trace is not None
        now = trio.current_time()
        self._trace(TraceEvent(name, self._origin, started, now - started, detail))

    def _lend(self, lease: _Lease, conn: Connection) -> None:
        lease.conn = conn
        self._in_use += 1

    async def _open_stream(self, limits: Timeout) -> trio.abc.Stream:
        """Open the transport to the host, within the connect timeout."""
        limit = limits.connect_timeout
        try:
            with translate_errors("connect", pool=self, host=self.host):
                with trio.move_on_after(math.inf if limit is None else limit):
                    return await self._open_transport()
        except (NewConnectionError, SSLError) as exc:
            if not self._forward:
                raise
            # A forwarding pool's connection is to the proxy itself.
            raise ProxyError("Unable to connect to proxy", exc) from exc
        raise ConnectTimeoutError(
            self, f"Connection to {self.host} timed out. (connect timeout={limit})"
        )

    async def _open_transport(self) -> trio.abc.Stream:
        """The byte stream to the target: TCP, or a tunnel through a proxy."""
        port = self.port or self.default_port
        if self._proxy is not None and not self._forward:
            return await self._open_tunnel(self._proxy, port)
        return await self._open_tcp(self.host, port)

    async def _open_tunnel(
        self, proxy: HTTPProxyConfig | SOCKSProxyConfig, port: int
    ) -> trio.abc.Stream:
        """The proxy's leg of the connection: its failures are ProxyErrors.

        What follows on top (TLS to the target, for https) is the target's,
        and reports its own errors.
        """
        try:
            with translate_errors("connect", pool=self, host=proxy.url.host or ""):
                return await proxy.open_tunnel(self.host, port, self._open_tcp)
        except (NewConnectionError, SSLError) as exc:
            raise ProxyError("Unable to connect to proxy", exc) from exc

    async def _open_tcp(self, host: str, port: int) -> trio.abc.Stream:
        source = self.conn_kw.get("source_address")
        return await trio.open_tcp_stream(
            host,
            port,
            happy_eyeballs_delay=self.conn_kw.get("happy_eyeballs_delay", 0.25),
            local_address=source[0] if source else None,
        )

    def _release(self, lease: _Lease, reuse: bool) -> None:
        if lease.released:
            return
        lease.released = True
        conn = lease.conn
        if conn is not None:
            self._in_use -= 1
            if reuse and lease.tokened and not self._closed:
                conn.make_idle(trio.current_time() + self.keepalive_expiry)
                self._idle[conn] = None
            else:
                conn.discard()
        if lease.tokened:
            self._limiter.release_on_behalf_of(lease)
        if lease.global_token:
            assert self._global_limiter is not None
            self._global_limiter.release_on_behalf_of(lease)
        if self._trace:
            self._emit(
                "release", trio.current_time(), reuse=reuse and conn in self._idle
            )

    def _on_closed(self, conn: Connection, reason: str) -> None:
        """Told by a connection's task as it closes the connection."""
        self._conns.discard(conn)
        self._idle.pop(conn, None)
        if not self._closed:
            self._dropped += 1
        if self._trace:
            self._emit("close", trio.current_time(), reason=reason)

    # -- one attempt ------------------------------------------------------------

    async def _attempt(
        self,
        method: str,
        url: str,
        body: RequestBody,
        headers: Any,
        limits: Timeout,
        opts: _send.Options,
    ) -> HTTPResponse:
        """Checkout, one exchange, and (if asked) the body, within ``total``."""
        request = self._h11_request(method, url, headers, body, opts.chunked)
        started = trio.current_time() if self._trace else 0.0
        lease = await self._checkout(opts.pool_timeout)
        if self._trace:
            self._emit("checkout", started, tokened=lease.tokened)
        response: HTTPResponse | None = None
        with limits.total_scope() as total:
            try:
                await self._connect(lease, limits)
                response = await self._exchange(
                    lease, request, url, body, limits, opts.decode_content
                )
                if opts.preload_content:
                    await response.read()
            except BaseException:
                lease.release(reuse=False)
                raise
        if total.cancelled_caught:
            if lease.conn is None:
                raise ConnectTimeoutError(
                    self,
                    f"Connecting took longer than the total timeout ({limits.total})",
                )
            raise ReadTimeoutError(
                self,
                url,
                f"Request took longer than the total timeout ({limits.total})",
            )
        assert response is not None
        return response

    async def _exchange(
        self,
        lease: _Lease,
        request: h11.Request,
        url: str,
        body: RequestBody,
        limits: Timeout,
        decode_content: bool,
    ) -> HTTPResponse:
        http = lease.http
        http.url = url
        http.read_timeout = limits.read_timeout
        started = trio.current_time() if self._trace else 0.0
        head = await http.send_request(
            request,
            body.chunks(),
            watch_for_answer=body.length is None or body.length > _SMALL_BODY,
        )
        if self._trace:
            self._emit("request", started, method=request.method.decode(), url=url)
            started = trio.current_time()
        if head is None:
            head = await http.receive_response()
        if self._trace:
            self._emit("response", started, status=head.status_code)
        return HTTPResponse(
            status=head.status_code,
            reason=head.reason.decode("latin-1"),
            version=11 if head.http_version == b"1.1" else 10,
            headers=HTTPHeaderDict._from_wire(head.headers.raw_items()),
            lease=lease,
            request_method=request.method.decode("ascii"),
            request_url=self._absolute(url),
            decode_content=decode_content,
        )

    # -- request preparation --------------------------------------------------

    def _request_target(self, url: str) -> bytes:
        if not self._forward and _PLAIN_TARGET.fullmatch(url) and "/." not in url:
            # Already in normal form: nothing parse_url would change.
            return url.encode("ascii")
        # parse_url percent-encodes anything that may not go on the wire.
        parsed = parse_url(url)
        if self._forward:
            # To an HTTP proxy: the absolute URL, without any userinfo.
            return parsed._replace(auth=None, fragment=None).url.encode(
                "ascii", "replace"
            )
        return parsed.request_uri.encode("ascii", "replace")

    def _host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port is None or self.port == self.default_port:
            return host
        return f"{host}:{self.port}"

    def _h11_request(
        self, method: str, url: str, headers: Any, body: RequestBody, chunked: bool
    ) -> h11.Request:
        """Build (and so validate) the request head before any I/O.

        Raises:
            InvalidHeader: CR, LF or NUL (or other forbidden bytes) in the
                method, target, or a header; non-Latin-1 header values.
        """
        wire = self._wire_headers(method, url, headers, body, chunked)
        with translate_errors("send", pool=self, url=url):
            return h11.Request(
                method=method.encode("ascii", "replace"),
                target=self._request_target(url),
                headers=wire,
            )

    def _wire_headers(
        self, method: str, url: str, headers: Any, body: RequestBody, chunked: bool
    ) -> list[tuple[bytes, bytes]]:
        """The request's header lines: the caller's (or the pool's), then the
        defaults the caller did not set, then body framing."""
        source = headers if headers is not None else self.headers
        try:
            wire = [
                (k.encode("ascii"), v.encode("latin-1"))
                for k, v in _header_items(source)
            ]
        except UnicodeEncodeError as exc:
            raise InvalidHeader(
                f"Header names must be ASCII and values Latin-1: {exc}"
            ) from exc
        present = {name.lower() for name, _ in wire}
        extra: list[tuple[bytes, bytes]] = []
        if self._forward:
            assert isinstance(self._proxy, HTTPProxyConfig)
            extra.append((b"host", (parse_url(url).netloc or "").encode("ascii")))
            extra += [(k.encode(), v.encode("latin-1")) for k, v in self._proxy.headers]
        extra += self._default_wire_headers
        for name, value in extra:
            if name.lower() not in present:
                wire.append((name, value))
                present.add(name.lower())
        if b"content-length" not in present and b"transfer-encoding" not in present:
            if body.is_empty:
                if method.upper() in _BODY_METHODS:
                    wire.append((b"Content-Length", b"0"))
            elif chunked or body.length is None:
                wire.append((b"Transfer-Encoding", b"chunked"))
            else:
                wire.append((b"Content-Length", str(body.length).encode()))
        return wire

    def _absolute(self, url: str) -> str:
        if url.startswith("/"):
            return f"{self.scheme}://{self._host_header()}{url}"
        return url

    def is_same_host(self, url: str) -> bool:
        """True if ``url`` is relative or points at this pool's origin."""
        if url.startswith("/"):
            return True
        parsed = parse_url(url)
        scheme = parsed.scheme or "http"
        if scheme != self.scheme or parsed.host is None:
            return False
        port = parsed.port or self.default_port
        return _normalize_host(parsed.host) == self.host and port == (
            self.port or self.default_port
        )

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
            url: a path (``"/x?y=1"``) or an absolute URL on this pool's host.
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
        return await _send.urlopen(
            self,
            method,
            url,
            _send.Options(
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
            ),
        )

    async def request(
        self,
        method: str,
        url: str,
        fields: Any = None,
        headers: Any = None,
        json: Any = None,
        body: Any = None,
        **urlopen_kw: Any,
    ) -> HTTPResponse:
        """Like :meth:`urlopen`, encoding ``fields`` or ``json`` for you.

        ``fields`` go into the query string for GET, HEAD, DELETE and OPTIONS,
        and into a multipart (or, with ``encode_multipart=False``, urlencoded)
        body otherwise. ``json`` is serialised as the body with
        ``Content-Type: application/json``. If cancelled: as :meth:`urlopen`.
        """
        url, body, headers = _send.encode_request(
            method, url, fields, headers, json, body, urlopen_kw, self.headers
        )
        return await self.urlopen(method, url, body=body, headers=headers, **urlopen_kw)


#: Origin-form targets that parse_url would leave exactly as they are.
_PLAIN_TARGET = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@/?]*")


def _header_items(headers: Any) -> Iterable[tuple[str, str]]:
    if isinstance(headers, HTTPHeaderDict):
        return headers.iteritems()
    if isinstance(headers, Mapping):
        return headers.items()
    return headers  # type: ignore[no-any-return]


def _normalize_host(host: str) -> str:
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host.lower()


def connection_from_url(url: str, **kw: Any) -> HTTPConnectionPool:
    """A pool for the origin of ``url`` (to be entered with ``async with``).

    ``https://`` URLs give an ``HTTPSConnectionPool``.
    """
    parsed = parse_url(url)
    scheme = parsed.scheme or "http"
    if not parsed.host:
        raise LocationValueError(f"No host in URL: {url!r}")
    if scheme == "https":
        from ._https import HTTPSConnectionPool

        return HTTPSConnectionPool(parsed.host, parsed.port, **kw)
    if scheme != "http":
        from ._exceptions import URLSchemeUnknown

        raise URLSchemeUnknown(scheme)
    return HTTPConnectionPool(parsed.host, parsed.port, **kw)
