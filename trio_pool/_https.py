"""HTTPSConnectionPool: an HTTPConnectionPool whose transport is TLS.

The pool turns its TLS options into one :class:`~trio_pool._tls.TLSConfig`
when it is constructed; every connection then opens TCP as the plain pool
does and runs :func:`start_tls` on it. The base pool puts the whole of
``_open_transport`` inside the connect timeout and the error translation, so
a slow handshake is a ``ConnectTimeoutError`` and an ``ssl`` failure an
``SSLError``. A stream whose handshake or checks did not succeed is closed
here, at once, and never reaches the pool.
"""

from __future__ import annotations

import os
import ssl
import warnings
from typing import Any

import trio

from ._exceptions import InsecureRequestWarning, LocationValueError
from ._pool import HTTPConnectionPool
from ._retry import Retry
from ._timeout import DEFAULT_TIMEOUT, TimeoutLike
from ._tls import AssertHostname, CADataLike, TLSConfig, tls_hostname

__all__ = ["HTTPSConnectionPool", "start_tls"]


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
    # exists is closed: closing an SSLStream closes the TCP stream under it.
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
            emits ``InsecureRequestWarning`` for each new connection.
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
        self.server_hostname = server_hostname
        self._tls = TLSConfig.from_options(
            ssl_context=ssl_context,
            cert_reqs=cert_reqs,
            ca_certs=ca_certs,
            ca_cert_dir=ca_cert_dir,
            ca_cert_data=ca_cert_data,
            cert_file=cert_file,
            key_file=key_file,
            key_password=key_password,
            ssl_minimum_version=ssl_minimum_version,
            ssl_maximum_version=ssl_maximum_version,
            assert_hostname=assert_hostname,
            assert_fingerprint=assert_fingerprint,
        )
        self._tls_hostname = _checked_hostname(
            self._tls.context, server_hostname or self.host
        )

    async def _open_transport(self) -> trio.abc.Stream:
        if not self._tls.verified:
            # Before connecting, so that a warning turned into an error (as
            # under ``-W error``) cannot leave a stream open.
            warnings.warn(
                f"Unverified HTTPS request is being made to host {self.host!r}. "
                "Adding certificate verification is strongly advised.",
                InsecureRequestWarning,
                stacklevel=2,
            )
        tcp = await super()._open_transport()
        return await start_tls(tcp, self._tls, self._tls_hostname)

    def _connection_facts(self, stream: trio.abc.Stream) -> dict[str, Any]:
        """The ``connect`` trace event's detail: TLS version and ALPN."""
        if not isinstance(stream, trio.SSLStream):
            return {}
        return {"tls": stream.version(), "alpn": stream.selected_alpn_protocol()}


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
