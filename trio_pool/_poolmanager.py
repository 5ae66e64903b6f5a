"""PoolManager: any URL, routed to a per-origin pool inside one nursery.

Theory of operation
-------------------
``async with PoolManager() as http`` opens one nursery. Pools are created on
demand, synchronously, and attached to it: every pool's connection tasks run
in the manager's nursery (pools of connection tasks inside a nursery of
pools), so leaving the block closes every connection of every pool.

Pools are keyed by :class:`PoolKey` — scheme, host, port and every option that
changes what a connection is — in an insertion-ordered dict used as an LRU.
Past ``num_pools``, the least recently used pool is *retired*: its idle
connections close at once, and connections still carrying a response close
when that response gives them back; the response itself finishes normally.

Redirects across hosts go through the same loop as a pool's (``_send``), with
the manager as the router that picks the pool for each new URL.
"""

from __future__ import annotations

import inspect
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, fields
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

import trio

from . import _send
from ._exceptions import (
    ClosedPoolError,
    LocationValueError,
    ProxySchemeUnknown,
    ProxySchemeUnsupported,
)
from ._fields import encode_request
from ._headers import HTTPHeaderDict, make_headers
from ._https import TLS_OPTIONS, HTTPSConnectionPool
from ._origin import DEFAULT_PORTS, Origin
from ._pool import HTTPConnectionPool
from ._proxy import HTTPProxyConfig, SOCKSProxyConfig
from ._response import HTTPResponse
from ._retry import Retry
from ._timeout import Timeout, TimeoutLike
from ._tls import TLSConfig
from ._transport import DIRECT, Route
from ._url import Url, parse_url

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "ManagerStatistics",
    "PoolKey",
    "PoolManager",
    "ProxyManager",
    "SOCKSProxyManager",
    "proxy_from_url",
    "request",
]

#: Options that only mean something for https:// pools.
_TLS_OPTIONS = frozenset({*TLS_OPTIONS, "server_hostname"})
#: Options a manager may pass to its pools (routing and limits are its own).
_POOL_OPTIONS = frozenset(
    name
    for cls in (HTTPConnectionPool, HTTPSConnectionPool)
    for name in inspect.signature(cls).parameters
    if name not in ("host", "port", "route", "global_limiter", "kw")
)
#: The CA options that also verify an https proxy (as in urllib3).
_PROXY_CA_OPTIONS = ("cert_reqs", "ca_certs", "ca_cert_dir", "ca_cert_data")


def _check_pool_options(options: Mapping[str, Any]) -> None:
    unknown = sorted(set(options) - _POOL_OPTIONS)
    if unknown:
        raise TypeError(f"Unknown connection pool options: {', '.join(unknown)}")


