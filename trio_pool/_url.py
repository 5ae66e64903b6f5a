"""URL parsing: :func:`parse_url` and the :class:`Url` value it returns.

The parser follows urllib3 2.x, which follows RFC 3986 loosely, on purpose:
it accepts what people type (``example.com/path``, no scheme; spaces and
non-ASCII in paths) and turns it into something that can go on the wire,
rather than rejecting it. For ``http``, ``https`` and scheme-less URLs it

- lowercases the scheme and host, IDNA-encodes non-ASCII host labels and
  decodes the RFC 6874 ``%25`` before an IPv6 zone id;
- removes ``.`` and ``..`` path segments;
- percent-encodes characters not allowed in the userinfo, path, query and
  fragment, leaving a component's ``%XX`` escapes alone when every ``%`` in
  it starts one (a lone ``%`` means the component was never encoded, so each
  ``%`` is then a literal and is encoded too).

Other schemes only get their scheme lowercased. Any input that cannot be
split into valid parts raises :class:`LocationParseError`; no ``ValueError``
or ``UnicodeError`` from the helpers escapes.
"""

from __future__ import annotations

import ipaddress
import re
import string
from typing import NamedTuple

import idna

from ._exceptions import LocationParseError

__all__ = ["Url", "encode_target", "normalize_host", "parse_url"]

# Schemes whose URLs we normalize; None is included because a URL without a
# scheme is taken to be http.
_NORMALIZABLE_SCHEMES = frozenset({None, "http", "https"})

# Deliberately narrower than RFC 3986's scheme (no "."), so that "host.tld:80"
# reads as a host and port rather than as scheme "host.tld".
_SCHEME_RE = re.compile(r"[a-zA-Z][a-zA-Z0-9+-]*:")
# A backslash ends the authority just as "/" does, so we agree with browsers
# that the host of "http://evil.example\@good.example" is evil.example.
_AUTHORITY_END_RE = re.compile(r"[/\\]")
_PERCENT_RE = re.compile(r"%[0-9A-Fa-f]{2}")
# No controls or spaces: a CR/LF in a host must be refused, not trimmed away.
_REG_NAME_RE = re.compile(r"(?:[^\[\]%:/?#\x00-\x20\x7f]|%[0-9A-Fa-f]{2})*")
_ZONE_ID_RE = re.compile(r"(?:[A-Za-z0-9._~-]|%[0-9A-Fa-f]{2})+")

_UNRESERVED = string.ascii_letters + string.digits + "-._~"
_SUB_DELIMS = "!$&'()*+,;="
_USERINFO_SAFE = _UNRESERVED + _SUB_DELIMS + ":"
_PATH_SAFE = _USERINFO_SAFE + "@/"
_QUERY_SAFE = _PATH_SAFE + "?"  # the fragment allows the same set


class _Quoter:
    """Percent-encodes one URL component kind, via two byte lookup tables.

    The tables differ only in ``%``: one keeps it (the component is already
    encoded), the other encodes it as ``%25``.
    """

    __slots__ = ("_keep_percent", "_plain", "_quote_percent")

    def __init__(self, safe: str) -> None:
        table = [chr(b) if chr(b) in safe else f"%{b:02X}" for b in range(256)]
        self._quote_percent = tuple(table)
        table[ord("%")] = "%"
        self._keep_percent = tuple(table)
        # Text of safe characters only (the usual case) is its own encoding.
        self._plain = re.compile(f"[{re.escape(safe)}]*")

    def __call__(self, component: str) -> str:
        if self._plain.fullmatch(component):
            return component
        component, escapes = _PERCENT_RE.subn(_upper_escape, component)
        # surrogatepass: lone surrogates get encoded rather than raising.
        raw = component.encode("utf-8", "surrogatepass")
        if escapes == raw.count(b"%"):
            table = self._keep_percent
        else:
            table = self._quote_percent
        return "".join([table[b] for b in raw])


def _upper_escape(match: re.Match[str]) -> str:
    return match.group(0).upper()


_quote_userinfo = _Quoter(_USERINFO_SAFE)
_quote_path = _Quoter(_PATH_SAFE)
_quote_query = _Quoter(_QUERY_SAFE)


class _UrlFields(NamedTuple):
    scheme: str | None
    auth: str | None
    host: str | None
    port: int | None
    path: str | None
    query: str | None
    fragment: str | None


