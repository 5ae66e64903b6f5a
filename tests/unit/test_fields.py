"""Tests for trio_pool._fields: RequestField and multipart encoding."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_pool._fields import (
    FieldTuple,
    RequestField,
    choose_boundary,
    encode_multipart_formdata,
    format_multipart_header_param,
    guess_content_type,
    iter_field_objects,
)

# -- small helpers ---------------------------------------------------------------


def test_choose_boundary_is_random_hex() -> None:
    boundaries = {choose_boundary() for _ in range(50)}
    assert len(boundaries) == 50
    for boundary in boundaries:
        assert re.fullmatch(r"[0-9a-f]{32}", boundary)


@pytest.mark.parametrize(
    ("filename", "default", "expected"),
    [
        ("notes.txt", None, "text/plain"),
        ("archive.unknown-extension", None, "application/octet-stream"),
        ("archive.unknown-extension", "x/y", "x/y"),
        (None, None, "application/octet-stream"),
        ("", "x/y", "x/y"),
    ],
)
def test_guess_content_type(
    filename: str | None, default: str | None, expected: str
) -> None:
    if default is None:
        assert guess_content_type(filename) == expected
    else:
        assert guess_content_type(filename, default) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", 'name="plain"'),
        ('a"b', 'name="a%22b"'),
        ("line\r\nbreak", 'name="line%0D%0Abreak"'),
        # Everything else is left alone, as browsers do.
        ("back\\slash\ttab %22 ünï", 'name="back\\slash\ttab %22 ünï"'),
        ("ünï".encode(), 'name="ünï"'),
    ],
)
def test_format_multipart_header_param(value: str | bytes, expected: str) -> None:
    assert format_multipart_header_param("name", value) == expected


# -- RequestField ----------------------------------------------------------------


def test_make_multipart_defaults() -> None:
    field = RequestField("field", b"data")
    field.make_multipart()
    assert field.headers == {
        "Content-Disposition": 'form-data; name="field"',
        "Content-Type": None,
        "Content-Location": None,
    }
    assert (
        field.render_headers() == 'Content-Disposition: form-data; name="field"\r\n\r\n'
    )


def test_make_multipart_with_everything() -> None:
    field = RequestField("f", b"", filename='a "quoted".txt')
    field.make_multipart(
        content_disposition="attachment",
        content_type="text/plain",
        content_location="/where",
    )
    assert field.render_headers() == (
        'Content-Disposition: attachment; name="f"; filename="a %22quoted%22.txt"\r\n'
        "Content-Type: text/plain\r\n"
        "Content-Location: /where\r\n"
        "\r\n"
    )


def test_render_headers_order_and_empty_values() -> None:
    given_headers = {
        "X-Last": "1",
        "Content-Location": "/l",
        "X-Empty": "",
        "Content-Type": "t/t",
    }
    field = RequestField("f", b"", headers=given_headers)
    field.headers["X-None"] = None
    # The three Content-* headers first, in a fixed order; then the rest in
    # insertion order; empty and None values left out.
    assert field.render_headers() == (
        "Content-Type: t/t\r\nContent-Location: /l\r\nX-Last: 1\r\n\r\n"
    )
    assert "X-None" not in given_headers  # the caller's dict is not touched


def test_render_headers_with_no_headers() -> None:
    assert RequestField("f", b"").render_headers() == "\r\n"


def test_custom_header_formatter() -> None:
    def formatter(name: str, value: str | bytes) -> str:
        return f"{name}={value!r}"

    field = RequestField("f", b"", filename="x", header_formatter=formatter)
    field.make_multipart()
    assert field.headers["Content-Disposition"] == "form-data; name='f'; filename='x'"


def test_render_parts_accepts_a_mapping() -> None:
    field = RequestField("f", b"")
    assert field._render_parts({"a": "1", "skipped": None, "b": b"2"}) == 'a="1"; b="2"'


@pytest.mark.parametrize(
    ("value", "filename", "data", "content_type"),
    [
        ("just data", None, "just data", None),
        (("report.txt", b"abc"), "report.txt", b"abc", "text/plain"),
        (("blob.unknown-extension", b"abc"), "blob.unknown-extension", b"abc", None),
        (("img", b"\x89PNG", "image/png"), "img", b"\x89PNG", "image/png"),
    ],
)
def test_from_tuples(
    value: FieldTuple, filename: str | None, data: object, content_type: str | None
) -> None:
    field = RequestField.from_tuples("name", value)
    assert field.data == data
    disposition = 'form-data; name="name"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    assert field.headers["Content-Disposition"] == disposition
    if filename is not None and content_type is None:
        content_type = "application/octet-stream"  # guessed, nothing known
    assert field.headers["Content-Type"] == content_type


def test_from_tuples_passes_header_formatter() -> None:
    field = RequestField.from_tuples(
        "n", "v", header_formatter=lambda k, v: f"{k}:{v!s}"
    )
    assert field.headers["Content-Disposition"] == "form-data; name:n"


# -- iter_field_objects ----------------------------------------------------------


def test_iter_field_objects() -> None:
    ready = RequestField("ready", b"1")
    from_sequence = list(iter_field_objects([("a", "1"), ready, ("a", "2")]))
    assert [f._name for f in from_sequence] == ["a", "ready", "a"]
    assert from_sequence[1] is ready
    from_mapping = list(iter_field_objects({"x": "1", "y": ("f", b"2")}))
    assert [(f._name, f.data) for f in from_mapping] == [("x", "1"), ("y", b"2")]


# -- encode_multipart_formdata ---------------------------------------------------


def test_encode_exact_body() -> None:
    body, content_type = encode_multipart_formdata(
        [
            ("text", "é"),
            ("file", ("a.bin", b"\x00\xff", "application/x-test")),
            ("n", 5),
        ],
        boundary="BOUNDARY",
    )
    assert content_type == "multipart/form-data; boundary=BOUNDARY"
    assert body == (
        b"--BOUNDARY\r\n"
        b'Content-Disposition: form-data; name="text"\r\n'
        b"\r\n"
        b"\xc3\xa9\r\n"
        b"--BOUNDARY\r\n"
        b'Content-Disposition: form-data; name="file"; filename="a.bin"\r\n'
        b"Content-Type: application/x-test\r\n"
        b"\r\n"
        b"\x00\xff\r\n"
        b"--BOUNDARY\r\n"
        b'Content-Disposition: form-data; name="n"\r\n'
        b"\r\n"
        b"5\r\n"
        b"--BOUNDARY--\r\n"
    )


def test_encode_non_ascii_names_as_utf8() -> None:
    body, _ = encode_multipart_formdata({"ñ": ("ü.bin", b"")}, boundary="b")
    assert 'name="ñ"; filename="ü.bin"'.encode() in body


def test_encode_bytes_like_data() -> None:
    body, _ = encode_multipart_formdata(
        [("a", bytearray(b"xy")), ("b", memoryview(b"zw"))], boundary="b"
    )
    assert b"\r\n\r\nxy\r\n--b\r\n" in body
    assert b"\r\n\r\nzw\r\n--b--\r\n" in body


def test_encode_no_fields() -> None:
    assert encode_multipart_formdata({}, boundary="b") == (
        b"--b--\r\n",
        "multipart/form-data; boundary=b",
    )


def test_encode_picks_a_fresh_boundary() -> None:
    body, content_type = encode_multipart_formdata({"a": "1"})
    boundary = content_type.removeprefix("multipart/form-data; boundary=")
    assert re.fullmatch(r"[0-9a-f]{32}", boundary)
    assert body.startswith(f"--{boundary}\r\n".encode())
    assert body.endswith(f"--{boundary}--\r\n".encode())
    _, other = encode_multipart_formdata({"a": "1"})
    assert other != content_type


# -- round trip property ---------------------------------------------------------


def _parse_multipart(body: bytes, boundary: str) -> list[tuple[dict[str, str], bytes]]:
    """A minimal multipart reader, independent of the encoder."""
    closing = f"--{boundary}--\r\n".encode()
    assert body.endswith(closing)
    chunks = body[: -len(closing)].split(f"--{boundary}\r\n".encode())
    assert chunks[0] == b""
    parts = []
    for chunk in chunks[1:]:
        head, _, data = chunk.partition(b"\r\n\r\n")
        assert data.endswith(b"\r\n")
        headers = dict(
            line.split(": ", 1) for line in head.decode().split("\r\n") if line
        )
        parts.append((headers, data[:-2]))
    return parts


def _escape_param(value: str) -> str:
    return value.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


_names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=10)


@given(
    st.lists(
        st.tuples(
            _names, st.none() | _names, st.binary(max_size=40) | st.text(max_size=20)
        ),
        max_size=5,
    )
)
def test_round_trip_through_an_independent_reader(
    fields: list[tuple[str, str | None, bytes | str]],
) -> None:
    boundary = choose_boundary()
    encoded: list[tuple[str, FieldTuple]] = [
        (name, data if filename is None else (filename, data, "x/y"))
        for name, filename, data in fields
    ]
    body, _ = encode_multipart_formdata(encoded, boundary=boundary)
    parts = _parse_multipart(body, boundary)
    assert len(parts) == len(fields)
    for (headers, data), (name, filename, sent) in zip(parts, fields, strict=True):
        disposition = f'form-data; name="{_escape_param(name)}"'
        if filename is not None:
            disposition += f'; filename="{_escape_param(filename)}"'
            assert headers["Content-Type"] == "x/y"
        assert headers["Content-Disposition"] == disposition
        assert data == (sent.encode() if isinstance(sent, str) else sent)
