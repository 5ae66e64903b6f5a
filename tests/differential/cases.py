"""What one differential example sends, and the hypothesis strategies for it.

A :class:`Case` is plain data; each client builds its own arguments from it
(its own ``Retry`` and ``HTTPHeaderDict`` classes, a fresh iterator or file
for the body), so that neither client can disturb what the other is given.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

SKIP_HEADER = "@@@SKIP_HEADER@@@"  # urllib3.util.SKIP_HEADER's value
BOUNDARY = "differential-boundary-0123456789"
LARGE = bytes(range(256)) * 80  # 20 KiB: more than one urllib3 block


@dataclass(frozen=True)
class RetrySpec:
    """A ``Retry(...)`` both libraries can build."""

    total: int
    redirect: int | None
    status_forcelist: tuple[int, ...] | None
    raise_on_status: bool
    raise_on_redirect: bool

    def build(self, retry_class: Any) -> Any:
        """This Retry, as an instance of ``retry_class``."""
        return retry_class(
            total=self.total,
            redirect=self.redirect,
            status_forcelist=self.status_forcelist,
            raise_on_status=self.raise_on_status,
            raise_on_redirect=self.raise_on_redirect,
            backoff_factor=0,
        )


@dataclass(frozen=True)
class Case:
    """One request, as data.

    Attributes:
        via: ``"manager"`` (PoolManager, absolute URL), ``"pool"``
            (HTTPConnectionPool, path only) or ``"proxy"`` (ProxyManager
            with the server as the proxy).
        method: the method, possibly odd or illegal.
        path: path and query (may be odd), starting at the origin.
        payload: ``"none"``, ``"fields"``, ``"json"`` or ``"body"``.
        fields: the ``fields=`` pairs (values: str, or (filename, data, type)).
        encode_multipart: whether ``fields`` go multipart (else urlencoded).
        encoding_kwargs: whether ``encode_multipart=`` and
            ``multipart_boundary=`` are passed with ``fields`` (without them
            boundaries are random; the harness normalises those).
        json: the ``json=`` value.
        body_kind: ``"bytes"``, ``"str"``, ``"iter"``, ``"file"`` or ``"none"``.
        chunks: the body as the pieces an iterator yields (joined otherwise).
        large: the body is instead :data:`LARGE` (one piece).
        headers: the caller's headers, in order.
        header_form: ``"dict"``, ``"headerdict"`` or ``"bytes"``.
        framing: ``"auto"``, ``"cl-right"``, ``"cl-wrong"``, ``"te-chunked"``
            or ``"te-custom"`` (a caller's Content-Length / Transfer-Encoding).
        chunked: ``chunked=`` passed to urlopen.
        retries: ``None`` (default), ``False``, an int, or a RetrySpec.
        redirect: ``redirect=``.
    """

    via: str
    method: str
    path: str
    payload: str
    fields: tuple[tuple[str, Any], ...]
    encode_multipart: bool
    encoding_kwargs: bool
    json: Any
    body_kind: str
    chunks: tuple[bytes, ...]
    large: bool
    headers: tuple[tuple[str, str], ...]
    header_form: str
    framing: str
    chunked: bool
    retries: bool | int | RetrySpec | None
    redirect: bool

    @property
    def data(self) -> bytes:
        """The body's bytes."""
        return b"".join(self.pieces)

    @property
    def pieces(self) -> tuple[bytes, ...]:
        """The body as the pieces an iterator yields."""
        return (LARGE,) if self.large else self.chunks

    def header_names(self) -> set[str]:
        """The caller's header names, lower-cased."""
        return {name.lower() for name, _ in self.given_headers()}

    def given_headers(self) -> list[tuple[str, str]]:
        """The headers the caller's container really holds: a dict keeps the
        last of repeated (same-spelt) names."""
        pairs = self.all_headers()
        return pairs if self.header_form == "headerdict" else list(dict(pairs).items())

    def body_length(self) -> int:
        """How many bytes ``body=`` stands for (a str goes as UTF-8)."""
        if self.payload != "body" or self.body_kind == "none":
            return 0
        if self.body_kind == "str":
            return len(self.data.decode("latin-1").encode("utf-8"))
        return len(self.data)

    def all_headers(self) -> list[tuple[str, str]]:
        """The caller's headers with the framing header the case adds.

        A Content-Length framing only goes with a ``body=`` payload (the
        length of a ``fields``/``json`` encoding is the library's business).
        """
        size = self.body_length()
        content_length = self.payload == "body"
        extra = {
            "cl-right": [("Content-Length", str(size))] if content_length else [],
            "cl-wrong": [("Content-Length", str(size + 3))] if content_length else [],
            "te-chunked": [("Transfer-Encoding", "chunked")],
            "te-custom": [("Transfer-Encoding", "gzip")],
        }.get(self.framing, [])
        return [*self.headers, *extra]

    def make_headers(self, header_dict_class: Any) -> Any:
        """The headers argument in this case's form, or None."""
        pairs = self.all_headers()
        if not pairs:
            return None
        if self.header_form == "headerdict":
            headers = header_dict_class()
            for name, value in pairs:
                headers.add(name, value)
            return headers
        if self.header_form == "bytes":
            return {n.encode("latin-1"): v.encode("latin-1") for n, v in pairs}
        return dict(pairs)

    def make_body(self) -> Any:
        """A fresh body argument (iterators and files are used up)."""
        if self.payload != "body" or self.body_kind == "none":
            return None
        if self.body_kind == "str":
            return self.data.decode("latin-1")
        if self.body_kind == "iter":
            return _pieces(self.pieces)
        if self.body_kind == "file":
            return io.BytesIO(self.data)
        return self.data

    def request_kwargs(self, retry_class: Any, header_dict_class: Any) -> Any:
        """``request()``'s keyword arguments for one client."""
        kw: dict[str, Any] = {
            "headers": self.make_headers(header_dict_class),
            "body": self.make_body(),
            "redirect": self.redirect,
            "chunked": self.chunked,
        }
        if self.payload == "fields":
            kw["fields"] = list(self.fields)
            if self.encoding_kwargs:
                kw["encode_multipart"] = self.encode_multipart
                kw["multipart_boundary"] = BOUNDARY
        if self.payload == "json":
            kw["json"] = self.json
        if isinstance(self.retries, RetrySpec):
            kw["retries"] = self.retries.build(retry_class)
        elif self.retries is not None:
            kw["retries"] = self.retries
        return kw


def _pieces(chunks: tuple[bytes, ...]) -> Iterator[bytes]:
    yield from chunks


# -- strategies ---------------------------------------------------------------

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
ODD_METHODS = ["get", "PURGE", "M-SEARCH", "GE T", "GET\x00", "PO\tST"]
_SEGMENTS = ["a", "b", "..", ".", "", "%2e", "%2E%2E", "b c", "\u00e4", "%41"]
_SEGMENTS += ["x;y=1", "~u", "a%2Fb", "@", "!$&'()*+,"]
_QUERY_CHARS = "az=&?/%20+ #\u00e4:@;"


def _odd_path() -> st.SearchStrategy[str]:
    segments = st.lists(st.sampled_from(_SEGMENTS), min_size=0, max_size=4)
    query = st.one_of(st.just(""), st.text(_QUERY_CHARS, max_size=8).map("?".__add__))
    return st.builds(lambda s, q: "/echo/" + "/".join(s) + q, segments, query)


_LOCATIONS = ["/echo", "rel/target", "OTHER/landed", "/a/../b?q=1", "/redirect/302"]
_LOCATIONS += ["/redirect/301?to=/echo", "OTHER/redirect/307?to=/back"]


def _scripted_path() -> st.SearchStrategy[str]:
    redirect = st.builds(
        lambda code, to: f"/redirect/{code}?to={quote(to, safe='')}",
        st.sampled_from([301, 302, 303, 307, 308]),
        st.sampled_from(_LOCATIONS),
    )
    retry_after = st.sampled_from(
        ["", "0", "garbage", quote("Wed, 21 Oct 2015 07:28:00 GMT")]
    )
    status = st.builds(
        lambda code, ra: f"/status/{code}" + (f"?retry_after={ra}" if ra else ""),
        st.sampled_from([200, 201, 204, 304, 404, 413, 429, 500, 503]),
        retry_after,
    )
    flaky = st.builds(
        lambda n, code: f"/flaky/{n}?status={code}",
        st.integers(1, 3),
        st.sampled_from([503, 429, 500]),
    )
    encoded = st.builds(
        lambda c, bad: f"/encoded/{c}" + ("?bad=1" if bad else ""),
        st.sampled_from(["gzip", "deflate", "gzip,deflate", "x"]),
        st.booleans(),
    )
    headers = st.lists(
        st.tuples(st.sampled_from(["X-A", "x-a", "Set-Cookie", "X-B"]), _value()),
        max_size=3,
    ).map(lambda pairs: "/headers?" + "&".join(f"{n}={quote(v)}" for n, v in pairs))
    fixed = st.sampled_from(
        ["/chunked", "/close", "/short", "/malformed/nocolon"]
        + ["/malformed/spacename", "/malformed/fold"]
        + [f"/version/{v}" for v in ("1.0", "1.1", "1.2", "2.0", "0.9")]
    )
    return st.one_of(redirect, status, flaky, encoded, headers, fixed)


def _value() -> st.SearchStrategy[str]:
    return st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=8)


