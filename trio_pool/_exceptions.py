"""The exception tree (pure: no I/O library is imported here).

The names and the shape of the tree follow urllib3 2.x, so code that catches
``urllib3.exceptions.X`` can catch ``trio_pool.X``. Errors raised by trio, h11,
ssl or the operating system never escape a request as themselves: the I/O
modules wrap every operation in ``_translate.translate_errors`` (h11's are
turned into these in ``_http11``), which chains the original with
``raise ... from``. ``trio.Cancelled`` is a ``BaseException`` and is never
caught.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BodyNotHttplibCompatible",
    "ClosedPoolError",
    "ConnectTimeoutError",
    "DecodeError",
    "DependencyWarning",
    "EmptyPoolError",
    "FullPoolError",
    "HTTP11Required",
    "HTTPError",
    "HTTPWarning",
    "HeaderParsingError",
    "HostChangedError",
    "IncompleteRead",
    "InsecureRequestWarning",
    "InvalidChunkLength",
    "InvalidHeader",
    "LocationParseError",
    "LocationValueError",
    "MaxRetryError",
    "NameResolutionError",
    "NewConnectionError",
    "PoolError",
    "ProtocolError",
    "ProxyError",
    "ProxySchemeUnknown",
    "ProxySchemeUnsupported",
    "ReadTimeoutError",
    "RequestError",
    "ResponseError",
    "ResponseNotChunked",
    "SSLError",
    "SecurityWarning",
    "StreamRefusedError",
    "TimeoutError",
    "URLSchemeUnknown",
    "UnrewindableBodyError",
]


class HTTPError(Exception):
    """Base of every exception trio_pool raises on purpose."""


class HTTPWarning(Warning):
    """Base of every warning trio_pool emits."""


class PoolError(HTTPError):
    """An error tied to one connection pool."""

    def __init__(self, pool: Any, message: str) -> None:
        self.pool = pool
        super().__init__(f"{pool}: {message}")


class RequestError(PoolError):
    """An error tied to one request URL in a pool."""

    def __init__(self, pool: Any, url: str, message: str) -> None:
        self.url = url
        super().__init__(pool, message)


class SSLError(HTTPError):
    """TLS failed: handshake, certificate verification or fingerprint pinning."""


class ProxyError(HTTPError):
    """The proxy refused or broke the connection."""

    def __init__(self, message: str, error: BaseException | None = None) -> None:
        super().__init__(message, error)
        self.original_error = error


class DecodeError(HTTPError):
    """A response body could not be decoded with its Content-Encoding."""


class ProtocolError(HTTPError):
    """The connection broke, or the server spoke HTTP/1.1 wrongly."""


#: urllib3 keeps this alias for the stdlib-like name.
ConnectionError = ProtocolError  # noqa: A001


class MaxRetryError(RequestError):
    """The retry policy ran out; ``reason`` holds the last underlying error."""

    def __init__(
        self, pool: Any, url: str, reason: BaseException | None = None
    ) -> None:
        self.reason = reason
        super().__init__(
            pool, url, f"Max retries exceeded with url: {url} (Caused by {reason!r})"
        )


class HostChangedError(RequestError):
    """A pool was asked for (or redirected to) a URL on another host."""

    def __init__(self, pool: Any, url: str, retries: Any = 3) -> None:
        self.retries = retries
        super().__init__(pool, url, f"Tried to open a foreign host with url: {url}")


class TimeoutError(HTTPError):  # noqa: A001 - the name urllib3 users catch
    """Base of the timeout errors."""


class ReadTimeoutError(TimeoutError, RequestError):
    """The server sent nothing (or accepted nothing) for ``Timeout.read`` seconds."""


class ConnectTimeoutError(TimeoutError):
    """Opening the connection (TCP, TLS, proxy tunnel) took too long."""


class NewConnectionError(ConnectTimeoutError, HTTPError):
    """The connection could not be opened at all (refused, unreachable, ...)."""

    def __init__(self, conn: Any, message: str) -> None:
        self.conn = conn
        super().__init__(f"{conn}: {message}")


class StreamRefusedError(NewConnectionError):
    """The server did not process the request: an HTTP/2 stream refused
    (REFUSED_STREAM), above a GOAWAY's last stream, or on a connection that
    was closing. Never processed, so it is retried, on another connection,
    whatever the method (``Retry`` counts it as a connection error)."""


class HTTP11Required(StreamRefusedError):
    """The server reset an HTTP/2 stream with HTTP_1_1_REQUIRED: the pool
    retries over HTTP/1.1 and remembers that for its origin."""


class NameResolutionError(NewConnectionError):
    """The host name did not resolve."""

    def __init__(self, host: str, conn: Any, reason: BaseException) -> None:
        self.host = host
        self.reason = reason
        super().__init__(conn, f"Failed to resolve {host!r} ({reason})")


class EmptyPoolError(PoolError):
    """``block=True`` and no connection freed up within ``pool_timeout``."""


class FullPoolError(PoolError):
    """A connection was returned to a pool that had no room for it."""


class ClosedPoolError(PoolError):
    """The pool is not open: used outside its ``async with`` block."""


class LocationValueError(ValueError, HTTPError):
    """A URL or host was missing or unusable."""


class LocationParseError(LocationValueError):
    """A URL could not be parsed."""

    def __init__(self, location: str) -> None:
        self.location = location
        super().__init__(f"Failed to parse: {location}")


class URLSchemeUnknown(LocationValueError):
    """The URL's scheme is not one trio_pool speaks."""

    def __init__(self, scheme: str) -> None:
        self.scheme = scheme
        super().__init__(f"Not supported URL scheme {scheme}")


class ResponseError(HTTPError):
    """Too many error responses (``Retry.status_forcelist``)."""

    GENERIC_ERROR = "too many error responses"
    SPECIFIC_ERROR = "too many {status_code} error responses"


class SecurityWarning(HTTPWarning):
    """Something about this connection is less secure than it should be."""


class InsecureRequestWarning(SecurityWarning):
    """An HTTPS request was made without certificate verification."""


class DependencyWarning(HTTPWarning):
    """An optional dependency is missing or too old."""


class ResponseNotChunked(ProtocolError, ValueError):
    """Chunk-wise reading was asked of a response that is not chunked."""


class BodyNotHttplibCompatible(HTTPError):
    """The body object cannot be sent."""


class IncompleteRead(ProtocolError):
    """The body ended before the length the server announced."""

    def __init__(self, partial: int, expected: int | None) -> None:
        self.partial = partial
        self.expected = expected
        left = "unknown" if expected is None else str(expected)
        super().__init__(f"IncompleteRead({partial} bytes read, {left} more expected)")


class InvalidChunkLength(ProtocolError):
    """A chunked body carried a chunk size line that is not a hex number."""


class InvalidHeader(HTTPError):
    """A header name or value is not allowed (e.g. contains CR, LF or NUL)."""


class ProxySchemeUnknown(AssertionError, URLSchemeUnknown):
    """The proxy URL's scheme is not one trio_pool supports."""


class ProxySchemeUnsupported(ValueError):
    """The combination of proxy and target scheme is not supported."""


class HeaderParsingError(HTTPError):
    """The response headers could not be parsed."""


class UnrewindableBodyError(HTTPError):
    """A retry or redirect needs to re-send a body that cannot be rewound."""


# --------------------------------------------------------------------------
