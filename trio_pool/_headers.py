"""Header containers: :class:`HTTPHeaderDict` and :func:`make_headers`.

Every request builds at least one :class:`HTTPHeaderDict` and every response
fills one, so the class stays deliberately plain: one ``dict`` keyed by the
lowercased field name, whose value is a list holding the first spelling of
the name followed by each value in arrival order. Lookups cost one
``str.lower()`` and one dict access; nothing is parsed or validated beyond a
type check.
"""

from __future__ import annotations

import base64
import functools
import importlib
from collections.abc import ItemsView, Iterable, Iterator, Mapping, MutableMapping
from typing import Any, Protocol, TypeAlias, TypeGuard, TypeVar, cast, overload

__all__ = ["HTTPHeaderDict", "HTTPHeaderDictItemView", "make_headers"]

_T = TypeVar("_T")


class _KeysAndGetItem(Protocol):
    """Header-like objects that are not Mappings, e.g. ``email.message.Message``."""

    def keys(self) -> Iterable[str]: ...

    def __getitem__(self, key: str, /) -> str: ...


HeaderSource: TypeAlias = (
    "HTTPHeaderDict | Mapping[str, str] | Iterable[tuple[str, str]] | _KeysAndGetItem"
)

# Distinguishes "no default given" from an explicit ``default=None``.
_MISSING: object = object()


def _check_str(key: object, val: object) -> None:
    if not isinstance(key, str):
        raise TypeError(f"header names must be str, not {type(key).__name__}")
    if not isinstance(val, str):
        raise TypeError(
            f"header values must be str, not {type(val).__name__} (for {key!r})"
        )


class HTTPHeaderDictItemView(ItemsView[str, str]):
    """The ``items()`` of an :class:`HTTPHeaderDict`: one pair per value.

    A header sent twice (``Set-Cookie``) appears twice, so the view's length
    is the number of values, not the number of distinct names.
    """

    _mapping: HTTPHeaderDict

    def __init__(self, headers: HTTPHeaderDict) -> None:
        super().__init__(headers)

    def __len__(self) -> int:
        return sum(len(vals) - 1 for vals in self._mapping._container.values())

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return self._mapping.iteritems()

    def __contains__(self, item: object) -> bool:
        if isinstance(item, tuple) and len(item) == 2:
            key, val = item
            if isinstance(key, str) and isinstance(val, str):
                vals = self._mapping._container.get(key.lower())
                return vals is not None and val in vals[1:]
        return False


