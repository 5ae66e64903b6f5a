"""HTTPSConnectionPool, and ``connection_from_url`` for either kind of pool.

The pool turns its TLS options into one :class:`~trio_pool._tls.TLSConfig`
(checking them when it is constructed); every new connection then gets TLS
on top of its transport (see ``_transport``). As in urllib3 the options are
also attributes of the pool: assigning one (``pool.assert_fingerprint =
...``) applies to the connections opened after that, because the config is
rebuilt when any of them has changed.
"""

from __future__ import annotations

import os
import ssl
import warnings
from typing import Any

from ._exceptions import InsecureRequestWarning, LocationValueError, URLSchemeUnknown
from ._pool import HTTPConnectionPool
from ._response import HTTPResponse
from ._retry import Retry
from ._send import Attempt
from ._timeout import DEFAULT_TIMEOUT, TimeoutLike
from ._tls import AssertHostname, CADataLike, TLSConfig, tls_hostname
from ._url import parse_url

__all__ = ["TLS_OPTIONS", "HTTPSConnectionPool", "connection_from_url"]

#: The TLS options of an https pool, in the order ``TLSConfig`` takes them.
TLS_OPTIONS = (
    "ssl_context",
    "cert_reqs",
    "ca_certs",
    "ca_cert_dir",
    "ca_cert_data",
    "cert_file",
    "key_file",
    "key_password",
    "ssl_minimum_version",
    "ssl_maximum_version",
    "assert_hostname",
    "assert_fingerprint",
    "ssl_version",
)


