"""Tests for trio_pool._headers: HTTPHeaderDict and make_headers."""

from __future__ import annotations

import base64
import copy
import email.message
import pickle
import sys
import types
from collections.abc import Callable, Set
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_pool import _headers
from trio_pool._headers import HTTPHeaderDict, make_headers

# -- construction -------------------------------------------------------------


def test_empty() -> None:
    headers = HTTPHeaderDict()
    assert len(headers) == 0
    assert list(headers) == []
    assert headers == {}


def test_from_mapping_pairs_and_kwargs() -> None:
    headers = HTTPHeaderDict({"A": "1"}, b="2")
    assert list(headers.items()) == [("A", "1"), ("b", "2")]
    pairs = HTTPHeaderDict([("Set-Cookie", "x"), ("set-cookie", "y")])
    assert list(pairs.items()) == [("Set-Cookie", "x"), ("Set-Cookie", "y")]


def test_from_header_dict_copies_every_value() -> None:
    original = HTTPHeaderDict([("a", "1"), ("A", "2")])
    clone = HTTPHeaderDict(original)
    clone.add("a", "3")
    assert original.getlist("a") == ["1", "2"]
    assert clone.getlist("a") == ["1", "2", "3"]


def test_from_object_with_keys_and_getitem() -> None:
    # email.message.Message iterates over names, not pairs: keys() must win.
    message = email.message.Message()
    message["Content-Type"] = "text/plain"
    message["X-Two"] = "2"
    assert list(HTTPHeaderDict(message).items()) == [
        ("Content-Type", "text/plain"),
        ("X-Two", "2"),
    ]


_NOT_STR: Any = b"bytes"


@pytest.mark.parametrize(
    "build",
    [
        lambda: HTTPHeaderDict({_NOT_STR: "a"}),
        lambda: HTTPHeaderDict({"a": _NOT_STR}),
        lambda: HTTPHeaderDict([("a", _NOT_STR)]),
        lambda: HTTPHeaderDict(a=_NOT_STR),
        lambda: HTTPHeaderDict().add(_NOT_STR, "x"),
        lambda: HTTPHeaderDict().__setitem__("a", _NOT_STR),
    ],
)
def test_rejects_non_str_names_and_values(build: Callable[[], object]) -> None:
    with pytest.raises(
        TypeError, match=r"header (names|values) must be str, not bytes"
    ):
        build()


# -- lookups ------------------------------------------------------------------


def test_lookup_is_case_insensitive_and_joins_values() -> None:
    headers = HTTPHeaderDict()
    headers.add("Set-Cookie", "a=1")
    headers.add("set-cookie", "b=2")
    headers["Content-Length"] = "7"
    assert headers["SET-COOKIE"] == "a=1, b=2"
    assert headers["content-length"] == "7"
    assert headers.get("missing") is None
    with pytest.raises(KeyError):
        headers["missing"]


def test_contains() -> None:
    headers = HTTPHeaderDict(Host="h")
    assert "host" in headers
    assert "HOST" in headers
    assert "other" not in headers
    not_str: object = 1
    assert not_str not in headers


def test_iteration_keeps_first_spelling_and_insertion_order() -> None:
    headers = HTTPHeaderDict()
    headers.add("B", "1")
    headers.add("a", "2")
    headers.add("b", "3")
    assert list(headers) == ["B", "a"]
    assert list(headers.keys()) == ["B", "a"]
    assert list(headers.values()) == ["1, 3", "2"]


def test_setitem_replaces_all_values_in_place() -> None:
    headers = HTTPHeaderDict([("a", "1"), ("b", "2"), ("A", "3")])
    headers["A"] = "4"
    # The position is kept, the spelling is the new one.
    assert list(headers.items()) == [("A", "4"), ("b", "2")]


def test_delitem_pop_and_discard() -> None:
    headers = HTTPHeaderDict([("a", "1"), ("A", "2"), ("b", "3")])
    del headers["A"]
    assert "a" not in headers
    with pytest.raises(KeyError):
        del headers["a"]
    headers.discard("a")  # absent: no error
    headers.discard("B")
    assert len(headers) == 0
    headers.add("c", "1")
    headers.add("c", "2")
    assert headers.pop("C") == "1, 2"