class HTTPHeaderDict(MutableMapping[str, str]):
    """A case-insensitive, multi-valued, insertion-ordered header mapping.

    ``hd[name]`` returns every value of ``name`` joined with ``", "``;
    ``hd[name] = value`` replaces them all; :meth:`add` appends one more.
    Iteration yields each distinct name once, spelled as it was first given.
    :meth:`items` and :meth:`iteritems` yield one pair per value, and
    :meth:`itermerged` one pair per name.

    Args:
        headers: Initial fields: another ``HTTPHeaderDict``, a mapping, an
            iterable of ``(name, value)`` pairs, or any object with ``keys()``
            and ``__getitem__``. Repeated names are kept as separate values.
        **kwargs: More fields, added after ``headers``.

    Raises:
        TypeError: A name or value is not a ``str``.
    """

    __slots__ = ("_container",)

    _container: dict[str, list[str]]

    def __init__(self, headers: HeaderSource | None = None, **kwargs: str) -> None:
        self._container = {}
        if isinstance(headers, HTTPHeaderDict):
            self._copy_from(headers)
        elif headers is not None:
            self.extend(headers)
        if kwargs:
            self.extend(kwargs)

    @classmethod
    def _from_wire(cls, raw: Iterable[tuple[bytes, bytes]]) -> HTTPHeaderDict:
        """From a response's raw header lines (already validated by h11).

        The response hot path: one dict operation per line, no type checks.
        """
        headers = cls.__new__(cls)
        container: dict[str, list[str]] = {}
        for raw_key, raw_val in raw:
            key = raw_key.decode("latin-1")
            container.setdefault(key.lower(), [key]).append(raw_val.decode("latin-1"))
        headers._container = container
        return headers

    # -- the MutableMapping core ---------------------------------------------

    def __setitem__(self, key: str, val: str) -> None:
        _check_str(key, val)
        self._container[key.lower()] = [key, val]

    def __getitem__(self, key: str) -> str:
        vals = self._container[key.lower()]
        # Most headers have a single value; skip the join for them.
        return vals[1] if len(vals) == 2 else ", ".join(vals[1:])

    @overload
    def get(self, key: str) -> str | None: ...

    @overload
    def get(self, key: str, default: str | _T) -> str | _T: ...

    def get(self, key: str, default: object = None) -> object:
        """``self[key]``, or ``default`` when absent (without the KeyError
        that ``Mapping.get`` would raise and catch: the response path
        asks for absent headers on every request)."""
        vals = self._container.get(key.lower()) if isinstance(key, str) else None
        if vals is None:
            return default
        return vals[1] if len(vals) == 2 else ", ".join(vals[1:])

    def __delitem__(self, key: str) -> None:
        del self._container[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._container

    def __len__(self) -> int:
        return len(self._container)

    def __iter__(self) -> Iterator[str]:
        for vals in self._container.values():
            yield vals[0]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        if not isinstance(other, HTTPHeaderDict):
            try:
                other = HTTPHeaderDict(other)
            except TypeError:
                return False
        return self._merged_lower() == other._merged_lower()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(self.itermerged())})"

    def setdefault(self, key: str, default: str = "") -> str:
        """Return ``self[key]``, first setting it to ``default`` if absent."""
        vals = self._container.get(key.lower())
        if vals is not None:
            return ", ".join(vals[1:])
        self[key] = default
        return default

    # -- multi-value API -----------------------------------------------------

    def add(self, key: str, val: str, *, combine: bool = False) -> None:
        """Add a value for ``key`` without dropping the ones already there.

        Args:
            key: Field name, matched case-insensitively.
            val: The value to add.
            combine: Append ``val`` to the last existing value with ``", "``
                instead of storing it as a separate value (so ``items()``
                yields one pair). Ignored when ``key`` is new.

        Raises:
            TypeError: ``key`` or ``val`` is not a ``str``.
        """
        _check_str(key, val)
        new = [key, val]
        # setdefault keeps the common case (a new name) to one dict operation.
        vals = self._container.setdefault(key.lower(), new)
        if vals is new:
            return
        if combine:
            vals[-1] = f"{vals[-1]}, {val}"
        else:
            vals.append(val)

    def extend(self, *args: HeaderSource, **kwargs: str) -> None:
        """Add every field of one header source, then of ``kwargs``.

        Unlike :meth:`update`, which overwrites, every value is kept: this is
        :meth:`add` in a loop.

        Args:
            *args: At most one header source (see the class docstring).
            **kwargs: More fields.

        Raises:
            TypeError: More than one positional argument, or a name or value
                that is not a ``str``.
        """
        if len(args) > 1:
            raise TypeError(
                f"extend() takes at most 1 positional argument, got {len(args)}"
            )
        for key, val in self._pairs(args[0] if args else ()):
            self.add(key, val)
        for key, val in kwargs.items():
            self.add(key, val)

    @overload
    def getlist(self, key: str) -> list[str]: ...

    @overload
    def getlist(self, key: str, default: _T) -> list[str] | _T: ...

    def getlist(self, key: str, default: object = _MISSING) -> object:
        """Return a new list of every value of ``key``.

        Args:
            key: Field name, matched case-insensitively.
            default: Returned when ``key`` is absent; without it, ``[]``.
        """
        vals = self._container.get(key.lower())
        if vals is not None:
            return vals[1:]
        return [] if default is _MISSING else default

    # Spellings that http.client / http.cookiejar callers expect.
    getheaders = getlist
    getallmatchingheaders = getlist
    iget = getlist
    get_all = getlist

    def discard(self, key: str) -> None:
        """Remove ``key`` if present; do nothing otherwise."""
        self._container.pop(key.lower(), None)

    def copy(self) -> HTTPHeaderDict:
        """Return an independent copy (mutating it leaves ``self`` alone)."""
        clone = type(self)()
        clone._copy_from(self)
        return clone

    # copy.copy() would otherwise share the value lists with the original.
    __copy__ = copy

    def iteritems(self) -> Iterator[tuple[str, str]]:
        """Yield ``(name, value)`` once per value, repeated names included."""
        for vals in self._container.values():
            name = vals[0]
            for val in vals[1:]:
                yield name, val

    def itermerged(self) -> Iterator[tuple[str, str]]:
        """Yield ``(name, values joined by ", ")`` once per distinct name."""
        for vals in self._container.values():
            yield vals[0], ", ".join(vals[1:])

    def items(self) -> HTTPHeaderDictItemView:
        """Return a view with one ``(name, value)`` pair per value."""
        return HTTPHeaderDictItemView(self)

    # -- merging operators (values are added, never overwritten) ------------

    def __ior__(self, other: object) -> HTTPHeaderDict:
        if not _is_header_source(other):
            return NotImplemented
        self.extend(other)
        return self

    def __or__(self, other: object) -> HTTPHeaderDict:
        if not _is_header_source(other):
            return NotImplemented
        result = self.copy()
        result.extend(other)
        return result

    def __ror__(self, other: object) -> HTTPHeaderDict:
        if not _is_header_source(other):
            return NotImplemented
        result = type(self)(other)
        result.extend(self)
        return result

    # -- helpers ---------------------------------------------------------------

    def _copy_from(self, other: HTTPHeaderDict) -> None:
        # Copying the lists directly skips re-validating values already checked.
        for lower, vals in other._container.items():
            self._container[lower] = vals.copy()

    def _merged_lower(self) -> dict[str, str]:
        return {lower: ", ".join(vals[1:]) for lower, vals in self._container.items()}

    @staticmethod
    def _pairs(source: HeaderSource) -> Iterable[tuple[str, str]]:
        if isinstance(source, HTTPHeaderDict):
            return source.iteritems()
        if isinstance(source, Mapping):
            return source.items()
        # Checked before Iterable: objects like email.message.Message iterate
        # over their names, not over pairs.
        if hasattr(source, "keys") and hasattr(source, "__getitem__"):
            keyed = cast(_KeysAndGetItem, source)
            names = keyed.keys()  # not iter(): it may yield something else
            return [(key, keyed[key]) for key in names]
        return source


