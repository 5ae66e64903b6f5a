"""The one boundary where errors from trio, ssl and the OS become trio_pool's.

(h11's errors are translated where h11 is spoken, in ``_http11``; this module
knows nothing of any protocol library.) Our own ``HTTPError`` subclasses and
``trio.Cancelled`` pass through untouched; everything is chained with
``raise ... from``.
"""

from __future__ import annotations

import errno
import socket
import ssl
from typing import Any, Literal

import trio

from ._exceptions import (
    HTTPError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    SSLError,
)

__all__ = ["translate_errors"]


_RESET_ERRNOS = {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED}


def _describe_ssl(exc: BaseException, where: translate_errors | None = None) -> str:
    """The message of the SSLError for an ``ssl`` failure: what, with whom, why.

    The why is ``ssl``'s whole text, reason code included ("[SSL:
    CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local
    issuer certificate ..."), as urllib3's SSLError shows it: callers search
    it. The peer is ``where.host``, with the pool's port when the pool is for
    that host (a proxy's handshake names the proxy, without the port).
    """
    # str() of an ssl.SSLError made with one argument is its args tuple.
    args = exc.args
    detail = getattr(exc, "strerror", None) or (
        str(args[0]) if len(args) == 1 else str(exc) if args else ""
    )
    verify = getattr(exc, "verify_message", None)
    if verify and str(verify) not in detail:
        detail = f"{detail}: {verify}" if detail else str(verify)
    detail = detail or type(exc).__name__
    if where is None:
        return detail
    pool_host = getattr(where.pool, "host", None)
    host = where.host or pool_host
    if not host:
        peer = "the server"
    else:
        peer = f"[{host}]" if ":" in host else str(host)
        port = getattr(where.pool, "port", None) or getattr(
            where.pool, "default_port", None
        )
        if host == pool_host and port:
            peer = f"{peer}:{port}"
    if where.phase == "connect":
        return f"TLS handshake with {peer} failed: {detail}"
    return f"TLS error on the connection to {peer}: {detail}"


class translate_errors:  # used like a function: `with translate_errors(...)`
    """Turn foreign errors raised inside the block into trio_pool exceptions.

    Args:
        phase: ``"connect"`` while opening a connection (TCP, TLS, tunnel),
            ``"send"`` or ``"receive"`` during an exchange.
        pool: the pool to name in the message.
        url: the request URL, for ``ReadTimeoutError``-style messages.
        host: the host being connected to, for name resolution errors.

    Our own ``HTTPError`` subclasses and ``trio.Cancelled`` pass through. A
    class rather than a generator context manager: it is entered on every
    send and receive, and this costs a fraction as much.
    """

    __slots__ = ("host", "phase", "pool", "url")

    def __init__(
        self, phase: str, *, pool: Any = None, url: str = "", host: str = ""
    ) -> None:
        self.phase = phase
        self.pool = pool
        self.url = url
        self.host = host

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: object,
    ) -> Literal[False]:
        if exc is None or not isinstance(exc, Exception) or isinstance(exc, HTTPError):
            return False
        translated = self.translate(exc)
        if translated is None:
            return False
        raise translated[0] from translated[1]

    def translate(self, exc: Exception) -> tuple[HTTPError, BaseException] | None:
        """The trio_pool error for ``exc`` and the error to chain it from."""
        if isinstance(exc, socket.gaierror):
            return NameResolutionError(self.host, self.pool, exc), exc
        if isinstance(exc, ssl.SSLError):
            return SSLError(_describe_ssl(exc, self)), exc
        if isinstance(exc, (trio.BrokenResourceError, trio.ClosedResourceError)):
            cause = exc.__cause__
            if isinstance(cause, ssl.SSLError):
                return SSLError(_describe_ssl(cause, self)), cause
            if self.phase == "connect":
                return self._new_connection_error(exc), exc
            return ProtocolError(f"Connection aborted: {cause or exc!r}"), exc
        if isinstance(exc, OSError):
            if self.phase == "connect":
                return self._new_connection_error(exc), exc
            what = "reset" if exc.errno in _RESET_ERRNOS else "failed"
            return ProtocolError(f"Connection {what}: {exc}"), exc
        return None

    def _new_connection_error(self, exc: BaseException) -> NewConnectionError:
        return NewConnectionError(
            self.pool, f"Failed to establish a new connection: {exc}"
        )