class Url(_UrlFields):
    """An immutable, parsed URL; every part is ``None`` when absent.

    Build one with :func:`parse_url`, or directly: the constructor only
    lowercases ``scheme`` and adds a leading ``/`` to a non-empty ``path``.
    ``str(url)`` rebuilds the URL, equivalent to (though not always spelled
    like) the text it was parsed from.
    """

    __slots__ = ()

    def __new__(
        cls,
        scheme: str | None = None,
        auth: str | None = None,
        host: str | None = None,
        port: int | None = None,
        path: str | None = None,
        query: str | None = None,
        fragment: str | None = None,
    ) -> Url:
        if path and not path.startswith("/"):
            path = "/" + path
        if scheme is not None:
            scheme = scheme.lower()
        return super().__new__(cls, scheme, auth, host, port, path, query, fragment)

    @property
    def hostname(self) -> str | None:
        """The host; named like :func:`urllib.parse.urlsplit`'s attribute."""
        return self.host

    @property
    def request_uri(self) -> str:
        """The request target: path (``/`` if empty) and query."""
        uri = self.path or "/"
        if self.query is not None:
            uri += "?" + self.query
        return uri

    @property
    def netloc(self) -> str | None:
        """``host:port``, or just the host when there is no (or a zero) port."""
        if self.host is None:
            return None
        if self.port:
            return f"{self.host}:{self.port}"
        return self.host

    @property
    def authority(self) -> str | None:
        """:attr:`netloc` preceded by ``auth@`` when there is userinfo."""
        netloc = self.netloc
        if netloc is None or self.auth is None:
            return netloc
        return f"{self.auth}@{netloc}"

    @property
    def url(self) -> str:
        """The URL as a string; parts that are ``None`` are left out.

        Empty strings and port 0 are kept, so ``http://host?`` survives a
        round trip.
        """
        scheme, auth, host, port, path, query, fragment = self
        parts = []
        if scheme is not None:
            parts.append(scheme + "://")
        if auth is not None:
            parts.append(auth + "@")
        if host is not None:
            parts.append(host)
        if port is not None:
            parts.append(f":{port}")
        if path is not None:
            parts.append(path)
        if query is not None:
            parts.append("?" + query)
        if fragment is not None:
            parts.append("#" + fragment)
        return "".join(parts)

    def __str__(self) -> str:
        return self.url


def parse_url(url: str) -> Url:
    """Split ``url`` into a :class:`Url`, normalizing http(s) URLs.

    Text without a scheme is read as starting with the host
    (``"example.com:8080/x"``), unless it starts with ``/`` (a bare path).
    When a query or fragment is present but the path is empty, ``path`` is
    ``""`` rather than ``None``.

    Args:
        url: The URL text. ``""`` gives a ``Url`` whose parts are all None.

    Returns:
        The parsed URL.

    Raises:
        LocationParseError: ``url`` has an invalid host, IPv6 literal or IDNA
            label, or a port that is not a number in 0..65535.
    """
    if not url:
        return Url()
    # A client asks for the same few URLs again and again; a Url is
    # immutable, so the answer for a text can be handed out again.
    known = _PARSED.get(url)
    if known is not None:
        return known
    try:
        parsed = _parse(url)
    except ValueError as exc:  # UnicodeError and ipaddress's errors included
        raise LocationParseError(url) from exc
    if len(_PARSED) >= _PARSED_MAX:
        _PARSED.clear()
    _PARSED[url] = parsed
    return parsed


#: URLs parsed lately (cleared when full: cheaper than keeping an LRU order).
_PARSED: dict[str, Url] = {}
_PARSED_MAX = 512


def _parse(url: str) -> Url:
    rest, hash_mark, fragment = url.partition("#")
    rest, question_mark, query = rest.partition("?")

    scheme = None
    match = _SCHEME_RE.match(rest)
    if match is not None:
        scheme = rest[: match.end() - 1].lower()
        rest = rest[match.end() :]
    elif not rest.startswith("/"):
        rest = "//" + rest

    authority = None
    path = rest
    if rest.startswith("//"):
        after = rest[2:]
        end = _AUTHORITY_END_RE.search(after)
        cut = len(after) if end is None else end.start()
        authority, path = after[:cut], after[cut:]

    normalize = scheme in _NORMALIZABLE_SCHEMES
    auth, host, port = _parse_authority(authority, normalize)
    if normalize:
        path = _quote_path(_remove_dot_segments(path)) if path else path
        query = _quote_query(query) if query else query
        fragment = _quote_query(fragment) if fragment else fragment

    query_or_none = query if question_mark else None
    fragment_or_none = fragment if hash_mark else None
    # urllib3 compatibility: "" (not None) marks an empty path before a
    # query or fragment.
    has_suffix = question_mark or hash_mark
    return Url(
        scheme=scheme,
        auth=auth,
        host=host,
        port=port,
        path=path or ("" if has_suffix else None),
        query=query_or_none,
        fragment=fragment_or_none,
    )


def _parse_authority(
    authority: str | None, normalize: bool
) -> tuple[str | None, str | None, int | None]:
    """Split ``[userinfo@]host[:port]``; an empty authority has no parts."""
    if not authority:
        return None, None, None
    # The host cannot contain "@", so the last one ends the userinfo.
    userinfo, _, host_port = authority.rpartition("@")
    auth = userinfo or None
    host, port = _split_host_port(host_port)
    if normalize:
        if auth:
            auth = _quote_userinfo(auth)
        host = _normalize_host(host)
    return auth, host, port