def _text(value: object) -> str:
    """A header name or value given as bytes (urllib3 accepts them), as str."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value  # type: ignore[return-value]


def copy_request_headers(source: Any) -> HTTPHeaderDict:
    """A copy of a caller's request headers, which (as in urllib3) may have
    ``bytes`` names and values: those are decoded as Latin-1, so that they
    go on the wire unchanged. ``HTTPHeaderDict`` itself takes ``str`` only."""
    if isinstance(source, HTTPHeaderDict):
        return HTTPHeaderDict(source)
    items = source.items() if isinstance(source, Mapping) else source
    return HTTPHeaderDict([(_text(k), _text(v)) for k, v in items])


def _is_header_source(other: object) -> TypeGuard[HeaderSource]:
    """Say whether ``other`` can be merged into a header dict with ``|``."""
    if isinstance(other, (str, bytes)):
        # Iterable, but of characters; merging one is always a mistake.
        return False
    return isinstance(other, Iterable) or (
        hasattr(other, "keys") and hasattr(other, "__getitem__")
    )


@functools.cache
def _default_accept_encoding() -> str:
    return _detect_accept_encoding()


def _detect_accept_encoding() -> str:
    """Build ``Accept-Encoding`` from the decoders importable right now.

    Probed on first use rather than at import so that importing trio_pool
    does not pay for loading compression libraries nobody asked for.
    """
    encodings = ["gzip", "deflate"]
    if _importable("brotli"):
        encodings.append("br")
    # Python 3.14 ships zstd in the stdlib; before that, its backport (the
    # zstd extra) or the zstandard package.
    if any(map(_importable, ("compression.zstd", "backports.zstd", "zstandard"))):
        encodings.append("zstd")
    return ",".join(encodings)


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def _basic_credentials(userpass: str) -> str:
    # latin-1 is what urllib3 sends; credentials outside it are sent as UTF-8
    # (RFC 7617's only other charset) instead of failing to encode.
    try:
        raw = userpass.encode("latin-1")
    except UnicodeEncodeError:
        raw = userpass.encode("utf-8")
    return "Basic " + base64.b64encode(raw).decode("ascii")


def make_headers(
    keep_alive: bool | None = None,
    accept_encoding: bool | list[str] | str | None = None,
    user_agent: str | None = None,
    basic_auth: str | None = None,
    proxy_basic_auth: str | None = None,
    disable_cache: bool | None = None,
) -> dict[str, str]:
    """Build common request headers from keyword shortcuts.

    Args:
        keep_alive: If true, ``connection: keep-alive``.
        accept_encoding: ``True`` for every encoding trio_pool can decode
            (``gzip,deflate``, plus ``br`` and ``zstd`` when their libraries
            are installed); a list to join with ``","``; a string as is.
        user_agent: The ``user-agent`` value.
        basic_auth: ``"user:password"`` for ``authorization: Basic ...``.
        proxy_basic_auth: ``"user:password"`` for
            ``proxy-authorization: Basic ...``.
        disable_cache: If true, ``cache-control: no-cache``.

    Returns:
        A new dict with lowercase names, holding only the requested headers.
    """
    headers: dict[str, str] = {}
    if accept_encoding:
        if isinstance(accept_encoding, str):
            headers["accept-encoding"] = accept_encoding
        elif isinstance(accept_encoding, list):
            headers["accept-encoding"] = ",".join(accept_encoding)
        else:
            headers["accept-encoding"] = _default_accept_encoding()
    if user_agent:
        headers["user-agent"] = user_agent
    if keep_alive:
        headers["connection"] = "keep-alive"
    if basic_auth:
        headers["authorization"] = _basic_credentials(basic_auth)
    if proxy_basic_auth:
        headers["proxy-authorization"] = _basic_credentials(proxy_basic_auth)
    if disable_cache:
        headers["cache-control"] = "no-cache"
    return headers
