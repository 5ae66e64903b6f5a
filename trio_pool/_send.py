"""The one retry/redirect loop, shared by pools and managers.

Each turn of the loop is: checkout -> exchange -> decide (return, retry,
redirect) -> give the connection back -> back off -> again. It is a loop, not
recursion, so its whole state is the handful of locals below. While it backs
off it holds no connection and no limiter token, and it never starts a sleep
that the caller's deadline (``trio.current_effective_deadline()``) cannot
outlast: it gives up at once with the last error instead.
"""

from __future__ import annotations

import json as _json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlencode, urljoin

import trio

from ._body import RequestBody
from ._exceptions import (
    HostChangedError,
    LocationParseError,
    MaxRetryError,
    ProtocolError,
    ProxyError,
    ResponseError,
    SSLError,
    TimeoutError,
)
from ._fields import encode_multipart_formdata
from ._headers import HTTPHeaderDict
from ._retry import Retry
from ._timeout import Timeout, TimeoutLike
from ._url import parse_url

if TYPE_CHECKING:
    from ._pool import HTTPConnectionPool
    from ._response import HTTPResponse

__all__ = ["Options", "encode_request", "urlopen"]

#: Errors after which a request may be retried (if Retry allows it).
RETRYABLE_ERRORS = (TimeoutError, ProtocolError, SSLError, ProxyError)
_FIELDS_IN_QUERY = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})
#: Headers that describe a body; dropped when a 303 turns the request into GET.
_BODY_HEADERS = frozenset(
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

#: Given an absolute URL, the pool that should carry it.
Router = Callable[[str], "HTTPConnectionPool"]


class Options(NamedTuple):
    """Everything ``urlopen`` was asked besides method and URL (immutable)."""

    body: Any = None
    headers: Any = None
    retries: Retry | int | bool | None = None
    redirect: bool = True
    assert_same_host: bool = True
    timeout: TimeoutLike = Timeout.DEFAULT_TIMEOUT
    pool_timeout: float | None = None
    chunked: bool = False
    body_pos: int | None = None
    preload_content: bool = True
    decode_content: bool = True


async def urlopen(
    pool: HTTPConnectionPool,
    method: str,
    url: str,
    opts: Options,
    route: Router | None = None,
) -> HTTPResponse:
    """Send a request through ``pool``, retrying and redirecting per policy.

    Args:
        pool: the pool for the first attempt.
        method: the HTTP method.
        url: a path on ``pool`` or an absolute URL.
        opts: the rest of ``urlopen``'s arguments.
        route: for managers: picks the pool for each (absolute) redirect
            target. Without it, redirects stay in ``pool`` and another host
            is a ``HostChangedError`` (unless ``assert_same_host`` is False).
    """
    retries = Retry.from_int(opts.retries, redirect=opts.redirect, default=pool.retries)
    body = RequestBody(opts.body, opts.body_pos)
    headers = opts.headers
    follow = (
        opts.redirect and retries.redirect is not False and retries.total is not False
    )
    while True:
        if route is None and opts.assert_same_host and not pool.is_same_host(url):
            raise HostChangedError(pool, url, retries)
        await body.rewind()
        limits = Timeout.resolve(opts.timeout, pool.timeout)
        try:
            response = await pool._attempt(method, url, body, headers, limits, opts)
        except RETRYABLE_ERRORS as exc:
            retries = retries.increment(method, url, error=exc, _pool=pool)
            await body.rewind()  # an unrewindable body fails before the sleep
            if not await _backoff(retries.sleep_time()):
                raise
            continue

        location = response.get_redirect_location() if follow else None
        if location:
            try:
                retries = retries.increment(method, url, response=response, _pool=pool)
            except MaxRetryError:
                if retries.raise_on_redirect:
                    await response.drain_conn()
                    raise
                response.retries = retries
                return response
            await response.drain_conn()
            old_url = pool._absolute(url)
            new_url = _join(old_url, str(location))
            method, body, headers = _redirected_request(
                response.status, method, body, headers, old_url, new_url, retries
            )
            if route is not None:
                pool = route(new_url)
            elif pool.is_same_host(new_url):
                new_url = parse_url(new_url).request_uri
            url = new_url
            await _backoff(_retry_after(retries, response))
            continue

        has_retry_after = "Retry-After" in response.headers
        if retries.is_retry(method, response.status, has_retry_after):
            try:
                retries = retries.increment(method, url, response=response, _pool=pool)
            except MaxRetryError:
                if retries.raise_on_status:
                    await response.drain_conn()
                    raise
                response.retries = retries
                return response
            await response.drain_conn()
            if not await _backoff(retries.sleep_time(response)):
                if retries.raise_on_status:
                    reason = ResponseError(
                        ResponseError.SPECIFIC_ERROR.format(status_code=response.status)
                    )
                    raise MaxRetryError(pool, url, reason)
                response.retries = retries
                return response
            continue

        response.retries = retries
        return response


def _redirected_request(
    status: int,
    method: str,
    body: RequestBody,
    headers: Any,
    old_url: str,
    new_url: str,
    retries: Retry,
) -> tuple[str, RequestBody, Any]:
    """Method, body and headers for following a redirect (urllib3 2.x rules).

    Only 303 turns the request into a GET (HEAD stays HEAD) and drops the
    body with the headers that described it; 301, 302, 307 and 308 resend the
    same method and body, rewound. Headers in
    ``retries.remove_headers_on_redirect`` are dropped when the scheme, host or
    port changes.
    """
    if status == 303 and method != "HEAD":
        method = "GET"
        body = RequestBody(None)
        if headers is not None:
            headers = HTTPHeaderDict(headers)
            for name in list(headers):
                if name.lower() in _BODY_HEADERS:
                    del headers[name]
    if headers is not None and _origin(old_url) != _origin(new_url):
        strip = {name.lower() for name in retries.remove_headers_on_redirect}
        headers = HTTPHeaderDict(headers)
        for name in list(headers):
            if name.lower() in strip:
                del headers[name]
    return method, body, headers


def _join(base: str, location: str) -> str:
    """The absolute URL a redirect points at.

    Raises:
        LocationParseError: the Location header cannot be parsed.
    """
    try:
        joined = urljoin(base, location)
        parse_url(joined)
    except ValueError as exc:
        raise LocationParseError(location) from exc
    return joined


def _origin(url: str) -> tuple[str | None, str | None, int | None]:
    if url.startswith("/"):
        return (None, None, None)
    parsed = parse_url(url)
    port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme or "")
    return (parsed.scheme, parsed.host, port)


