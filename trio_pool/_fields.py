"""Form fields and ``multipart/form-data`` bodies.

:class:`RequestField` is one part of a multipart body: a name, data and the
part's own headers. :func:`encode_multipart_formdata` turns a mapping or a
sequence of fields into a complete body and its ``Content-Type``. Header
parameters (``name="..."``, ``filename="..."``) are written the way the
WHATWG HTML standard, browsers and curl write them: UTF-8, with only ``"``,
CR and LF percent-encoded.
"""

from __future__ import annotations

import json as _json
import mimetypes
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, TypeAlias
from urllib.parse import urlencode

from ._headers import copy_request_headers

__all__ = [
    "EncodedRequest",
    "RequestField",
    "choose_boundary",
    "encode_multipart_formdata",
    "encode_request",
    "format_multipart_header_param",
    "guess_content_type",
    "iter_field_objects",
]

FieldValue: TypeAlias = "str | bytes"
# int is accepted because urllib3 accepts it (it is sent as its decimal text).
FieldData: TypeAlias = "str | bytes | bytearray | memoryview | int"
FieldTuple: TypeAlias = "FieldData | tuple[str, FieldData] | tuple[str, FieldData, str]"
Fields: TypeAlias = (
    "Mapping[str, FieldTuple] | Sequence[tuple[str, FieldTuple] | RequestField]"
)
HeaderFormatter: TypeAlias = "Callable[[str, FieldValue], str]"

# Headers written first, in this order, ahead of any others a field has.
_LEADING_HEADERS = ("Content-Disposition", "Content-Type", "Content-Location")
# What format_multipart_header_param must escape inside a quoted value.
_PARAM_ESCAPES = str.maketrans({"\n": "%0A", "\r": "%0D", '"': "%22"})


def choose_boundary() -> str:
    """Return a new random multipart boundary: 32 hex digits."""
    return os.urandom(16).hex()


def guess_content_type(
    filename: str | None, default: str = "application/octet-stream"
) -> str:
    """Guess a ``Content-Type`` from a file name's extension.

    Args:
        filename: The file name; ``None`` or empty gives ``default``.
        default: Returned when the extension is unknown.
    """
    if filename:
        return mimetypes.guess_type(filename)[0] or default
    return default


def format_multipart_header_param(name: str, value: FieldValue) -> str:
    """Format one multipart header parameter as ``name="value"``.

    Args:
        name: The parameter name (ASCII).
        value: The value, as ``str`` or UTF-8 ``bytes``. ``"``, CR and LF
            become ``%22``, ``%0D`` and ``%0A``; nothing else is escaped.
    """
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    return f'{name}="{value.translate(_PARAM_ESCAPES)}"'


class RequestField:
    """One part of a multipart body.

    Args:
        name: The form field name.
        data: The part's body: ``str`` (sent as UTF-8), bytes-like, or int.
        filename: The file name to announce, if the part is a file.
        headers: Initial part headers; :meth:`make_multipart` sets the
            ``Content-*`` ones.
        header_formatter: Formats each ``Content-Disposition`` parameter;
            :func:`format_multipart_header_param` by default.
    """

    def __init__(
        self,
        name: str,
        data: FieldData,
        filename: str | None = None,
        headers: Mapping[str, str] | None = None,
        header_formatter: HeaderFormatter | None = None,
    ) -> None:
        self._name = name
        self._filename = filename
        self.data = data
        # None values are allowed: make_multipart stores None for a header it
        # was not given, and render_headers skips it.
        self.headers: dict[str, str | None] = dict(headers) if headers else {}
        self.header_formatter = header_formatter or format_multipart_header_param

    @classmethod
    def from_tuples(
        cls,
        fieldname: str,
        value: FieldTuple,
        header_formatter: HeaderFormatter | None = None,
    ) -> RequestField:
        """Build a multipart field from the short forms ``fields=`` accepts.

        Args:
            fieldname: The form field name.
            value: ``data``; ``(filename, data)``, whose content type is
                guessed from the file name; or
                ``(filename, data, content_type)``.
            header_formatter: As for the constructor.
        """
        filename: str | None = None
        content_type: str | None = None
        if isinstance(value, tuple):
            if len(value) == 3:
                filename, data, content_type = value
            else:
                filename, data = value
                content_type = guess_content_type(filename)
        else:
            data = value
        field = cls(fieldname, data, filename, header_formatter=header_formatter)
        field.make_multipart(content_type=content_type)
        return field

    def _render_part(self, name: str, value: FieldValue) -> str:
        """Format one header parameter; override to change the escaping."""
        return self.header_formatter(name, value)

    def _render_parts(
        self,
        header_parts: Mapping[str, FieldValue | None]
        | Iterable[tuple[str, FieldValue | None]],
    ) -> str:
        """Format parameters as ``k1="v1"; k2="v2"``, skipping None values."""
        pairs = (
            header_parts.items() if isinstance(header_parts, Mapping) else header_parts
        )
        return "; ".join(
            self._render_part(name, value) for name, value in pairs if value is not None
        )

    def render_headers(self) -> str:
        """Return the part's header block, ending with the blank line.

        ``Content-Disposition``, ``Content-Type`` and ``Content-Location``
        come first, in that order; headers with empty or None values are
        left out.
        """
        lines = [
            f"{name}: {value}"
            for name, value in self._ordered_headers()
            if value  # None (never set) and "" are both left out
        ]
        lines.append("\r\n")
        return "\r\n".join(lines)

    def _ordered_headers(self) -> Iterator[tuple[str, str | None]]:
        for name in _LEADING_HEADERS:
            if name in self.headers:
                yield name, self.headers[name]
        for name, value in self.headers.items():
            if name not in _LEADING_HEADERS:
                yield name, value

    def make_multipart(
        self,
        content_disposition: str | None = None,
        content_type: str | None = None,
        content_location: str | None = None,
    ) -> None:
        """Set this part's ``Content-*`` headers, replacing earlier values.

        Args:
            content_disposition: The disposition type; ``form-data`` by
                default. The field's name and file name are appended as
                parameters.
            content_type: The part's ``Content-Type``, if any.
            content_location: The part's ``Content-Location``, if any.
        """
        params = self._render_parts(
            (("name", self._name), ("filename", self._filename))
        )
        self.headers["Content-Disposition"] = (
            f"{content_disposition or 'form-data'}; {params}"
        )
        self.headers["Content-Type"] = content_type
        self.headers["Content-Location"] = content_location