def _hashable(value: Any) -> Hashable:
    """A hashable stand-in for an option value (dicts and lists included)."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k).lower(), _hashable(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple, set, frozenset)):
        return tuple(_hashable(v) for v in value)
    try:
        hash(value)
    except TypeError:
        return ("id", id(value))
    return value  # type: ignore[no-any-return]


class PoolKey(NamedTuple):
    """What makes two requests share a pool: origin plus connection options.

    (A named tuple, as urllib3's: one is made and hashed per request.)
    """

    scheme: str
    host: str
    port: int
    options: tuple[tuple[str, Hashable], ...] = ()

    @classmethod
    def make(
        cls, scheme: str, host: str, port: int | None, options: Mapping[str, Any]
    ) -> PoolKey:
        return cls.of(Origin.make(scheme, host, port), options)

    @classmethod
    def of(cls, origin: Origin, options: Mapping[str, Any]) -> PoolKey:
        """The key for ``origin`` with these pool options."""
        if not options:
            return cls(origin.scheme, origin.host, origin.port)
        relevant = {
            k: v
            for k, v in options.items()
            if origin.scheme == "https" or k not in _TLS_OPTIONS
        }
        return cls(
            scheme=origin.scheme,
            host=origin.host,
            port=origin.port,
            options=tuple(sorted((k, _hashable(v)) for k, v in relevant.items())),
        )


@dataclass(frozen=True, slots=True)
class ManagerStatistics:
    """A snapshot of a manager: how many pools, and their summed counters.

    Retired pools (evicted, with responses still streaming) are not counted.
    The HTTP/2 figures are ``PoolStatistics``'s, summed.
    """

    pools: int
    idle: int
    in_use: int
    waiting: int
    created: int
    reused: int
    dropped: int
    h2_connections: int = 0
    streams_active: int = 0
    streams_waiting: int = 0
    streams_reset: int = 0


class PoolManager:
    """Requests to any URL, with a connection pool per origin.

    Use it as ``async with PoolManager() as http:``; it only works inside
    that block (``ClosedPoolError`` otherwise).

    Args:
        num_pools: how many origins keep a pool; the least recently used one
            is retired past that.
        headers: default headers for every request (replaced wholesale by a
            request's own ``headers=``).
        max_connections: a limit on connections in use (leased to a request
            or a streaming response) across all hosts; requests over it wait,
            first come first served, after taking their own pool's token (so
            a saturated host never blocks the others). Idle connections do
            not count. None: no global limit.
        **connection_pool_kw: passed to each pool (``maxsize``, ``block``,
            ``timeout``, ``retries``, TLS options, ...).
    """

    def __init__(
        self,
        num_pools: int = 10,
        headers: Any = None,
        *,
        max_connections: int | None = None,
        **connection_pool_kw: Any,
    ) -> None:
        if num_pools < 1:
            raise ValueError("num_pools must be at least 1")
        if max_connections is not None and max_connections < 1:
            raise ValueError("max_connections must be at least 1 (or None)")
        self.max_connections = max_connections
        self._global_limiter = (
            None if max_connections is None else trio.CapacityLimiter(max_connections)
        )
        self.num_pools = num_pools
        self.headers = HTTPHeaderDict(headers) if headers else HTTPHeaderDict()
        _check_pool_options(connection_pool_kw)
        self.connection_pool_kw = connection_pool_kw
        self.pools: dict[PoolKey, HTTPConnectionPool] = {}
        self._nursery: trio.Nursery | None = None
        self._nursery_cm: Any = None
        self._closed = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(pools={len(self.pools)})"

    async def __aenter__(self) -> Self:
        if self._nursery_cm is not None:
            raise RuntimeError(f"{self!r} can be entered only once")
        self._nursery_cm = trio.open_nursery()
        self._nursery = await self._nursery_cm.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.clear()
        self._closed = True
        await self._nursery_cm.__aexit__(None, None, None)
        self._nursery = None

    def _attach(self, nursery: trio.Nursery) -> None:
        """Run this manager's pools in ``nursery`` (another manager's) instead
        of a nursery of its own; it is then never entered itself, and its
        owner calls :meth:`clear` when it closes."""
        if self._nursery_cm is not None:
            raise RuntimeError(f"{self!r} is already open")
        self._nursery_cm = "attached"
        self._nursery = nursery

    def statistics(self) -> ManagerStatistics:
        """Totals over the manager's pools (see ``PoolStatistics``)."""
        per_pool = [pool.statistics() for pool in self.pools.values()]
        summed = {
            f.name: sum(getattr(s, f.name) for s in per_pool)
            for f in fields(ManagerStatistics)
            if f.name != "pools"
        }
        return ManagerStatistics(pools=len(per_pool), **summed)

    async def aclose(self) -> None:
        """Close every pool; later requests raise ``ClosedPoolError``.

        Leaving the ``async with`` block does this too.
        """
        self.clear()
        self._closed = True
        await trio.lowlevel.checkpoint()

    def clear(self) -> None:
        """Close every pool (and so every connection) the manager holds."""
        pools, self.pools = self.pools, {}
        for pool in pools.values():
            pool.close_all()

    # -- routing ---------------------------------------------------------------

    def connection_from_host(
        self,
        host: str | None,
        port: int | None = None,
        scheme: str | None = "http",
        pool_kwargs: Mapping[str, Any] | None = None,
    ) -> HTTPConnectionPool:
        """The pool for an origin, created (and attached) if needed.

        ``pool_kwargs`` override the manager's pool options for this origin
        (a None value removes one); different options mean a different pool.

        Raises:
            LocationValueError: no host.
            LocationParseError: an invalid host.
            URLSchemeUnknown: a scheme other than http or https.
        """
        if not host:
            raise LocationValueError("No host specified.")
        return self.connection_from_origin(Origin.make(scheme, host, port), pool_kwargs)

    def connection_from_origin(
        self, origin: Origin, pool_kwargs: Mapping[str, Any] | None = None
    ) -> HTTPConnectionPool:
        """The pool for ``origin`` (what :meth:`connection_from_host` and
        :meth:`connection_from_url` come down to)."""
        kw = self._merge(pool_kwargs)
        return self.connection_from_pool_key(PoolKey.of(origin, kw), kw)

    def _merge(self, pool_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
        kw = dict(self.connection_pool_kw)
        if pool_kwargs:
            _check_pool_options(pool_kwargs)
        for name, value in (pool_kwargs or {}).items():
            if value is None:
                kw.pop(name, None)
            else:
                kw[name] = value
        return kw

    def connection_from_url(
        self, url: str, pool_kwargs: Mapping[str, Any] | None = None
    ) -> HTTPConnectionPool:
        """The pool for the origin of ``url``."""
        return self.connection_from_origin(Origin.of_url(url), pool_kwargs)

    def connection_from_pool_key(
        self, key: PoolKey, pool_kwargs: Mapping[str, Any] | None = None
    ) -> HTTPConnectionPool:
        """The pool for ``key``; marks it most recently used.

        A new pool is made with ``pool_kwargs`` (the manager's options if
        None), which must be the options ``key`` was made from.
        """
        if self._closed or self._nursery is None:
            raise ClosedPoolError(
                self, "PoolManager is not open: use it inside `async with`"
            )
        pool = self.pools.pop(key, None)
        if pool is None:
            kw = dict(self.connection_pool_kw if pool_kwargs is None else pool_kwargs)
            pool = self._new_pool(key, kw)
            pool.attach(self._nursery)
            while len(self.pools) >= self.num_pools:
                self.pools.pop(next(iter(self.pools))).retire()
        self.pools[key] = pool
        return pool

    def _new_pool(self, key: PoolKey, kw: dict[str, Any]) -> HTTPConnectionPool:
        return self._make_pool(key, kw)

    def _make_pool(
        self, key: PoolKey, kw: dict[str, Any], route: Route = DIRECT
    ) -> HTTPConnectionPool:
        """A pool for ``key``, sharing the manager's global limit."""
        limiter = self._global_limiter
        if key.scheme == "https":
            return HTTPSConnectionPool(
                key.host, key.port, **kw, route=route, global_limiter=limiter
            )
        plain = {k: v for k, v in kw.items() if k not in _TLS_OPTIONS}
        return HTTPConnectionPool(
            key.host, key.port, **plain, route=route, global_limiter=limiter
        )

    def route(self, url: str) -> tuple[HTTPConnectionPool, str]:
        """The pool for an absolute URL, and the target to hand it: the
        path and query (the URL is parsed once, here)."""
        parsed = parse_url(url)
        if parsed.host is None:
            raise LocationValueError(f"URL has no host: {url!r}")
        return self._pool_for(parsed), parsed.request_uri

    def _pool_for(self, parsed: Url) -> HTTPConnectionPool:
        return self.connection_from_origin(Origin.of_url(parsed))

    # -- requests --------------------------------------------------------------

    async def urlopen(
        self,
        method: str,
        url: str,
        redirect: bool = True,
        *,
        body: Any = None,
        headers: Any = None,
        retries: Retry | int | bool | None = None,
        timeout: TimeoutLike = Timeout.DEFAULT_TIMEOUT,  # noqa: ASYNC109
        pool_timeout: float | None = None,
        release_conn: bool | None = None,
        chunked: bool = False,
        body_pos: int | None = None,
        preload_content: bool = True,
        decode_content: bool = True,
        assert_same_host: bool = False,
    ) -> HTTPResponse:
        """Send a request to an absolute URL, following redirects anywhere.

        Takes ``HTTPConnectionPool.urlopen``'s arguments (``release_conn``
        and ``assert_same_host`` are accepted for urllib3 compatibility and
        change nothing here). Cross-host redirects drop
        ``Retry.remove_headers_on_redirect`` (Authorization, Cookie,
        Proxy-Authorization) when scheme, host or port change. If cancelled:
        as ``HTTPConnectionPool.urlopen``.

        Raises:
            TypeError: an unknown keyword argument.
            LocationValueError: the URL has no host.
        """
        pool, target = self.route(url)
        options = _send.RequestOptions(
            body=body,
            headers=headers if headers is not None else self.headers,
            retries=retries,
            redirect=redirect,
            assert_same_host=False,
            timeout=timeout,
            pool_timeout=pool_timeout,
            chunked=chunked,
            body_pos=body_pos,
            preload_content=preload_content,
            decode_content=decode_content,
        )
        return await _send.urlopen(pool, method, target, options, route=self.route)

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
        redirect: bool = True,
        retries: Retry | int | bool | None = None,
        timeout: TimeoutLike = Timeout.DEFAULT_TIMEOUT,  # noqa: ASYNC109
        pool_timeout: float | None = None,
        release_conn: bool | None = None,
        chunked: bool = False,
        body_pos: int | None = None,
        preload_content: bool = True,
        decode_content: bool = True,
    ) -> HTTPResponse:
        """Like :meth:`urlopen`, encoding ``fields`` or ``json`` as
        ``HTTPConnectionPool.request`` does. If cancelled: as ``urlopen``.

        Raises:
            TypeError: an unknown keyword argument, or two kinds of body.
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
            redirect,
            body=encoded.body,
            headers=encoded.headers,
            retries=retries,
            timeout=timeout,
            pool_timeout=pool_timeout,
            chunked=chunked,
            body_pos=body_pos,
            preload_content=preload_content,
            decode_content=decode_content,
        )


async def request(
    method: str,
    url: str,
    fields: Any = None,
    headers: Any = None,
    json: Any = None,
    body: Any = None,
    *,
    encode_multipart: bool = True,
    multipart_boundary: str | None = None,
    redirect: bool = True,
    retries: Retry | int | bool | None = None,
    timeout: TimeoutLike = Timeout.DEFAULT_TIMEOUT,  # noqa: ASYNC109
    chunked: bool = False,
    body_pos: int | None = None,
    preload_content: bool = True,
    decode_content: bool = True,
) -> HTTPResponse:
    """One request with a temporary :class:`PoolManager`.

    The body is always read before this returns (the connection does not
    outlive the call), so ``preload_content`` is accepted but has no effect.
    Prefer a ``PoolManager`` block for more than one request. If cancelled,
    the temporary manager and its connection are closed.

    Raises:
        TypeError: an unknown keyword argument.
    """
    async with PoolManager() as http:
        return await http.request(
            method,
            url,
            fields,
            headers,
            json,
            body,
            encode_multipart=encode_multipart,
            multipart_boundary=multipart_boundary,
            redirect=redirect,
            retries=retries,
            timeout=timeout,
            chunked=chunked,
            body_pos=body_pos,
            preload_content=True,
            decode_content=decode_content,
        )


class ProxyManager(PoolManager):
    """A PoolManager that sends every request through an HTTP(S) proxy.

    ``http://`` targets are forwarded: written in absolute form to a pool of
    connections to the proxy, with ``proxy_headers``. ``https://`` targets go
    through a ``CONNECT`` tunnel per target pool (``proxy_headers`` on the
    CONNECT only, never to the target), with TLS to the target inside it. An
    ``https://`` proxy gets TLS to itself too (so TLS in TLS for https
    targets), verified with ``proxy_ssl_context`` (default: certifi),
    ``proxy_assert_hostname`` and ``proxy_assert_fingerprint``.

    Args:
        proxy_url: ``http://[user:pass@]host[:port]`` or ``https://...``;
            credentials become a ``Proxy-Authorization`` header.
        num_pools: as for :class:`PoolManager`.
        headers: default request headers.
        proxy_headers: headers for the proxy alone.
        proxy_ssl_context: the ``ssl.SSLContext`` for TLS to an https proxy.
        use_forwarding_for_https: with an https proxy, forward https targets
            in absolute form instead of tunnelling (the proxy sees them).
        proxy_assert_hostname: the name to verify the proxy's certificate
            against, or False.
        proxy_assert_fingerprint: pin the proxy's certificate.
        **connection_pool_kw: passed to each pool.

    Raises:
        ProxySchemeUnknown: the proxy URL is not http:// or https://.
    """

    def __init__(
        self,
        proxy_url: str,
        num_pools: int = 10,
        headers: Any = None,
        proxy_headers: Any = None,
        proxy_ssl_context: Any = None,
        use_forwarding_for_https: bool = False,
        proxy_assert_hostname: str | bool | None = None,
        proxy_assert_fingerprint: str | None = None,
        **connection_pool_kw: Any,
    ) -> None:
        super().__init__(num_pools, headers, **connection_pool_kw)
        proxy = parse_url(proxy_url)
        if proxy.scheme not in ("http", "https") or not proxy.host:
            raise ProxySchemeUnknown(str(proxy.scheme))
        if use_forwarding_for_https and proxy.scheme != "https":
            raise ProxySchemeUnsupported(
                "use_forwarding_for_https needs an https:// proxy: forwarding https "
                "requests through a plain-http proxy would expose them"
            )
        port = proxy.port or DEFAULT_PORTS[proxy.scheme]
        self.proxy = proxy._replace(auth=None, port=port)
        sent = HTTPHeaderDict(proxy_headers) if proxy_headers else HTTPHeaderDict()
        if proxy.auth and "Proxy-Authorization" not in sent:
            sent.update(make_headers(proxy_basic_auth=proxy.auth))
        self.proxy_headers = sent
        # Verifying an https proxy: its own options, and (as in urllib3) the
        # CA options given for the targets.
        self._proxy_tls: dict[str, Any] = {
            "ssl_context": proxy_ssl_context,
            "assert_hostname": proxy_assert_hostname,
            "assert_fingerprint": proxy_assert_fingerprint,
            **{
                k: connection_pool_kw[k]
                for k in _PROXY_CA_OPTIONS
                if k in connection_pool_kw
            },
        }
        tls = None
        if proxy.scheme == "https":
            tls = TLSConfig.from_options(**self._proxy_tls)
        self._config = HTTPProxyConfig(
            url=self.proxy,
            headers=tuple(sent.items()),
            use_forwarding_for_https=use_forwarding_for_https,
            tls=tls,
        )
        self._forward_route = Route(self._config, forward=True)
        self._tunnel_route = Route(self._config)

    def _forwards(self, scheme: str) -> bool:
        return scheme == "http" or self._config.use_forwarding_for_https

    def connection_from_origin(
        self, origin: Origin, pool_kwargs: Mapping[str, Any] | None = None
    ) -> HTTPConnectionPool:
        """The pool for a target: the proxy's own pool for forwarded
        targets, a tunnelling pool per origin for https ones."""
        if not self._forwards(origin.scheme):
            return super().connection_from_origin(origin, pool_kwargs)
        kw = self._merge(pool_kwargs)
        proxy = Origin.of_url(self.proxy)
        options = {**kw, **self._proxy_tls, "_forward": self._config}
        return self.connection_from_pool_key(PoolKey.of(proxy, options), kw)

    def route(self, url: str) -> tuple[HTTPConnectionPool, str]:
        """As for :class:`PoolManager`; forwarded requests keep their
        absolute URL, which is what the proxy is sent."""
        parsed = parse_url(url)
        if parsed.host is None:
            raise LocationValueError(f"URL has no host: {url!r}")
        if self._forwards(parsed.scheme or "http"):
            return self._pool_for(parsed), parsed.url
        return self._pool_for(parsed), parsed.request_uri

    def _new_pool(self, key: PoolKey, kw: dict[str, Any]) -> HTTPConnectionPool:
        if dict(key.options).get("_forward") is not None:
            # TLS options given for targets do not apply to the proxy, and
            # forwarding through a proxy stays HTTP/1.1.
            kw = {k: v for k, v in kw.items() if k not in _TLS_OPTIONS}
            kw.pop("http2", None)
            kw.update({k: v for k, v in self._proxy_tls.items() if v is not None})
            return self._make_pool(key, kw, self._forward_route)
        return self._make_pool(key, kw, self._tunnel_route)


def proxy_from_url(url: str, **kw: Any) -> ProxyManager:
    """A :class:`ProxyManager` for the proxy at ``url``."""
    return ProxyManager(proxy_url=url, **kw)


class SOCKSProxyManager(PoolManager):
    """A PoolManager whose connections go through a SOCKS proxy (``socksio``).

    Args:
        proxy_url: ``socks4://``, ``socks4a://``, ``socks5://`` or
            ``socks5h://`` (``4a`` and ``5h`` let the proxy resolve names);
            ``user:pass@`` in the URL is used if ``username`` is not given.
        username: SOCKS5 username (SOCKS4: the user id).
        password: SOCKS5 password.
        num_pools: as for :class:`PoolManager`.
        headers: default request headers.
        **connection_pool_kw: passed to each pool.
    """

    def __init__(
        self,
        proxy_url: str,
        username: str | None = None,
        password: str | None = None,
        num_pools: int = 10,
        headers: Any = None,
        **connection_pool_kw: Any,
    ) -> None:
        super().__init__(num_pools, headers, **connection_pool_kw)
        proxy = parse_url(proxy_url)
        if proxy.auth and username is None:
            username, _, password = proxy.auth.partition(":")
        self.proxy_url = proxy_url
        self._config = SOCKSProxyConfig(proxy._replace(auth=None), username, password)

    def _new_pool(self, key: PoolKey, kw: dict[str, Any]) -> HTTPConnectionPool:
        return self._make_pool(key, kw, Route(self._config))
