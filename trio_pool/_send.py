"""The one retry/redirect loop, shared by pools and managers.

Each turn of the loop is: checkout -> exchange -> decide (return, retry,
redirect) -> give the connection back -> back off -> again. It is a loop, not
recursion, so its whole state is the handful of locals below. While it backs
off it holds no connection and no limiter token, and it never starts a sleep
that the caller's deadline (``trio.current_effective_deadline()``) cannot
outlast: it gives up at once with the last error instead.

The loop talks to pools through :class:`Sender` alone; managers add a
:data:`Router` that picks the pool for each URL a redirect leads to. The
decisions themselves are pure: ``_retry`` (how many more, how long to wait)
and ``_redirect`` (where to, with what).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import trio

from ._body import RequestBody
from ._exceptions import (
    HostChangedError,
    MaxRetryError,
    ProtocolError,
    ProxyError,
    ResponseError,
    SSLError,
    TimeoutError,
)
from ._redirect import redirect
from ._retry import Retry
from ._timeout import Timeout, TimeoutLike
from ._url import parse_url

if TYPE_CHECKING:
    from ._response import HTTPResponse

__all__ = ["Attempt", "RequestOptions", "Router", "Sender", "urlopen"]

log = logging.getLogger("trio_pool.retry")
#: Errors after which a request may be retried (if Retry allows it).
RETRYABLE_ERRORS = (TimeoutError, ProtocolError, SSLError, ProxyError)


class RequestOptions(NamedTuple):
    """Everything ``urlopen`` was asked besides method and URL (a named
    tuple, like :class:`Attempt`: one is made per request)."""

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


class Attempt(NamedTuple):
    """One try of a request, as the loop hands it to a :class:`Sender`.

    (A named tuple rather than a frozen dataclass: one is made per attempt,
    and a frozen dataclass pays a call per field to be made.)

    Attributes:
        method: the method.
        url: a path on the sender's origin, or an absolute URL.
        body: the body, rewound for this attempt.
        headers: the request's headers (None: the sender's defaults).
        timeout: the resolved limits.
        pool_timeout: how long to wait for a token (``block=True``).
        chunked: frame the body with chunked transfer-encoding.
        preload_content: read the body before returning.
        decode_content: decode the body's content-coding.
    """

    method: str
    url: str
    body: RequestBody
    headers: Any
    timeout: Timeout
    pool_timeout: float | None
    chunked: bool
    preload_content: bool
    decode_content: bool


class Sender(Protocol):
    """What the loop needs of a pool: its defaults, its origin, one attempt."""

    @property
    def retries(self) -> Retry: ...

    @property
    def timeout(self) -> Timeout: ...

    def is_same_host(self, url: str) -> bool: ...

    def absolute_url(self, url: str) -> str: ...

    async def send_once(self, attempt: Attempt) -> HTTPResponse: ...


#: Given an absolute URL: the sender that should carry it, and the URL to
#: hand that sender (a path, or the absolute URL for a forwarding proxy).
Router = Callable[[str], "tuple[Sender, str]"]


async def urlopen(
    sender: Sender,
    method: str,
    url: str,
    options: RequestOptions,
    route: Router | None = None,
) -> HTTPResponse:
    """Send a request through ``sender``, retrying and redirecting per policy.

    Args:
        sender: the pool for the first attempt.
        method: the HTTP method.
        url: a path on ``sender`` or an absolute URL.
        options: the rest of ``urlopen``'s arguments.
        route: for managers: picks the pool for each (absolute) redirect
            target. Without it, redirects stay in ``sender`` and another host
            is a ``HostChangedError`` (unless ``assert_same_host`` is False).
    """
    retries = Retry.from_int(
        options.retries, redirect=options.redirect, default=sender.retries
    )
    body = RequestBody(options.body, options.body_pos)
    headers = options.headers
    follow = (
        options.redirect
        and retries.redirect is not False
        and retries.total is not False
    )
    while True:
        if route is None and options.assert_same_host and not sender.is_same_host(url):
            raise HostChangedError(sender, url, retries)
        if body.started:
            await body.rewind()
        attempt = _attempt(sender, method, url, body, headers, options)
        try:
            response = await sender.send_once(attempt)
        except RETRYABLE_ERRORS as exc:
            retries = retries.increment(method, url, error=exc, _pool=sender)
            log.warning(
                "Retrying (%r) after connection broken by '%r': %s", retries, exc, url
            )
            await body.rewind()  # an unrewindable body fails before the sleep
            if not await _backoff(retries.sleep_time()):
                raise
            continue

        location = response.get_redirect_location() if follow else None
        if location:
            hop = await _redirect_hop(
                retries, sender, attempt, response, str(location), route
            )
            if hop is None:
                return response
            retries, sender, url = hop.retries, hop.sender, hop.url
            method, headers = hop.method, hop.headers
            if hop.drop_body:
                body = RequestBody(None)
                options = options._replace(chunked=False)
            continue

        again = await _status_retry(retries, attempt, response, sender)
        if again is None:
            return response
        retries = again


async def _status_retry(
    retries: Retry, attempt: Attempt, response: HTTPResponse, sender: Sender
) -> Retry | None:
    """The policy to try again with after this response's status; None when
    the response is to be returned (not a retry status, retries used up with
    ``raise_on_status`` off, or no time left before the caller's deadline).

    Raises:
        MaxRetryError: retries used up, and the policy says to raise.
    """
    # Only these statuses look at Retry-After (Retry.is_retry).
    has_retry_after = (
        response.status in Retry.RETRY_AFTER_STATUS_CODES
        and "Retry-After" in response.headers
    )
    if not retries.is_retry(attempt.method, response.status, has_retry_after):
        response.retries = retries
        return None
    counted = await _count(retries, attempt, response, sender, redirect=False)
    if counted is None:
        return None
    await response.drain_conn()
    log.warning("Retry (%r) after status %s: %s", counted, response.status, attempt.url)
    if not await _backoff(counted.sleep_time(response)):
        _out_of_time(counted, response, sender, attempt.url)
        return None
    return counted


class _Hop(NamedTuple):
    """Where a followed redirect leads, and what the loop sends there."""

    retries: Retry
    sender: Sender
    url: str
    method: str
    headers: Any
    drop_body: bool = False


async def _redirect_hop(
    retries: Retry,
    sender: Sender,
    attempt: Attempt,
    response: HTTPResponse,
    location: str,
    route: Router | None,
) -> _Hop | None:
    """Count a redirect and decide the next hop; None when the redirect is
    to be returned as it is (redirects used up, ``raise_on_redirect`` off).

    Raises:
        MaxRetryError: redirects used up, and the policy says to raise.
    """
    counted = await _count(retries, attempt, response, sender, redirect=True)
    if counted is None:
        return None
    await response.drain_conn()
    step = redirect(
        response.status,
        attempt.method,
        attempt.headers,
        sender.absolute_url(attempt.url),
        location,
        counted.remove_headers_on_redirect,
    )
    log.debug("Redirecting %s -> %s", attempt.url, step.url)
    next_sender, url = _next_hop(sender, step.url, location, route)
    # A redirect is followed even when its Retry-After would outlast the
    # caller's deadline: the next attempt then fails on its own.
    await _backoff(_retry_after(counted, response))
    return _Hop(counted, next_sender, url, step.method, step.headers, step.drop_body)


def _attempt(
    sender: Sender,
    method: str,
    url: str,
    body: RequestBody,
    headers: Any,
    options: RequestOptions,
) -> Attempt:
    return Attempt(
        method=method,
        url=url,
        body=body,
        headers=headers,
        timeout=Timeout.resolve(options.timeout, sender.timeout),
        pool_timeout=options.pool_timeout,
        chunked=options.chunked,
        preload_content=options.preload_content,
        decode_content=options.decode_content,
    )


async def _count(
    retries: Retry,
    attempt: Attempt,
    response: HTTPResponse,
    sender: Sender,
    *,
    redirect: bool,
) -> Retry | None:
    """``retries`` counting this response; None when they are used up and the
    response is to be returned as it is (``raise_on_redirect`` or
    ``raise_on_status`` False).

    Raises:
        MaxRetryError: used up, and the policy says to raise.
    """
    try:
        return retries.increment(
            attempt.method, attempt.url, response=response, _pool=sender
        )
    except MaxRetryError:
        if retries.raise_on_redirect if redirect else retries.raise_on_status:
            await response.drain_conn()
            raise
        response.retries = retries
        return None


def _next_hop(
    sender: Sender, new_url: str, location: str, route: Router | None
) -> tuple[Sender, str]:
    """The sender and URL for a redirect's target. A pool follows a
    ``Location`` that is a path as it is given, as urllib3's pools do."""
    if route is not None:
        return route(new_url)
    if location.startswith("/") and not location.startswith("//"):
        return sender, location
    if sender.is_same_host(new_url):
        return sender, parse_url(new_url).request_uri
    return sender, new_url


def _out_of_time(
    retries: Retry, response: HTTPResponse, sender: Sender, url: str
) -> None:
    """A status retry that the caller's deadline leaves no time for: raise,
    or (``raise_on_status`` off) let the response be returned."""
    if retries.raise_on_status:
        reason = ResponseError(
            ResponseError.SPECIFIC_ERROR.format(status_code=response.status)
        )
        raise MaxRetryError(sender, url, reason)
    response.retries = retries


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