def iter_field_objects(fields: Fields) -> Iterator[RequestField]:
    """Yield a :class:`RequestField` for each entry of ``fields``.

    Args:
        fields: A mapping of name to value, or a sequence whose items are
            ``(name, value)`` pairs or ready-made ``RequestField`` objects.
            Values take any form :meth:`RequestField.from_tuples` accepts.
    """
    items = fields.items() if isinstance(fields, Mapping) else fields
    for item in items:
        if isinstance(item, RequestField):
            yield item
        else:
            yield RequestField.from_tuples(*item)


def _data_bytes(data: FieldData) -> bytes | bytearray | memoryview:
    if isinstance(data, int):
        data = str(data)
    if isinstance(data, str):
        return data.encode("utf-8")
    return data


def encode_multipart_formdata(
    fields: Fields, boundary: str | None = None
) -> tuple[bytes, str]:
    """Encode ``fields`` as a ``multipart/form-data`` body.

    Args:
        fields: As for :func:`iter_field_objects`.
        boundary: The part separator; a fresh :func:`choose_boundary` if None.
            It must not occur in any field's data.

    Returns:
        The body, and the ``Content-Type`` value to send with it.
    """
    if boundary is None:
        boundary = choose_boundary()
    delimiter = f"--{boundary}\r\n".encode("latin-1")
    chunks: list[bytes | bytearray | memoryview] = []
    for field in iter_field_objects(fields):
        chunks.append(delimiter)
        chunks.append(field.render_headers().encode("utf-8"))
        chunks.append(_data_bytes(field.data))
        chunks.append(b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode("latin-1"))
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


#: Methods whose ``fields`` go into the query string rather than the body.
_FIELDS_IN_QUERY = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})


class EncodedRequest(NamedTuple):
    """What ``request()`` hands to ``urlopen()``."""

    url: str
    body: Any
    headers: Any


def encode_request(
    method: str,
    url: str,
    *,
    fields: Any,
    headers: Any,
    json: Any,
    body: Any,
    default_headers: Any,
    encode_multipart: bool = True,
    multipart_boundary: str | None = None,
) -> EncodedRequest:
    """``request()``'s encoding of ``fields`` and ``json`` (urllib3's rules).

    ``json`` becomes a UTF-8 body with ``Content-Type: application/json``
    unless the caller set a Content-Type. ``fields`` go into the query
    string for GET, HEAD, DELETE and OPTIONS, else into a multipart (or
    urlencoded) body whose ``Content-Type`` the caller's headers may
    override. ``method`` is expected upper-case.

    Raises:
        TypeError: ``json`` with ``body``, or ``fields`` with a body.
    """
    if json is not None and body is not None:
        raise TypeError("request() got both 'body' and 'json'; give only one")
    if headers is None:
        headers = default_headers
    if json is not None:
        headers = copy_request_headers(headers)
        headers.setdefault("Content-Type", "application/json")
        body = _json.dumps(json, separators=(",", ":"), ensure_ascii=False).encode()
    if not fields:
        return EncodedRequest(url, body, headers)
    pairs = list(fields.items()) if isinstance(fields, Mapping) else fields
    if method in _FIELDS_IN_QUERY:
        query = urlencode(pairs)
        return EncodedRequest(url + ("&" if "?" in url else "?") + query, body, headers)
    if body is not None:
        raise TypeError("request() got both 'fields' and a body; give only one")
    if encode_multipart:
        body, content_type = encode_multipart_formdata(
            fields, boundary=multipart_boundary
        )
    else:
        body, content_type = (
            urlencode(pairs).encode("ascii"),
            "application/x-www-form-urlencoded",
        )
    headers = copy_request_headers(headers)
    headers.setdefault("Content-Type", content_type)
    return EncodedRequest(url, body, headers)