def _retry_after(retries: Retry, response: HTTPResponse) -> float:
    if not retries.respect_retry_after_header:
        return 0.0
    return retries.get_retry_after(response) or 0.0


async def _backoff(seconds: float) -> bool:
    """Sleep before the next attempt, unless the caller's deadline is nearer.

    Returns False (without sleeping) if the sleep could not finish before
    ``trio.current_effective_deadline()``. A cancellable ``trio.sleep``.
    """
    if seconds <= 0:
        await trio.lowlevel.checkpoint()
        return True
    if trio.current_time() + seconds > trio.current_effective_deadline():
        await trio.lowlevel.checkpoint()
        return False
    await trio.sleep(seconds)
    return True


def encode_request(
    method: str,
    url: str,
    fields: Any,
    headers: Any,
    json: Any,
    body: Any,
    urlopen_kw: dict[str, Any],
    default_headers: Mapping[str, str],
) -> tuple[str, Any, Any]:
    """``request()``'s encoding of ``fields`` and ``json``: (url, body, headers).

    Raises:
        TypeError: when more than one of ``body``, ``fields`` and ``json``
            is given.
    """
    encode_multipart = urlopen_kw.pop("encode_multipart", True)
    boundary = urlopen_kw.pop("multipart_boundary", None)
    given = [
        name
        for name, v in (("body", body), ("fields", fields), ("json", json))
        if v is not None
    ]
    if len(given) > 1:
        raise TypeError(
            f"request() takes only one of body, fields and json; got {given}"
        )
    if json is None and fields is None:
        return url, body, headers
    headers = HTTPHeaderDict(headers if headers is not None else default_headers)
    if json is not None:
        headers.setdefault("Content-Type", "application/json")
        body = _json.dumps(json, separators=(",", ":"), ensure_ascii=False).encode(
            "utf-8"
        )
        return url, body, headers
    if method.upper() in _FIELDS_IN_QUERY:
        query = urlencode(
            list(fields.items()) if isinstance(fields, Mapping) else fields
        )
        return url + ("&" if "?" in url else "?") + query, None, headers
    if encode_multipart:
        body, content_type = encode_multipart_formdata(fields, boundary=boundary)
    else:
        pairs = list(fields.items()) if isinstance(fields, Mapping) else fields
        body, content_type = (
            urlencode(pairs).encode("ascii"),
            "application/x-www-form-urlencoded",
        )
    headers["Content-Type"] = content_type
    return url, body, headers