class HTTPSConnectionPool(HTTPConnectionPool):
    """A pool of keep-alive TLS connections to one ``https://`` host.

    Takes :class:`HTTPConnectionPool`'s arguments (the port defaults to 443)
    and these keyword arguments; ``docs/tls.md`` has examples.

    Args:
        ssl_context: an ``ssl.SSLContext`` to use instead of building one; it
            takes precedence over the options that build a context (see
            ``TLSConfig.from_options`` for what the pool still adjusts in it).
        cert_reqs: ``ssl.CERT_REQUIRED`` (the default) or ``ssl.CERT_NONE``,
            or their names (``"CERT_NONE"``, ``"NONE"``, ...). ``CERT_NONE``
            emits ``InsecureRequestWarning`` for each request.
        ca_certs: a PEM file of CA certificates to trust.
        ca_cert_dir: a directory of CA certificates under hashed names (as
            made by ``openssl rehash``).
        ca_cert_data: CA certificates as PEM text or DER bytes. Without any
            ``ca_*`` option the pool trusts certifi's roots.
        cert_file: a client certificate (PEM), with its key unless
            ``key_file`` is given.
        key_file: the client certificate's private key (PEM).
        key_password: the password of an encrypted private key.
        ssl_minimum_version: the lowest ``ssl.TLSVersion`` (TLS 1.2 default).
        ssl_maximum_version: the highest ``ssl.TLSVersion``.
        assert_hostname: the name the certificate must be valid for, if not
            the host; False to skip the name check (the chain is still
            verified).
        assert_fingerprint: the MD5, SHA-1 or SHA-256 digest (hex, colons
            optional) the server's certificate must have; checked after the
            handshake, before the request is sent, and in place of the name
            check.
        server_hostname: the name sent as SNI and verified, if not the host.
        ssl_version: urllib3's deprecated ``ssl.PROTOCOL_*`` setting, mapped to
            minimum and maximum versions (with a ``FutureWarning``).
        **kw: passed on to :class:`HTTPConnectionPool`.

    Raises:
        ValueError: a malformed or contradictory TLS option.
        SSLError: a CA, certificate or key file that cannot be loaded.
    """

    scheme = "https"
    default_port = 443

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
        ssl_context: ssl.SSLContext | None = None,
        cert_reqs: int | str | None = None,
        ca_certs: str | os.PathLike[str] | None = None,
        ca_cert_dir: str | os.PathLike[str] | None = None,
        ca_cert_data: CADataLike = None,
        cert_file: str | os.PathLike[str] | None = None,
        key_file: str | os.PathLike[str] | None = None,
        key_password: str | bytes | None = None,
        ssl_minimum_version: ssl.TLSVersion | None = None,
        ssl_maximum_version: ssl.TLSVersion | None = None,
        assert_hostname: AssertHostname = None,
        assert_fingerprint: str | None = None,
        server_hostname: str | None = None,
        ssl_version: int | str | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(host, port, timeout, maxsize, block, headers, retries, **kw)
        # urllib3 keeps the options as attributes of the pool; so do we.
        self.ssl_context = ssl_context
        self.cert_reqs = cert_reqs
        self.ca_certs = ca_certs
        self.ca_cert_dir = ca_cert_dir
        self.ca_cert_data = ca_cert_data
        self.cert_file = cert_file
        self.key_file = key_file
        self.key_password = key_password
        self.ssl_minimum_version = ssl_minimum_version
        self.ssl_maximum_version = ssl_maximum_version
        self.assert_hostname = assert_hostname
        self.assert_fingerprint = assert_fingerprint
        self.ssl_version = ssl_version
        self.server_hostname = server_hostname
        self._tls_key: tuple[Any, ...] = ()
        self._tls_config, self._tls_name = self._tls()

    def _tls_options(self) -> tuple[Any, ...]:
        names = (*TLS_OPTIONS, "server_hostname")
        return (*(getattr(self, name) for name in names), self._alpn())

    def _alpn(self) -> tuple[str, ...]:
        """What ALPN offers: h2 too, unless the origin asked for HTTP/1.1."""
        if self.http2 and self._protocol != "h1-only":
            return ("h2", "http/1.1")
        return ("http/1.1",)

    def _tls(self) -> tuple[TLSConfig, str]:
        """The TLS config for a new connection, rebuilt if an option changed."""
        options = self._tls_options()
        if options != self._tls_key:
            kw = dict(zip(TLS_OPTIONS, options, strict=False))
            config = TLSConfig.from_options(**kw, alpn_protocols=options[-1])
            name = _checked_hostname(config.context, self.server_hostname or self.host)
            self._tls_config, self._tls_name = config, name
            self._tls_key = options
        return self._tls_config, self._tls_name

    async def send_once(self, attempt: Attempt) -> HTTPResponse:
        """As for :class:`HTTPConnectionPool`; warns first when certificates
        are not verified (``InsecureRequestWarning``, once per request, as in
        urllib3). The check reads the config made for the pool's newest
        connection: no per-request rebuild, which only new connections need."""
        if not self._tls_config.verified:
            warn_unverified(self.host)
        return await super().send_once(attempt)


def warn_unverified(host: str) -> None:
    """urllib3's warning for a request whose certificate is not checked."""
    warnings.warn(
        f"Unverified HTTPS request is being made to host {host!r}. "
        "Adding certificate verification is strongly advised.",
        InsecureRequestWarning,
        stacklevel=5,
    )


def _checked_hostname(context: ssl.SSLContext, host: str) -> str:
    """The SNI name for ``host``, refused now if ``ssl`` would refuse it later."""
    name = tls_hostname(host)
    try:
        context.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname=name)
    except (ValueError, UnicodeError) as exc:
        raise LocationValueError(
            f"Invalid host name for TLS: {name!r} ({exc})"
        ) from exc
    return name


def connection_from_url(url: str, **kw: Any) -> HTTPConnectionPool:
    """A pool for the origin of ``url`` (to be entered with ``async with``).

    ``https://`` URLs give an ``HTTPSConnectionPool``.

    Raises:
        LocationValueError: no host in ``url``.
        URLSchemeUnknown: a scheme other than http or https.
    """
    parsed = parse_url(url)
    scheme = parsed.scheme or "http"
    if not parsed.host:
        raise LocationValueError(f"No host in URL: {url!r}")
    if scheme == "https":
        return HTTPSConnectionPool(parsed.host, parsed.port, **kw)
    if scheme != "http":
        raise URLSchemeUnknown(scheme)
    return HTTPConnectionPool(parsed.host, parsed.port, **kw)