def test_getlist() -> None:
    headers = HTTPHeaderDict([("a", "1"), ("A", "2")])
    values = headers.getlist("A")
    assert values == ["1", "2"]
    values.append("mutating the result")
    assert headers.getlist("a") == ["1", "2"]
    assert headers.getlist("missing") == []
    assert headers.getlist("missing", None) is None
    assert headers.getlist("a", None) == ["1", "2"]


@pytest.mark.parametrize(
    "alias", ["getheaders", "getallmatchingheaders", "iget", "get_all"]
)
def test_getlist_aliases(alias: str) -> None:
    headers = HTTPHeaderDict([("a", "1"), ("a", "2")])
    assert getattr(headers, alias)("A") == ["1", "2"]


def test_setdefault() -> None:
    headers = HTTPHeaderDict([("a", "1"), ("a", "2")])
    assert headers.setdefault("A", "x") == "1, 2"
    assert headers.getlist("a") == ["1", "2"]
    assert headers.setdefault("B", "y") == "y"
    assert headers.setdefault("c") == ""
    assert list(headers.items()) == [("a", "1"), ("a", "2"), ("B", "y"), ("c", "")]


# -- adding -------------------------------------------------------------------


def test_add_combine() -> None:
    headers = HTTPHeaderDict()
    headers.add("A", "1", combine=True)  # nothing to combine with yet
    headers.add("a", "2")
    headers.add("a", "3", combine=True)
    assert list(headers.items()) == [("A", "1"), ("A", "2, 3")]
    assert headers["a"] == "1, 2, 3"


def test_extend_every_source_kind() -> None:
    headers = HTTPHeaderDict(a="0")
    headers.extend(HTTPHeaderDict([("a", "1"), ("a", "2")]))
    headers.extend({"B": "3"})
    headers.extend([("b", "4")], c="5")
    headers.extend(d="6")
    headers.extend()
    assert list(headers.items()) == [
        ("a", "0"),
        ("a", "1"),
        ("a", "2"),
        ("B", "3"),
        ("B", "4"),
        ("c", "5"),
        ("d", "6"),
    ]


def test_extend_takes_one_positional_argument() -> None:
    with pytest.raises(TypeError, match="at most 1 positional argument, got 2"):
        HTTPHeaderDict().extend({}, {})


def test_update_overwrites_unlike_extend() -> None:
    headers = HTTPHeaderDict([("a", "1"), ("a", "2")])
    headers.update({"A": "3"})
    assert headers.getlist("a") == ["3"]


# -- views, copies, text ------------------------------------------------------


def test_iteritems_itermerged_and_items_view() -> None:
    headers = HTTPHeaderDict([("a", "1"), ("b", "2"), ("A", "3")])
    assert list(headers.iteritems()) == [("a", "1"), ("a", "3"), ("b", "2")]
    assert list(headers.itermerged()) == [("a", "1, 3"), ("b", "2")]
    items = headers.items()
    assert len(items) == 3
    assert ("A", "3") in items
    assert ("a", "1, 3") not in items
    assert ("c", "1") not in items
    for malformed in [("a", 1), ("a",), "a"]:
        probe: object = malformed
        assert probe not in items
    # The view is a Set, so it compares equal to a set of the same pairs.
    expected: Set[tuple[str, str]] = {("a", "1"), ("a", "3"), ("b", "2")}
    assert items == expected


def test_copy_is_independent() -> None:
    headers = HTTPHeaderDict(a="1")
    clone = headers.copy()
    clone.add("a", "2")
    clone["b"] = "3"
    assert headers == {"a": "1"}
    assert type(clone) is HTTPHeaderDict


def test_copy_module_and_pickle() -> None:
    headers = HTTPHeaderDict([("a", "1"), ("A", "2")])
    shallow = copy.copy(headers)
    shallow.add("a", "3")
    assert headers.getlist("a") == ["1", "2"]
    assert copy.deepcopy(headers) == headers
    restored = pickle.loads(pickle.dumps(headers))
    assert list(restored.items()) == list(headers.items())