_HEADER_NAMES = ["X-Test", "x-test", "X-Other", "Accept", "Accept-Encoding"]
_HEADER_NAMES += ["Authorization", "Cookie", "Content-Type", "User-Agent", "Host"]
_HEADER_NAMES += ["Connection", "X Spaced"]


def _header() -> st.SearchStrategy[tuple[str, str]]:
    def value_for(name: str) -> st.SearchStrategy[str]:
        if name.lower() in ("accept-encoding", "host", "user-agent"):
            return st.one_of(_value(), st.just(SKIP_HEADER))
        if name == "Connection":
            return st.sampled_from(["close", "keep-alive"])
        return _value()

    return st.sampled_from(_HEADER_NAMES).flatmap(
        lambda n: value_for(n).map(lambda v: (n, v))
    )


def _retries() -> st.SearchStrategy[bool | int | RetrySpec | None]:
    spec = st.builds(
        RetrySpec,
        total=st.integers(0, 3),
        redirect=st.one_of(st.none(), st.integers(0, 2)),
        status_forcelist=st.sampled_from([None, (503,), (500, 503)]),
        raise_on_status=st.booleans(),
        raise_on_redirect=st.booleans(),
    )
    return st.one_of(st.none(), st.just(False), st.integers(0, 2), spec)


