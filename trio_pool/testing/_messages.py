"""The values a handler sees and returns: :class:`Request` and :class:`Response`.

Also the deterministic body :func:`pattern`, which the built-in routes serve so a
client test can check every byte it downloads without the server keeping a copy.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Request", "Response", "pattern"]

# One period of the pattern, and a large block made of whole periods. Any run of
# the pattern that starts at a multiple of 256 is a prefix of _BLOCK, which lets the
# byte routes stream gigabytes by re-sending the same bytes object.
_PERIOD = bytes(range(256))
PATTERN_BLOCK = _PERIOD * 1024  # 256 KiB


def pattern(n: int, offset: int = 0) -> bytes:
    """Return ``n`` bytes of the server's deterministic test pattern.

    The pattern is the byte sequence ``0, 1, ..., 255`` repeated forever;
    ``pattern(n, offset)`` is the slice ``[offset, offset + n)`` of it, so
    ``pattern(a) + pattern(b, a) == pattern(a + b)``.

    Args:
        n: How many bytes to return (``0`` or more).
        offset: Where in the infinite pattern to start.

    Returns:
        The bytes.

    Raises:
        ValueError: If ``n`` or ``offset`` is negative.
    """
    if n < 0 or offset < 0:
        raise ValueError("n and offset must not be negative")
    start = offset % 256
    if start + n <= len(PATTERN_BLOCK):
        return PATTERN_BLOCK[start : start + n]
    repeats = (start + n) // 256 + 1
    return (_PERIOD * repeats)[start : start + n]


@dataclass(frozen=True, eq=False)
class Request:
    """One request as the server received it, body included.

    Attributes:
        method: The request method, e.g. ``"GET"``.
        target: The request target exactly as sent (origin form ``/a?b=c``,
            absolute form ``http://host/a`` for proxy requests, ...).
        path: The path part of the target, still percent-encoded. For an
            absolute-form target this is the path of that URL.
        query: The query string parsed into ``{name: [value, ...]}``, keeping
            blank values and the order of first appearance.
        headers: Every header as ``(name, value)`` in wire order, with the
            name's original case; both decoded as Latin-1.
        body: The whole request body (empty for routes registered with
            ``read_body=False``).
        connection_id: Which connection it arrived on (1 for the server's first
            accepted connection, then 2, ...).
        request_number: Its 1-based position among the requests on that
            connection.
        http_version: ``"1.1"`` or ``"1.0"``.
    """

    method: str
    target: str
    path: str
    query: dict[str, list[str]]
    headers: list[tuple[str, str]]
    body: bytes
    connection_id: int
    request_number: int
    http_version: str

    def header(self, name: str) -> str | None:
        """Return the value of header ``name`` (any case), or ``None``.

        Repeated headers are joined with ``", "`` as HTTP allows.
        """
        wanted = name.lower()
        values = [value for key, value in self.headers if key.lower() == wanted]
        return ", ".join(values) if values else None

    def param(self, name: str, default: str | None = None) -> str | None:
        """Return the first value of query parameter ``name``, or ``default``."""
        values = self.query.get(name)
        return values[0] if values else default

    def to_json(self) -> dict[str, Any]:
        """Describe the request as the ``/echo`` route does (a JSON-ready dict)."""
        return {
            "method": self.method,
            "target": self.target,
            "path": self.path,
            "query": self.query,
            "headers": [[key, value] for key, value in self.headers],
            "body": self.body.decode("latin-1"),
            "connection_id": self.connection_id,
            "request_number": self.request_number,
            "http_version": self.http_version,
        }


@dataclass
class Response:
    """What a handler returns.

    ``Content-Length`` is added for ``body`` unless ``headers`` already frame the
    message; with ``chunks`` the body is sent with chunked transfer-encoding, one
    chunk per non-empty item, as the items are produced. Responses to ``HEAD``
    and 1xx/204/304 responses never carry a body. The server adds
    ``X-Connection-Id`` and ``X-Request-Number`` to every response.

    Attributes:
        status: The status code (200-599).
        headers: Extra headers as ``(name, value)`` pairs, sent in this order.
        body: The body, when ``chunks`` is ``None``.
        chunks: An iterable or async iterable of ``bytes``, sent chunked
            instead of ``body``.
        reason: The reason phrase; the standard one for ``status`` (or empty)
            when ``None``.
    """

    status: int = 200
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""
    chunks: Iterable[bytes] | AsyncIterable[bytes] | None = field(
        default=None, kw_only=True
    )
    reason: str | None = field(default=None, kw_only=True)

    @classmethod
    def json(
        cls, value: Any, status: int = 200, headers: Sequence[tuple[str, str]] = ()
    ) -> Response:
        """Build a response whose body is ``value`` as JSON."""
        body = json.dumps(value).encode()
        return cls(status, [("Content-Type", "application/json"), *headers], body)

    @classmethod
    def text(
        cls, text: str, status: int = 200, headers: Sequence[tuple[str, str]] = ()
    ) -> Response:
        """Build a ``text/plain`` response (UTF-8)."""
        content_type = ("Content-Type", "text/plain; charset=utf-8")
        return cls(status, [content_type, *headers], text.encode())
