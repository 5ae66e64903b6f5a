"""Proxies from the environment (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``,
``NO_PROXY``), opt-in.

Nothing else in trio_pool looks at the environment: only
:func:`proxy_from_environment` / :class:`EnvironmentProxyManager`, and only
once, when the manager is made, so that a manager routes the same way for its
whole life whatever the process does to ``os.environ`` later.

The variables are read by the standard library's
``urllib.request.getproxies_environment()`` (any case; a lowercase variable
wins over its uppercase twin, and an empty lowercase one removes it; under CGI,
uppercase ``HTTP_PROXY`` is ignored) and ``NO_PROXY`` is applied by
``urllib.request.proxy_bypass_environment()``. Python's version does not match
IP addresses against networks, so :func:`bypasses_proxy` adds that: a
``NO_PROXY`` entry that is an IP address or a CIDR network (``10.0.0.0/8``,
``::1``, ``[fd00::]/8``) bypasses the proxy for URLs whose host is an IP
literal inside it.

Routing is decided per origin, in ``route`` (which ``PoolManager.urlopen``
calls for the first request and for every redirect, so a redirect from a
proxied host to a ``NO_PROXY`` one goes direct) and ``connection_from_origin``
(where ``connection_from_host``/``_url`` end up). The manager owns one child
manager per route (direct, and one per proxy URL), all running their pools in
the manager's own nursery, and remembers each origin's route.
"""

from __future__ import annotations

import ipaddress
import logging
import urllib.request
from collections.abc import Mapping
from typing import Any

from ._exceptions import (
    ClosedPoolError,
    LocationParseError,
    LocationValueError,
    ProxySchemeUnknown,
)
from ._origin import Origin
from ._pool import HTTPConnectionPool
from ._poolmanager import (
    ManagerStatistics,
    PoolKey,
    PoolManager,
    ProxyManager,
    SOCKSProxyManager,
)
from ._url import parse_url

__all__ = [
    "EnvironmentProxyManager",
    "bypasses_proxy",
    "proxy_from_environment",
    "read_proxy_environment",
    "select_proxy",
]

_log = logging.getLogger("trio_pool.environ")

_DEFAULT_PORTS = {"http": 80, "https": 443}
_HTTP_PROXY_SCHEMES = frozenset({"http", "https"})
_SOCKS_SCHEMES = frozenset({"socks4", "socks4a", "socks5", "socks5h"})
#: How many origins' routes a manager remembers (then it starts afresh).
_DECISIONS_KEPT = 1024
_UNDECIDED = "undecided"  # never a proxy URL: those have "://"
#: The keys of a proxies mapping that name a proxy for trio_pool's schemes.
_PROXY_KEYS = ("http", "https", "all")


# -- the routing decision (pure) ------------------------------------------------


def read_proxy_environment() -> dict[str, str]:
    """The proxy variables of ``os.environ``, as the standard library reads them.

    Returns:
        ``urllib.request.getproxies_environment()``: a dict from a lowercase
        scheme (``"http"``, ``"https"``, ``"all"``, ...) or ``"no"`` to the
        variable's value.
    """
    return urllib.request.getproxies_environment()


def normalize_proxy_url(url: str) -> str:
    """A proxy URL with its scheme checked (``http://`` if it has none).

    Raises:
        ProxySchemeUnknown: not http, https, socks4, socks4a, socks5 or
            socks5h, or no host.
    """
    url = url.strip()
    if "://" not in url:
        # "proxy:3128", as curl and requests read it.
        url = f"http://{url}"
    parsed = parse_url(url)
    scheme = (parsed.scheme or "").lower()
    if scheme not in _HTTP_PROXY_SCHEMES | _SOCKS_SCHEMES or not parsed.host:
        raise ProxySchemeUnknown(scheme or url)
    return parsed._replace(scheme=scheme).url


def _netloc(host: str, port: int | None) -> str:
    """``host:port`` as ``urllib.request`` hands it to ``proxy_bypass``."""
    host = host.lower().strip("[]")
    if ":" in host:
        host = f"[{host}]"
    return host if port is None else f"{host}:{port}"