_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5)),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=5,
)
_FIELD_VALUE = st.one_of(
    st.text(max_size=6),
    st.tuples(st.sampled_from(["f.txt", "\u00e4.bin"]), st.binary(max_size=8)),
    st.tuples(st.just("t.txt"), st.binary(max_size=8), st.just("text/plain")),
)


def cases(via: str) -> st.SearchStrategy[Case]:
    """Cases sent through ``via`` (see :class:`Case`)."""
    return st.builds(
        Case,
        via=st.just(via),
        # Odd methods about one time in five.
        method=st.sampled_from(METHODS * 3 + ODD_METHODS),
        path=st.one_of(_odd_path(), _scripted_path()),
        payload=st.sampled_from(["none", "fields", "json", "body"]),
        fields=st.lists(st.tuples(st.text(max_size=4), _FIELD_VALUE), max_size=3).map(
            tuple
        ),
        encode_multipart=st.booleans(),
        encoding_kwargs=st.booleans(),
        json=_JSON,
        body_kind=st.sampled_from(["bytes", "str", "iter", "file", "none"]),
        chunks=st.lists(st.binary(max_size=12), max_size=4).map(tuple),
        large=st.integers(0, 9).map(lambda n: n == 9),
        headers=st.lists(_header(), max_size=4).map(tuple),
        header_form=st.sampled_from(["dict", "headerdict", "bytes"]),
        framing=st.sampled_from(["auto", "auto", "cl-right", "cl-wrong"])
        | st.sampled_from(["te-chunked", "te-custom"]),
        chunked=st.booleans(),
        retries=_retries(),
        redirect=st.booleans(),
    )


def example(**overrides: Any) -> Case:
    """A plain GET of ``/echo`` through a PoolManager, with ``overrides``."""
    fields: dict[str, Any] = {
        "via": "manager",
        "method": "GET",
        "path": "/echo",
        "payload": "none",
        "fields": (),
        "encode_multipart": True,
        "encoding_kwargs": True,
        "json": None,
        "body_kind": "none",
        "chunks": (),
        "large": False,
        "headers": (),
        "header_form": "dict",
        "framing": "auto",
        "chunked": False,
        "retries": None,
        "redirect": True,
    }
    fields.update(overrides)
    return Case(**fields)
