"""Building a request head: header lines in urllib3's order, defaults, framing.

Pure: turns what the caller passed (method, target, headers of ``str`` or
``bytes``, a :class:`~trio_pool._body.RequestBody`) into a
:class:`~trio_pool._protocol.RequestHead`. The protocol engine then checks
the bytes and puts them on the wire.

The order is urllib3's (which is ``http.client``'s): ``Host``, then
``Accept-Encoding: identity``, then the body framing (``Content-Length`` or
``Transfer-Encoding: chunked``), then ``User-Agent``, then the caller's
headers as given. A default is left out when the caller sets that header,
and a caller's header whose value is :data:`SKIP_HEADER` is not sent at all
(which suppresses the default too) — for ``Accept-Encoding`` and
``User-Agent``. urllib3 allows it for ``Host`` too; HTTP/1.1 requires a
``Host`` and h11 will not send a request without one, so that is a
``ValueError`` here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any, Final

from ._body import RequestBody
from ._exceptions import InvalidHeader
from ._headers import HTTPHeaderDict
from ._protocol import RequestHead
from ._version import __version__

__all__ = ["DEFAULT_USER_AGENT", "SKIP_HEADER", "build_head"]

DEFAULT_USER_AGENT: Final = f"python-trio-pool/{__version__}"
#: A header value meaning "do not send this header, nor its default".
SKIP_HEADER: Final = "@@@SKIP_HEADER@@@"
SKIPPABLE_HEADERS: Final = frozenset({"accept-encoding", "user-agent"})
#: Methods that get no ``Content-Length: 0`` when sent without a body
#: (urllib3's list); any other method, POST or PURGE say, gets one.
_NO_CONTENT_METHODS = frozenset(
    {"GET", "HEAD", "DELETE", "TRACE", "OPTIONS", "CONNECT"}
)
_TOKEN_RE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# What may go on the wire (RFC 9110 section 5): a token for the name; for the
# value visible characters with inner spaces or tabs, no CR, LF or NUL. The
# same rules h11 applies, checked here so a bad header fails before any I/O.
_VALUE_RE = re.compile(rb"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?")
_USER_AGENT: Final = DEFAULT_USER_AGENT.encode()


def build_head(
    method: str,
    target: str,
    headers: Any,
    body: RequestBody,
    chunked: bool,
    *,
    host: bytes | None,
    url: str,
) -> RequestHead:
    """The head of one request.

    Args:
        method: the method (``str``); checked here.
        target: the request target, already percent-encoded.
        headers: the request's headers (a mapping, an ``HTTPHeaderDict`` or
            pairs; names and values ``str`` or ``bytes``), or None.
        body: the body to be sent.
        chunked: frame the body with chunked transfer-encoding.
        host: the ``Host`` default, or None when the caller's headers carry it
            (a forwarding proxy's absolute-form request).
        url: the request's URL, for error messages.

    Raises:
        ValueError: a method with characters that cannot be in one.
        ValueError: ``SKIP_HEADER`` on a header that has no default.
        InvalidHeader: a header that cannot be encoded.
    """
    wire_method = _METHODS.get(method) if type(method) is str else None
    if wire_method is None:
        wire_method = _check_method(method)
    given = _encode_headers(headers)
    # Most requests carry no headers of their own: no set to build then.
    present = {name.lower() for name, _ in given} if given else _NONE
    lines: list[tuple[bytes, bytes]] = []
    if host is not None and b"host" not in present:
        lines.append((b"Host", host))
    if b"accept-encoding" not in present:
        lines.append(_ACCEPT_ENCODING)
    framing = _framing(wire_method, body, chunked, present)
    lines += framing
    if b"user-agent" not in present:
        lines.append(_USER_AGENT_LINE)
    if given:
        lines += [(name, value) for name, value in given if value != _SKIP]
    return RequestHead(
        method=wire_method,
        target=target.encode("ascii", "replace"),
        headers=lines,
        body_length=body.length,
        has_body=not body.is_empty,
        chunked=chunked
        or (bool(framing) and framing[0][0] == b"Transfer-Encoding")
        or (b"transfer-encoding" in present and _is_chunked(lines)),
        url=url,
    )


_NONE: Final[frozenset[bytes]] = frozenset()
_ACCEPT_ENCODING: Final = (b"Accept-Encoding", b"identity")
_USER_AGENT_LINE: Final = (b"User-Agent", _USER_AGENT)
#: Methods already checked, as sent (the standard ones to begin with).
_METHODS: dict[str, bytes] = {
    m: m.encode() for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
}
_METHODS_MAX = 64


_SKIP: Final = SKIP_HEADER.encode()


def _check_method(method: str) -> bytes:
    if isinstance(method, str) and _CONTROL_RE.search(method):
        raise ValueError(f"method can't contain control characters: {method!r}")
    wire = method.encode("ascii", "replace") if isinstance(method, str) else method
    if not _TOKEN_RE.fullmatch(wire):
        raise ValueError(f"Invalid HTTP method: {method!r}")
    if type(method) is str and len(_METHODS) < _METHODS_MAX:
        _METHODS[method] = wire
    return wire


def _framing(
    method: bytes, body: RequestBody, chunked: bool, present: AbstractSet[bytes]
) -> list[tuple[bytes, bytes]]:
    """The framing header urllib3 would add, if the caller set none."""
    if chunked:
        if b"transfer-encoding" in present:
            return []
        return [(b"Transfer-Encoding", b"chunked")]
    if b"content-length" in present or b"transfer-encoding" in present:
        return []
    if body.is_empty:
        if method.upper().decode("ascii") in _NO_CONTENT_METHODS:
            return []
        return [(b"Content-Length", b"0")]
    if body.length is None:
        return [(b"Transfer-Encoding", b"chunked")]
    return [(b"Content-Length", str(body.length).encode("ascii"))]


def _is_chunked(lines: list[tuple[bytes, bytes]]) -> bool:
    return any(
        name.lower() == b"transfer-encoding" and b"chunked" in value.lower()
        for name, value in lines
    )


def _encode_headers(headers: Any) -> list[tuple[bytes, bytes]]:
    """The caller's headers as byte pairs (names ASCII, values Latin-1)."""
    if headers is None:
        return []
    try:
        # Spaces and tabs around a value are not part of it (RFC 9110 5.5):
        # urllib3 sends them, servers drop them; h11 refuses them, so they go.
        pairs = [
            (_as_bytes(k, "ascii"), _as_bytes(v, "latin-1").strip(b" \t"))
            for k, v in _items(headers)
        ]
    except UnicodeEncodeError as exc:
        raise InvalidHeader(
            f"Header names must be ASCII and values Latin-1: {exc}"
        ) from exc
    for name, value in pairs:
        if not _TOKEN_RE.fullmatch(name) or not _VALUE_RE.fullmatch(value):
            raise InvalidHeader(f"Header cannot be sent: {name!r}: {value!r}")
        lower = name.lower().decode("ascii")
        if value == _SKIP and lower == "host":
            # h11 (rightly: RFC 9112 section 3.2) refuses HTTP/1.1 without Host.
            raise ValueError("SKIP_HEADER cannot remove Host: HTTP/1.1 requires it")
        if value == _SKIP and lower not in SKIPPABLE_HEADERS:
            raise ValueError(
                "SKIP_HEADER only works for 'Accept-Encoding' and 'User-Agent', "
                f"not {name.decode('ascii')!r}"
            )
    return pairs


def _as_bytes(text: str | bytes, encoding: str) -> bytes:
    if isinstance(text, bytes):
        return text
    if isinstance(text, str):
        return text.encode(encoding)
    raise InvalidHeader(f"Header names and values must be str or bytes, not {text!r}")


def _items(headers: Any) -> Iterable[tuple[Any, Any]]:
    if isinstance(headers, HTTPHeaderDict):
        return headers.iteritems()
    if isinstance(headers, Mapping):
        return headers.items()
    return headers  # type: ignore[no-any-return]
