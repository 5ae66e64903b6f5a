"""Redirect decisions, pure: where a redirect goes and what is resent there.

urllib3 2.x's rules: 301, 302, 303, 307 and 308 with a ``Location`` are
followed; only 303 turns the request into a GET (HEAD stays HEAD), dropping
the body and the headers that described it; the others resend the same
method and body (the loop rewinds it). When the scheme, host or port changes,
the headers named in ``Retry.remove_headers_on_redirect`` are dropped. The
``Location`` is joined onto the URL that was requested, as browsers do.
No I/O here; ``_send`` applies these decisions.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from ._exceptions import LocationParseError, LocationValueError
from ._headers import copy_request_headers
from ._origin import Origin
from ._url import parse_url

__all__ = ["BODY_HEADERS", "Redirect", "join_location", "redirect", "same_origin"]

#: Headers that describe a body; dropped when a 303 turns the request into GET.
BODY_HEADERS = frozenset(
    {
        "content-encoding",
        "content-language",
        "content-location",
        "content-type",
        "content-length",
        "transfer-encoding",
        "digest",
        "last-modified",
    }
)


@dataclass(frozen=True, slots=True)
class Redirect:
    """The request to send after a redirect.

    Attributes:
        url: the absolute URL to go to.
        method: the method to use there.
        drop_body: send no body (a 303).
        headers: the headers to send (None: the defaults, as before).
    """

    url: str
    method: str
    drop_body: bool
    headers: Any


def join_location(base: str, location: str) -> str:
    """The absolute URL a redirect's ``Location`` points at from ``base``.

    Raises:
        LocationParseError: the Location cannot be parsed.
    """
    try:
        joined = urljoin(base, location)
        parse_url(joined)
    except ValueError as exc:
        raise LocationParseError(location) from exc
    return joined


def same_origin(a: str, b: str) -> bool:
    """Whether two absolute URLs have the same scheme, host and port (hosts
    compared in normal form, default ports filled in)."""
    try:
        return Origin.of_url(a) == Origin.of_url(b)
    except (LocationParseError, LocationValueError, ValueError):
        return False


def redirect(
    status: int,
    method: str,
    headers: Any,
    old_url: str,
    location: str,
    remove_on_origin_change: Collection[str],
) -> Redirect:
    """Decide how to follow a redirect (urllib3 2.x rules).

    Args:
        status: the redirect's status code.
        method: the method of the request that was redirected.
        headers: its headers (None: the pool's or manager's defaults).
        old_url: its absolute URL.
        location: the ``Location`` header.
        remove_on_origin_change: header names (any case) to drop when the
            scheme, host or port changes.

    Raises:
        LocationParseError: the Location cannot be parsed.
    """
    new_url = join_location(old_url, location)
    drop_body = status == 303 and method != "HEAD"
    if drop_body:
        method = "GET"
        headers = _without(headers, BODY_HEADERS)
    if not same_origin(old_url, new_url):
        headers = _without(headers, {name.lower() for name in remove_on_origin_change})
    return Redirect(new_url, method, drop_body, headers)


def _without(headers: Any, names: frozenset[str] | set[str]) -> Any:
    """A copy of ``headers`` without ``names`` (lower-case); None stays None."""
    if headers is None:
        return None
    kept = copy_request_headers(headers)
    for name in list(kept):
        if name.lower() in names:
            del kept[name]
    return kept
