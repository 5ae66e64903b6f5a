"""Opening a connection's byte stream: TCP or a Unix socket, proxies, TLS.

Everything a pool needs to get from "I need a new connection" to a stream
that is ready for HTTP lives here, behind :func:`open_stream`, driven by
plain values:

* :class:`Route` says how the origin is reached: directly, through a proxy
  tunnel (HTTP ``CONNECT`` or SOCKS), or by *forwarding* — the pool's host
  is an HTTP proxy that takes absolute-form requests;
* :class:`SocketOptions` says how the raw socket is made (source address,
  Happy Eyeballs delay, ``setsockopt`` options, or a Unix socket path);
* a ``TLSConfig`` (for https) says how TLS is set up on top.

Failures of a proxy's own leg are ``ProxyError`` (wrapping what went wrong);
what follows on top — TLS to the target — reports its own errors. The caller
puts the whole of :func:`open_stream` inside the connect timeout and the
error translation. A stream whose set-up did not finish is closed here, at
once, and never reaches the pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio

from ._exceptions import (
    NewConnectionError,
    ProxyError,
    SSLError,
)
from ._http11 import open_tunnel
from ._origin import Origin
from ._proxy import HTTPProxyConfig, SOCKSProxyConfig
from ._tls import TLSConfig
from ._translate import translate_errors

__all__ = ["DIRECT", "Dial", "Route", "SocketOptions", "open_stream", "start_tls"]

#: Opens the raw byte stream to (host, port). TCP by default; tests pass
#: functions that return memory streams.
Dial = Callable[[str, int], Awaitable[trio.abc.Stream]]
SocketOption = tuple[int, int, int | bytes]


@dataclass(frozen=True, slots=True)
class Route:
    """How a pool's connections reach its origin.

    Attributes:
        proxy: the proxy in between, if any.
        forward: the pool's own host is the (HTTP) proxy, and requests are
            written in absolute form to it; otherwise a proxy means a tunnel.
    """

    proxy: HTTPProxyConfig | SOCKSProxyConfig | None = None
    forward: bool = False

    def __post_init__(self) -> None:
        if self.forward and not isinstance(self.proxy, HTTPProxyConfig):
            raise ValueError("forwarding needs an HTTP proxy")

    @property
    def forward_proxy(self) -> HTTPProxyConfig | None:
        """The proxy that forwarded requests go to (None: not forwarding)."""
        return self.proxy if self.forward else None  # type: ignore[return-value]


DIRECT = Route()


@dataclass(frozen=True, slots=True)
class SocketOptions:
    """How new sockets are made.

    Attributes:
        source_address: a ``(host, port)`` to bind to; the port is ignored.
        happy_eyeballs_delay: seconds before trying the next address.
        socket_options: ``(level, option, value)`` triples applied with
            ``setsockopt`` to each new TCP socket, once it is connected.
        uds: a Unix domain socket path to connect to instead of TCP.
        dial: opens the raw stream, overriding all of the above (tests).
    """

    source_address: tuple[str, int] | None = None
    happy_eyeballs_delay: float = 0.25
    socket_options: Sequence[SocketOption] | None = None
    uds: str | None = None
    dial: Dial | None = field(default=None, compare=False)

    async def open_raw(self, host: str, port: int) -> trio.abc.Stream:
        """The raw stream to ``host:port`` (or to the Unix socket)."""
        if self.dial is not None:
            return await self.dial(host, port)
        if self.uds is not None:
            return await trio.open_unix_socket(self.uds)
        stream = await trio.open_tcp_stream(
            host,
            port,
            happy_eyeballs_delay=self.happy_eyeballs_delay,
            local_address=self.source_address[0] if self.source_address else None,
        )
        try:
            for level, option, value in self.socket_options or ():
                stream.setsockopt(level, option, value)
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        return stream


async def open_stream(
    host: Origin,
    route: Route,
    sockets: SocketOptions,
    tls: TLSConfig | None = None,
    server_hostname: str = "",
) -> trio.abc.Stream:
    """A stream to ``host`` ready for HTTP, as ``route`` says.

    Args:
        host: where the pool connects: the origin, or the proxy itself for a
            forwarding route.
        route: direct, tunnel or forward.
        sockets: how raw sockets are made.
        tls: TLS on top, for https (to the origin; to the proxy when
            forwarding through an https proxy).
        server_hostname: the name sent as SNI and verified.

    Raises:
        ProxyError: the proxy could not be reached or refused.
        NewConnectionError, NameResolutionError, SSLError: direct failures.
    """
    # Failures of the direct legs (TCP, TLS to the target) are translated by
    # the caller, which can name its pool; a proxy's legs are translated here,
    # where they become ProxyErrors.
    if route.proxy is None:
        raw = await sockets.open_raw(host.host, host.port)
    elif route.forward:
        async with _proxy_leg(host.host):
            raw = await sockets.open_raw(host.host, host.port)
            if tls is not None:
                return await start_tls(raw, tls, server_hostname)
            return raw
    else:
        async with _proxy_leg(route.proxy.host):
            raw = await _open_tunnel(route.proxy, host, sockets)
    if tls is None:
        return raw
    return await start_tls(raw, tls, server_hostname)


async def _open_tunnel(
    proxy: HTTPProxyConfig | SOCKSProxyConfig, target: Origin, sockets: SocketOptions
) -> trio.abc.Stream:
    """A stream to ``target`` through a CONNECT or SOCKS tunnel."""
    stream = await sockets.open_raw(proxy.host, proxy.port)
    try:
        if isinstance(proxy, SOCKSProxyConfig):
            await proxy.handshake(stream, target.host, target.port)
            return stream
        if proxy.tls is not None:
            stream = await start_tls(stream, proxy.tls, proxy.host)
        authority = target.tunnel_authority.encode("ascii")
        await open_tunnel(stream, authority, proxy.wire_headers)
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return stream


@asynccontextmanager
async def _proxy_leg(proxy_host: str) -> AsyncIterator[None]:
    """The proxy's leg of a connection: its failures are ProxyErrors."""
    try:
        with translate_errors("connect", host=proxy_host):
            yield
    except (NewConnectionError, SSLError) as exc:
        raise ProxyError("Unable to connect to proxy", exc) from exc


async def start_tls(
    stream: trio.abc.Stream, config: TLSConfig, server_hostname: str
) -> trio.SSLStream[trio.abc.Stream]:
    """Run a TLS handshake over ``stream`` and check the peer.

    Args:
        stream: the connected transport (TCP, or a proxy tunnel).
        config: the context and the checks to apply.
        server_hostname: the name sent as SNI and verified.

    Returns:
        The TLS stream, handshake done and peer checked, nothing sent yet.

    If the handshake fails, the checks fail, or this is cancelled, ``stream``
    is closed before the exception propagates.
    """
    # Whatever fails, even making the SSLStream, the outermost stream that
    # exists is closed: closing an SSLStream closes the stream under it.
    opened: trio.abc.AsyncResource = stream
    try:
        tls = trio.SSLStream(
            stream,
            config.context,
            server_hostname=server_hostname,
            https_compatible=True,
        )
        opened = tls
        await tls.do_handshake()
        config.verify_peer(tls.getpeercert, server_hostname)
    except BaseException:
        await trio.aclose_forcefully(opened)
        raise
    return tls