def test_copy_keeps_subclass() -> None:
    class Custom(HTTPHeaderDict):
        pass

    assert type(Custom(a="1").copy()) is Custom


def test_repr_shows_merged_values() -> None:
    headers = HTTPHeaderDict([("A", "1"), ("a", "2"), ("b", "3")])
    assert repr(headers) == "HTTPHeaderDict({'A': '1, 2', 'b': '3'})"


# -- equality and operators ---------------------------------------------------


def test_equality() -> None:
    headers = HTTPHeaderDict([("A", "1"), ("a", "2")])
    assert headers == {"a": "1, 2"}
    assert {"a": "1, 2"} == headers  # noqa: SIM300 - the reflected __eq__
    assert headers == HTTPHeaderDict(A="1, 2")
    assert headers != {"a": "1"}
    assert headers != {"a": "1, 2", "b": "3"}
    assert headers != {"a": 1}
    assert headers != [("a", "1, 2")]
    assert headers != "a"
    assert headers.__eq__(["a"]) is NotImplemented


def test_or_operators_add_values() -> None:
    left = HTTPHeaderDict(a="1")
    merged = left | {"A": "2"}
    assert merged.getlist("a") == ["1", "2"]
    assert left.getlist("a") == ["1"]  # | makes a new dict
    right = {"b": "0"} | left
    assert isinstance(right, HTTPHeaderDict)
    assert list(right.items()) == [("b", "0"), ("a", "1")]
    assert list((left | [("c", "3")]).items()) == [("a", "1"), ("c", "3")]
    same = left
    left |= HTTPHeaderDict(a="3")
    assert left is same
    assert left.getlist("a") == ["1", "3"]


@pytest.mark.parametrize("other", [1, "a=b", b"a", None])
def test_or_operators_reject_non_header_sources(other: object) -> None:
    headers = HTTPHeaderDict()
    with pytest.raises(TypeError):
        headers | other
    with pytest.raises(TypeError):
        other | headers
    with pytest.raises(TypeError):
        headers |= other


def test_or_accepts_keys_and_getitem_objects() -> None:
    message = email.message.Message()
    message["X"] = "1"
    assert list((HTTPHeaderDict(x="0") | message).items()) == [("x", "0"), ("x", "1")]


# -- model-based property -----------------------------------------------------

_names = st.sampled_from(["a", "A", "b", "B", "Set-Cookie", "SET-COOKIE"])
_values = st.text(alphabet="xy ,", max_size=3)
_operations = st.lists(
    st.tuples(
        st.sampled_from(["add", "combine", "set", "discard", "setdefault"]),
        _names,
        _values,
    ),
    max_size=25,
)


class _PairListModel:
    """A deliberately naive reference: one list of (name, value) pairs."""

    def __init__(self) -> None:
        self.pairs: list[tuple[str, str]] = []

    def _indices(self, name: str) -> list[int]:
        return [
            i for i, (key, _) in enumerate(self.pairs) if key.lower() == name.lower()
        ]

    def apply(self, operation: str, name: str, value: str) -> None:
        found = self._indices(name)
        if operation == "add" or (operation == "combine" and not found):
            self.pairs.append((name, value))
        elif operation == "combine":
            key, old = self.pairs[found[-1]]
            self.pairs[found[-1]] = (key, f"{old}, {value}")
        elif operation == "set" and found:
            self.pairs[found[0]] = (name, value)
            for index in reversed(found[1:]):
                del self.pairs[index]
        elif operation in ("set", "setdefault") and not found:
            self.pairs.append((name, value))
        elif operation == "discard":
            self.pairs = [pair for i, pair in enumerate(self.pairs) if i not in found]

    def grouped(self) -> list[tuple[str, list[str]]]:
        """Names in first-seen order, each spelled as its first pair spells it."""
        groups: dict[str, tuple[str, list[str]]] = {}
        for key, value in self.pairs:
            groups.setdefault(key.lower(), (key, []))[1].append(value)
        return list(groups.values())


def _apply(headers: HTTPHeaderDict, operation: str, name: str, value: str) -> None:
    if operation == "add":
        headers.add(name, value)
    elif operation == "combine":
        headers.add(name, value, combine=True)
    elif operation == "set":
        headers[name] = value
    elif operation == "discard":
        headers.discard(name)
    else:
        headers.setdefault(name, value)


