"""Proxy descriptions, and the SOCKS handshakes.

A pool that reaches its target through a proxy holds one of the configs
below in its :class:`~trio_pool._transport.Route`; ``_transport`` opens the
stream to the proxy (TLS to it for an https proxy), then asks for the tunnel
— ``CONNECT`` through ``_http11``, or the SOCKS handshake here — and the
pool's TLS to the target (for https) runs on top: for an https proxy, TLS in
TLS. All of this happens inside the pool's connect timeout and error
translation.

Plain-http targets through an HTTP proxy need no tunnel: the pool simply
talks to the proxy and writes absolute-form targets ("forwarding").
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from typing import Any

import trio

from ._exceptions import ProxyError, ProxySchemeUnknown
from ._tls import TLSConfig
from ._url import Url, normalize_host

__all__ = ["HTTPProxyConfig", "SOCKSProxyConfig"]


@dataclass(frozen=True, slots=True)
class HTTPProxyConfig:
    """An http:// or https:// proxy.

    Attributes:
        url: the proxy's URL (scheme, host, port).
        headers: sent to the proxy only: on CONNECT for tunnelled targets, on
            each request for forwarded (plain http) ones.
        use_forwarding_for_https: send https targets to an https proxy in
            absolute form instead of tunnelling them.
        tls: TLS to the proxy itself (for https:// proxies).
    """

    url: Url
    headers: tuple[tuple[str, str], ...] = ()
    use_forwarding_for_https: bool = False
    tls: TLSConfig | None = field(default=None, compare=False)

    @property
    def host(self) -> str:
        """The proxy's host, normalised (an IPv6 literal without brackets)."""
        assert self.url.host is not None
        return normalize_host(self.url.host)

    @property
    def port(self) -> int:
        return self.url.port or (443 if self.url.scheme == "https" else 80)

    @property
    def wire_headers(self) -> list[tuple[bytes, bytes]]:
        """:attr:`headers` as header lines."""
        return [(k.encode("ascii"), v.encode("latin-1")) for k, v in self.headers]


# -- SOCKS -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SOCKSProxyConfig:
    """A SOCKS4/4a/5/5h proxy.

    ``socks4`` and ``socks5`` resolve the target name here; ``socks4a`` and
    ``socks5h`` let the proxy resolve it.
    """

    url: Url
    username: str | None = None
    password: str | None = None

    def __post_init__(self) -> None:
        if self.url.scheme not in ("socks4", "socks4a", "socks5", "socks5h"):
            raise ProxySchemeUnknown(str(self.url.scheme))
        try:
            import socksio  # noqa: F401
        except ImportError as exc:
            raise ImportError(
                "SOCKS proxies need the socksio package: pip install 'trio-pool[socks]'"
            ) from exc

    @property
    def remote_dns(self) -> bool:
        return self.url.scheme in ("socks4a", "socks5h")

    @property
    def host(self) -> str:
        """The proxy's host, normalised (an IPv6 literal without brackets)."""
        assert self.url.host is not None
        return normalize_host(self.url.host)

    @property
    def port(self) -> int:
        return self.url.port or 1080

    async def handshake(self, stream: trio.abc.Stream, host: str, port: int) -> None:
        """Ask the SOCKS proxy on ``stream`` to connect to ``host:port``.

        Raises:
            ProxyError: the proxy refused (bad credentials, rule, unreachable).
        """
        address = (
            host if self.remote_dns else await _resolve(host, port, self.url.scheme)
        )
        if self.url.scheme in ("socks5", "socks5h"):
            await _socks5(stream, address, port, self.username, self.password)
        else:
            await _socks4(stream, address, port, self.username)


async def _resolve(host: str, port: int, scheme: str | None) -> str:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        family = trio.socket.AF_INET if scheme == "socks4" else 0
        infos = await trio.socket.getaddrinfo(
            host, port, family, trio.socket.SOCK_STREAM
        )
        return str(infos[0][4][0])
    return host


async def _receive_exactly(stream: trio.abc.Stream, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = await stream.receive_some(size - len(data))
        if not chunk:
            raise ProxyError(
                "The SOCKS proxy closed the connection during the handshake"
            )
        data += chunk
    return data


async def _socks5(
    stream: trio.abc.Stream,
    host: str,
    port: int,
    username: str | None,
    password: str | None,
) -> None:
    from socksio import socks5

    conn = socks5.SOCKS5Connection()
    methods = [socks5.SOCKS5AuthMethod.NO_AUTH_REQUIRED]
    if username is not None:
        methods.append(socks5.SOCKS5AuthMethod.USERNAME_PASSWORD)
    conn.send(socks5.SOCKS5AuthMethodsRequest(methods))
    await stream.send_all(conn.data_to_send())
    reply: Any = conn.receive_data(await _receive_exactly(stream, 2))
    if reply.method == socks5.SOCKS5AuthMethod.USERNAME_PASSWORD:
        conn.send(
            socks5.SOCKS5UsernamePasswordRequest(
                (username or "").encode(), (password or "").encode()
            )
        )
        await stream.send_all(conn.data_to_send())
        verdict: Any = conn.receive_data(await _receive_exactly(stream, 2))
        if not verdict.success:
            raise ProxyError("The SOCKS5 proxy rejected the username or password")
    elif reply.method != socks5.SOCKS5AuthMethod.NO_AUTH_REQUIRED:
        raise ProxyError(
            f"The SOCKS5 proxy wants an unsupported auth method: {reply.method!r}"
        )
    conn.send(
        socks5.SOCKS5CommandRequest.from_address(
            socks5.SOCKS5Command.CONNECT, (host, port)
        )
    )
    await stream.send_all(conn.data_to_send())
    head = await _receive_exactly(stream, 5)
    size = {1: 4 - 1, 4: 16 - 1, 3: head[4]}.get(head[3], 0) + 2
    answer: Any = conn.receive_data(head + await _receive_exactly(stream, size))
    if answer.reply_code != socks5.SOCKS5ReplyCode.SUCCEEDED:
        raise ProxyError(
            f"The SOCKS5 proxy could not connect: {answer.reply_code.name}"
        )


async def _socks4(
    stream: trio.abc.Stream, host: str, port: int, user: str | None
) -> None:
    # Built by hand: socksio refuses the empty user id that most clients send.
    user_id = (user or "").encode() + b"\0"
    try:
        address = ipaddress.IPv4Address(host).packed
        name = b""
    except ValueError:
        # SOCKS4a: an invalid address 0.0.0.x tells the proxy a name follows.
        address, name = b"\0\0\0\x01", host.encode("idna") + b"\0"
    await stream.send_all(struct.pack("!BBH", 4, 1, port) + address + user_id + name)
    reply = await _receive_exactly(stream, 8)
    if reply[1] != 0x5A:
        raise ProxyError(
            f"The SOCKS4 proxy refused the connection (code {reply[1]:#x})"
        )