def _in_listed_network(host: str, no_proxy: str) -> bool:
    """Whether ``host``, an IP literal, is in an address or network listed."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    for entry in no_proxy.split(","):
        entry = entry.strip().replace("[", "").replace("]", "")
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            continue
        if address in network:
            return True
    return False


def _idna(name: str) -> str:
    """A non-ASCII host (``host:port`` too) in the IDNA form URL hosts get."""
    if name.isascii():
        return name
    try:
        parsed = parse_url(f"http://{name.lstrip('.')}/")
    except LocationParseError:
        return name
    if not parsed.host:
        return name
    return parsed.host if parsed.port is None else f"{parsed.host}:{parsed.port}"


def bypasses_proxy(proxies: Mapping[str, str], host: str, port: int | None) -> bool:
    """Whether ``NO_PROXY`` (``proxies["no"]``) sends ``host`` direct.

    The standard library's rules (``proxy_bypass_environment``): ``*`` on its
    own matches everything; each comma-separated entry matches the host
    itself and its subdomains, with or without a leading dot; an entry with
    ``:port`` matches that port only. Plus IP addresses and CIDR networks for
    IP-literal hosts (IPv6 with or without brackets).

    Args:
        proxies: a mapping as :func:`read_proxy_environment` returns.
        host: the URL's host (IPv6 with or without brackets).
        port: the URL's port; give the scheme's default if the URL has none,
            so that ``host:80`` in ``NO_PROXY`` matches ``http://host/``.
    """
    no_proxy = proxies.get("no")
    if not no_proxy:
        return False
    if not no_proxy.isascii():
        # URL hosts arrive IDNA-encoded: compare NO_PROXY's names that way.
        no_proxy = ",".join(_idna(entry.strip()) for entry in no_proxy.split(","))
    netloc = _netloc(_idna(host), port)
    # Missing from typeshed, but public (and documented in its docstring).
    stdlib_bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if stdlib_bypass(netloc, {"no": no_proxy}):
        return True
    return _in_listed_network(host, no_proxy)


def select_proxy(
    proxies: Mapping[str, str], scheme: str, host: str, port: int | None = None
) -> str | None:
    """The proxy URL for a target, or None to connect directly.

    The scheme's own entry (``HTTP_PROXY`` for ``http://``, ``HTTPS_PROXY``
    for ``https://``) wins over ``ALL_PROXY``; ``NO_PROXY`` then may send the
    target direct.

    Args:
        proxies: a mapping as :func:`read_proxy_environment` returns.
        scheme: the target's scheme.
        host: the target's host.
        port: the target's port; None means the scheme's default.

    Raises:
        ProxySchemeUnknown: the chosen proxy URL has a scheme trio_pool
            cannot use.
    """
    scheme = scheme.lower()
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy:
        return None
    if bypasses_proxy(proxies, host, port or _DEFAULT_PORTS.get(scheme)):
        return None
    return normalize_proxy_url(proxy)


def _redacted(url: str) -> str:
    return parse_url(url)._replace(auth=None).url


# -- the manager ------------------------------------------------------------------


class EnvironmentProxyManager(PoolManager):
    """A PoolManager that routes each origin as the environment's proxy
    variables say: directly, through an HTTP(S) proxy (as
    :class:`ProxyManager`) or through a SOCKS one (as
    :class:`SOCKSProxyManager`).

    The proxies are read once, here: later changes to ``os.environ`` do not
    affect this manager. Use it as ``async with`` like any PoolManager.

    Args:
        num_pools: as for :class:`PoolManager`, for each route (direct, and
            each proxy) separately.
        headers: default request headers.
        proxies: the proxy settings to use instead of the environment's, in
            the shape of ``urllib.request.getproxies()`` (``{"http": url,
            "https": url, "all": url, "no": "host,.domain,10.0.0.0/8"}``).
        max_connections: a limit on connections in use across every route.
        proxy_headers: headers for HTTP(S) proxies alone (not SOCKS ones).
        proxy_ssl_context: the ``ssl.SSLContext`` for TLS to an ``https://``
            proxy.
        proxy_assert_hostname: as for :class:`ProxyManager`.
        proxy_assert_fingerprint: as for :class:`ProxyManager`.
        **connection_pool_kw: passed to each pool (``maxsize``, ``block``,
            ``timeout``, ``retries``, TLS options for the targets, ...).

    Raises:
        TypeError: an unknown keyword argument.
        ProxySchemeUnknown: a proxy URL trio_pool cannot use.
    """

    def __init__(
        self,
        num_pools: int = 10,
        headers: Any = None,
        *,
        proxies: Mapping[str, str] | None = None,
        max_connections: int | None = None,
        proxy_headers: Any = None,
        proxy_ssl_context: Any = None,
        proxy_assert_hostname: str | bool | None = None,
        proxy_assert_fingerprint: str | None = None,
        **connection_pool_kw: Any,
    ) -> None:
        super().__init__(
            num_pools, headers, max_connections=max_connections, **connection_pool_kw
        )
        self.proxies: dict[str, str] = dict(
            read_proxy_environment() if proxies is None else proxies
        )
        self._proxy_kw: dict[str, Any] = {
            "proxy_headers": proxy_headers,
            "proxy_ssl_context": proxy_ssl_context,
            "proxy_assert_hostname": proxy_assert_hostname,
            "proxy_assert_fingerprint": proxy_assert_fingerprint,
        }
        #: The proxy URL (normalised) for each of "http", "https", "all".
        self._proxy_urls = {
            name: normalize_proxy_url(self.proxies[name])
            for name in _PROXY_KEYS
            if self.proxies.get(name)
        }
        self._routes: dict[str | None, PoolManager] = {None: self._child(None)}
        for url in self._proxy_urls.values():
            if url not in self._routes:
                self._routes[url] = self._child(url)
        # Each origin's route, remembered: NO_PROXY is matched once per
        # origin rather than once per request.
        self._decided: dict[Origin, str | None] = {}
        _log.debug(
            "proxy settings: %s; no_proxy=%r",
            {name: _redacted(url) for name, url in self._proxy_urls.items()},
            self.proxies.get("no"),
        )

    def _child(self, proxy_url: str | None) -> PoolManager:
        """The manager for one route, sharing this one's global limit."""
        kw = self.connection_pool_kw
        child: PoolManager
        if proxy_url is None:
            child = PoolManager(self.num_pools, **kw)
        elif parse_url(proxy_url).scheme in _SOCKS_SCHEMES:
            child = SOCKSProxyManager(proxy_url, num_pools=self.num_pools, **kw)
        else:
            child = ProxyManager(
                proxy_url, num_pools=self.num_pools, **self._proxy_kw, **kw
            )
        child._global_limiter = self._global_limiter
        return child

    def __repr__(self) -> str:
        routes = ", ".join(
            f"{name}={_redacted(url)}" for name, url in self._proxy_urls.items()
        )
        return f"{type(self).__name__}({routes or 'direct'})"

    def proxy_for(self, url: str) -> str | None:
        """The proxy ``url`` goes through (credentials left out), or None
        if it goes direct."""
        parsed = parse_url(url)
        if not parsed.host:
            raise LocationValueError(f"URL has no host: {url!r}")
        proxy = select_proxy(
            self.proxies, parsed.scheme or "http", parsed.host, parsed.port
        )
        return None if proxy is None else _redacted(proxy)

    def _route(self, origin: Origin) -> PoolManager:
        """The child manager for ``origin``, attached to our nursery."""
        if self._closed or self._nursery is None:
            raise ClosedPoolError(
                self, "PoolManager is not open: use it inside `async with`"
            )
        proxy = self._decided.get(origin, _UNDECIDED)
        if proxy is _UNDECIDED:
            if len(self._decided) >= _DECISIONS_KEPT:
                self._decided.clear()
            proxy = self._decided[origin] = select_proxy(
                self.proxies, origin.scheme, origin.host, origin.port
            )
        child = self._routes[proxy]
        if child._nursery is None:
            child._attach(self._nursery)
        return child

    def connection_from_origin(
        self, origin: Origin, pool_kwargs: Mapping[str, Any] | None = None
    ) -> HTTPConnectionPool:
        """The pool for ``origin``, from the route the environment gives it
        (``connection_from_host`` and ``connection_from_url`` come here)."""
        return self._route(origin).connection_from_origin(origin, pool_kwargs)

    def route(self, url: str) -> tuple[HTTPConnectionPool, str]:
        """The pool for an absolute URL and the target to send, as the
        URL's route has them (absolute for a forwarding proxy).

        ``urlopen`` routes every redirect here too, so each hop takes its
        own route: a redirect to a ``NO_PROXY`` host goes direct.
        """
        parsed = parse_url(url)
        if parsed.host is None:
            raise LocationValueError(f"URL has no host: {url!r}")
        return self._route(Origin.of_url(parsed)).route(url)

    def connection_from_pool_key(
        self, key: PoolKey, pool_kwargs: Mapping[str, Any] | None = None
    ) -> HTTPConnectionPool:
        """The pool for ``key``, on the route its origin takes."""
        origin = Origin(key.scheme, key.host, key.port)
        child = self._route(origin)
        if type(child) is PoolManager:
            return child.connection_from_pool_key(key, pool_kwargs)
        # A proxy manager keys its pools its own way (by proxy, for
        # forwarded targets).
        return child.connection_from_origin(origin, pool_kwargs)

    def clear(self) -> None:
        """Close every pool of every route."""
        super().clear()
        for child in self._routes.values():
            child.clear()

    def statistics(self) -> ManagerStatistics:
        """Totals over the pools of every route."""
        parts = [super().statistics()]
        parts += [child.statistics() for child in self._routes.values()]
        return ManagerStatistics(
            pools=sum(s.pools for s in parts),
            idle=sum(s.idle for s in parts),
            in_use=sum(s.in_use for s in parts),
            waiting=sum(s.waiting for s in parts),
            created=sum(s.created for s in parts),
            reused=sum(s.reused for s in parts),
            dropped=sum(s.dropped for s in parts),
        )


def proxy_from_environment(**kw: Any) -> EnvironmentProxyManager:
    """A manager that honours ``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``
    and ``NO_PROXY`` as read now (see :class:`EnvironmentProxyManager`)."""
    return EnvironmentProxyManager(**kw)