@given(_operations)
def test_behaves_like_a_list_of_pairs(operations: list[tuple[str, str, str]]) -> None:
    headers = HTTPHeaderDict()
    model = _PairListModel()
    for operation, name, value in operations:
        _apply(headers, operation, name, value)
        model.apply(operation, name, value)

    grouped = model.grouped()
    assert list(headers) == [name for name, _ in grouped]
    assert len(headers) == len(grouped)
    assert list(headers.items()) == [(n, v) for n, values in grouped for v in values]
    assert len(headers.items()) == sum(len(values) for _, values in grouped)
    assert list(headers.itermerged()) == [(n, ", ".join(vs)) for n, vs in grouped]
    for name, values in grouped:
        assert headers[name.swapcase()] == ", ".join(values)
        assert headers.getlist(name.upper()) == values
    assert HTTPHeaderDict(headers) == headers
    assert HTTPHeaderDict(list(headers.items())).getlist("a") == headers.getlist("a")


# -- make_headers -------------------------------------------------------------


def test_make_headers_nothing_requested() -> None:
    assert make_headers() == {}
    assert (
        make_headers(keep_alive=False, accept_encoding=False, disable_cache=False) == {}
    )
    assert make_headers(accept_encoding=[], user_agent="", basic_auth="") == {}


def test_make_headers_every_option() -> None:
    headers = make_headers(
        keep_alive=True,
        accept_encoding="gzip",
        user_agent="Batman/1.0",
        basic_auth="user:pass",
        proxy_basic_auth="proxy:secret",
        disable_cache=True,
    )
    assert headers == {
        "accept-encoding": "gzip",
        "user-agent": "Batman/1.0",
        "connection": "keep-alive",
        "authorization": "Basic dXNlcjpwYXNz",
        "proxy-authorization": "Basic cHJveHk6c2VjcmV0",
        "cache-control": "no-cache",
    }


def test_make_headers_accept_encoding_list() -> None:
    assert make_headers(accept_encoding=["br", "gzip"]) == {
        "accept-encoding": "br,gzip"
    }


@pytest.mark.parametrize(
    ("credentials", "raw"),
    [
        ("üser:pässword", "üser:pässword".encode("latin-1")),
        ("user:€", "user:€".encode()),  # not latin-1: UTF-8 instead
    ],
)
def test_make_headers_basic_auth_encoding(credentials: str, raw: bytes) -> None:
    value = make_headers(basic_auth=credentials)["authorization"]
    scheme, _, token = value.partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(token) == raw


def _set_modules(monkeypatch: pytest.MonkeyPatch, **present: bool) -> None:
    # A None entry in sys.modules makes the import raise ImportError.
    for key, is_present in present.items():
        name = key.replace("__", ".")
        module = types.ModuleType(name) if is_present else None
        monkeypatch.setitem(sys.modules, name, module)


@pytest.mark.parametrize(
    ("brotli", "stdlib_zstd", "backport", "zstandard", "expected"),
    [
        (False, False, False, False, "gzip,deflate"),
        (True, False, False, False, "gzip,deflate,br"),
        (False, True, False, False, "gzip,deflate,zstd"),
        (False, False, True, False, "gzip,deflate,zstd"),
        (False, False, False, True, "gzip,deflate,zstd"),
        (True, True, True, True, "gzip,deflate,br,zstd"),
    ],
)
def test_accept_encoding_follows_installed_decoders(
    monkeypatch: pytest.MonkeyPatch,
    brotli: bool,
    stdlib_zstd: bool,
    backport: bool,
    zstandard: bool,
    expected: str,
) -> None:
    _set_modules(
        monkeypatch,
        brotli=brotli,
        compression__zstd=stdlib_zstd,
        backports__zstd=backport,
        zstandard=zstandard,
    )
    assert _headers._detect_accept_encoding() == expected


def test_make_headers_accept_encoding_true_uses_detection() -> None:
    expected = _headers._detect_accept_encoding()
    assert make_headers(accept_encoding=True) == {"accept-encoding": expected}
    assert expected.startswith("gzip,deflate")