def _split_host_port(host_port: str) -> tuple[str, int | None]:
    if host_port.startswith("["):
        end = host_port.find("]")
        if end < 0:
            raise ValueError("unterminated IPv6 literal")
        host, after = host_port[: end + 1], host_port[end + 1 :]
        _check_ipv6_literal(host[1:-1])
        if after and not after.startswith(":"):
            raise ValueError("junk after IPv6 literal")
        return host, _parse_port(after[1:])
    host, _, port = host_port.partition(":")
    if not _REG_NAME_RE.fullmatch(host):
        raise ValueError(f"invalid host {host!r}")
    return host, _parse_port(port)


def _parse_port(text: str) -> int | None:
    if not text:  # "host:" is allowed and means no port
        return None
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"port {text!r} is not a number")
    # Leading zeros are allowed in any number; strip them before int() so a
    # very long run of them cannot hit int()'s digit limit.
    port = int(text.lstrip("0") or "0")
    if port > 65535:
        raise ValueError(f"port {port} is out of range")
    return port


def _zone_id(raw: str) -> str:
    """Return the zone id from the text after an IPv6 literal's ``%``.

    RFC 6874 writes the separator as ``%25``; a bare ``%`` is accepted too, as
    people type it. A zone of exactly ``25`` has no room for a ``%25`` prefix,
    so it is read as the zone id ``25``.
    """
    return raw[2:] if raw.startswith("25") and raw != "25" else raw


def _check_ipv6_literal(inner: str) -> None:
    address, percent, zone = inner.partition("%")
    ipaddress.IPv6Address(address)  # raises a ValueError if malformed
    if percent and not _ZONE_ID_RE.fullmatch(_zone_id(zone)):
        raise ValueError(f"invalid IPv6 zone id {zone!r}")


def _normalize_host(host: str) -> str:
    if host.startswith("["):
        address, percent, zone = host[1:-1].partition("%")
        if not percent:
            return host.lower()
        # The zone id is an interface name: its case is kept.
        zone = _PERCENT_RE.sub(_upper_escape, _zone_id(zone))
        return f"[{address.lower()}%{zone}]"
    return ".".join([_idna_label(label) for label in host.split(".")])


def _idna_label(label: str) -> str:
    """Lowercase an ASCII label; encode any other with IDNA 2008 (``idna``).

    The rules are urllib3's: ``idna.encode`` with ``strict`` and the STD3
    rules, after lowercasing. ``ß`` stays a distinct letter (``xn--strae-oqa``),
    where the stdlib's IDNA 2003 codec would turn it into ``ss``.
    """
    if label.isascii():
        return label.lower()
    try:
        return idna.encode(label.lower(), strict=True, std3_rules=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ValueError(f"{label!r} is not a valid IDNA label: {exc}") from exc


def normalize_host(host: str) -> str:
    """The one normal form of a host name, as pools, keys and headers use it.

    Lowercase, non-ASCII labels IDNA-encoded, IPv6 literals without their
    brackets. Every place that compares or sends a host goes through here.

    Raises:
        LocationParseError: an invalid host (a bad IDNA label, control
            characters, a malformed IPv6 literal, a label over 63 octets).
    """
    known = _NORMAL_HOSTS.get(host)
    if known is not None:
        return known
    normal = _normal_form(host)
    if len(_NORMAL_HOSTS) >= _PARSED_MAX:
        _NORMAL_HOSTS.clear()
    _NORMAL_HOSTS[host] = normal
    return normal


#: Hosts already normalised (a pure function, asked on every request).
_NORMAL_HOSTS: dict[str, str] = {}


def _normal_form(host: str) -> str:
    text = host.strip()
    bracketed = text if text.startswith("[") else f"[{text}]"
    try:
        if ":" in text:
            _check_ipv6_literal(bracketed[1:-1])
            return _normalize_host(bracketed)[1:-1]
        if not text or not _REG_NAME_RE.fullmatch(text):
            raise ValueError(f"invalid host {host!r}")
        normal = _normalize_host(text)
    except ValueError as exc:
        raise LocationParseError(host) from exc
    if any(len(label) > 63 for label in normal.split(".")):
        raise LocationParseError(f"{host!r}: a label is longer than 63 octets")
    return normal


def encode_target(target: str) -> str:
    """A request target as urllib3's pools send it: path and query with
    characters that may not go on the wire percent-encoded, the fragment
    dropped, and ``.``/``..`` segments kept as given."""
    rest = target.partition("#")[0]
    path, question_mark, query = rest.partition("?")
    encoded = _quote_path(path)
    if question_mark:
        encoded += "?" + _quote_query(query)
    return encoded


def _remove_dot_segments(path: str) -> str:
    """Resolve ``.`` and ``..`` segments (RFC 3986, section 5.2.4).

    ``..`` never climbs above the root: ``/../a`` is ``/a``.
    """
    absolute = path.startswith("/")
    segments = path.split("/")
    if absolute:
        # The empty string before the first "/" is the root, not a segment
        # that ".." could remove.
        del segments[0]
    kept: list[str] = []
    for segment in segments:
        if segment == "..":
            if kept:
                kept.pop()
        elif segment != ".":
            kept.append(segment)
    # A path ending in "." or ".." names a directory; keep its trailing "/".
    if segments[-1] in (".", ".."):
        kept.append("")
    resolved = "/".join(kept)
    return "/" + resolved if absolute else resolved
