"""Retry policy: an immutable value that counts what went wrong.

``Retry`` follows urllib3 2.x's parameters and semantics, so a policy written
for urllib3 means the same thing here. It is pure: it never sleeps and never
does I/O. The request loop asks it three questions and acts on the answers:

* ``is_retry(method, status, has_retry_after)`` -- should this response be
  retried at all?
* ``increment(...)`` -- record one failed attempt; returns the next policy, or
  raises (``MaxRetryError`` when exhausted, the original error when retries
  are disabled or the method is not safe to repeat after a read error).
* ``sleep_time(response)`` -- how long to wait before the next attempt; the
  loop does the waiting itself, with ``trio.sleep``, inside its deadlines.

Every "change" goes through :meth:`Retry.new` or :meth:`Retry.increment`,
which build a new instance, so one policy can be shared by any number of
concurrent requests.
"""

from __future__ import annotations

import dataclasses
import email.utils
import random
import re
import time
import warnings
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import timezone
from itertools import takewhile
from types import TracebackType
from typing import Any, ClassVar, Literal, NamedTuple, NoReturn, Protocol

from ._exceptions import (
    ConnectTimeoutError,
    InvalidHeader,
    MaxRetryError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    ResponseError,
)

__all__ = ["RequestHistory", "ResponseLike", "Retry"]

# RFC 9110 section 10.2.3: delay-seconds is 1*DIGIT; surrounding whitespace is
# the header parser's business, but servers do send it.
_DELAY_SECONDS = re.compile(r"\s*[0-9]+\s*")


def _now() -> float:
    """Return the current POSIX time; tests replace this to freeze the clock."""
    return time.time()


class RequestHistory(NamedTuple):
    """One failed attempt, as recorded by :meth:`Retry.increment`."""

    method: str | None
    url: str | None
    error: Exception | None
    status: int | None
    redirect_location: str | None


class ResponseLike(Protocol):
    """The part of a response that :class:`Retry` looks at."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    def get_redirect_location(self) -> str | Literal[False] | None: ...


@dataclass(frozen=True, slots=True, repr=False)
class Retry:
    """How many times, and on what, a request may be attempted again.

    Args:
        total: overall cap on retries of any kind; takes precedence over the
            other counts. ``None`` leaves only the other counts; ``False``
            disables retries: errors are raised as themselves and redirects
            are not followed (``raise_on_redirect`` becomes ``False``).
        connect: retries on errors raised before the request reached the
            server (``ConnectTimeoutError`` and its subclasses).
        read: retries on errors after the request was sent
            (``ReadTimeoutError``, ``ProtocolError``); only for methods in
            ``allowed_methods``, since the server may have acted on it.
        redirect: how many redirects to follow; ``False`` is like ``0`` but
            also sets ``raise_on_redirect=False``.
        status: retries on responses whose status is in ``status_forcelist``.
        other: retries on any other error.
        allowed_methods: upper-case methods considered safe to repeat;
            ``None`` allows every method.
        status_forcelist: status codes that trigger a retry.
        backoff_factor: base of the exponential backoff, see
            :meth:`get_backoff_time`.
        backoff_max: upper bound of any backoff, in seconds.
        raise_on_redirect: when redirects run out, whether the caller should
            raise ``MaxRetryError`` (``True``) or return the 3xx response.
        raise_on_status: the same choice for ``status_forcelist`` responses.
        history: attempts so far, oldest first.
        respect_retry_after_header: honour ``Retry-After``: it makes a 413,
            429 or 503 retryable (:meth:`is_retry`) and sets the wait
            (:meth:`sleep_time`).
        remove_headers_on_redirect: request headers to drop when a redirect
            leaves the origin; stored lower-cased.
        backoff_jitter: up to this many random seconds added to a backoff.
        retry_after_max: cap, in seconds, on any ``Retry-After`` wait.

    A count of ``None`` means "no limit of this kind"; ``0`` means "fail on
    the first retry of this kind". Counts go negative when exhausted.
    """

    DEFAULT_ALLOWED_METHODS: ClassVar[frozenset[str]] = frozenset(
        ["HEAD", "GET", "PUT", "DELETE", "OPTIONS", "TRACE"]
    )
    RETRY_AFTER_STATUS_CODES: ClassVar[frozenset[int]] = frozenset([413, 429, 503])
    DEFAULT_REMOVE_HEADERS_ON_REDIRECT: ClassVar[frozenset[str]] = frozenset(
        ["Cookie", "Authorization", "Proxy-Authorization"]
    )
    DEFAULT_BACKOFF_MAX: ClassVar[float] = 120
    DEFAULT_RETRY_AFTER_MAX: ClassVar[float] = 21600
    #: The policy pools use when given ``retries=None``; set below the class.
    DEFAULT: ClassVar[Retry]

    total: bool | int | None = 10
    connect: int | None = None
    read: int | None = None
    redirect: bool | int | None = None
    status: int | None = None
    other: int | None = None
    allowed_methods: Collection[str] | None = DEFAULT_ALLOWED_METHODS
    status_forcelist: Collection[int] | None = None
    backoff_factor: float = 0
    backoff_max: float = DEFAULT_BACKOFF_MAX
    raise_on_redirect: bool = True
    raise_on_status: bool = True
    history: tuple[RequestHistory, ...] = ()
    respect_retry_after_header: bool = True
    remove_headers_on_redirect: Collection[str] = DEFAULT_REMOVE_HEADERS_ON_REDIRECT
    backoff_jitter: float = 0.0
    retry_after_max: float = DEFAULT_RETRY_AFTER_MAX

    def __post_init__(self) -> None:
        # Normalise once, here, so that every copy made by new() is hashable
        # and compares by value.
        set_ = object.__setattr__
        if self.redirect is False or self.total is False:
            set_(self, "redirect", 0)
            set_(self, "raise_on_redirect", False)
        allowed = self.allowed_methods
        if allowed is not None:
            if not allowed:
                # urllib3 2.x reads an empty collection as "any method" and
                # warns that this will change; storing None keeps the meaning
                # and stops every new() copy from warning again.
                warnings.warn(
                    "An empty allowed_methods means 'retry any method' but will "
                    "mean 'retry no method' in the future; pass "
                    "allowed_methods=None instead.",
                    FutureWarning,
                    stacklevel=3,
                )
                allowed = None
            else:
                allowed = frozenset(allowed)
            set_(self, "allowed_methods", allowed)
        set_(self, "status_forcelist", frozenset(self.status_forcelist or ()))
        set_(self, "history", tuple(self.history or ()))
        set_(
            self,
            "remove_headers_on_redirect",
            frozenset(h.lower() for h in self.remove_headers_on_redirect),
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(total={self.total}, connect={self.connect}, "
            f"read={self.read}, redirect={self.redirect}, status={self.status})"
        )

    # ------------------------------------------------------------------
    # Construction.

    def new(self, **kw: Any) -> Retry:
        """Return a copy of this policy with the given fields replaced."""
        return dataclasses.replace(self, **kw)

    @classmethod
    def from_int(
        cls,
        retries: Retry | bool | int | None,
        redirect: bool | int | None = True,
        default: Retry | bool | int | None = None,
    ) -> Retry:
        """Turn the ``retries=`` argument users may pass into a policy.

        Args:
            retries: a policy (returned as is), a number of retries, ``False``
                to disable retries and redirects, or ``None`` for ``default``.
            redirect: for a number or ``False``, whether redirects may be
                followed (they are counted by ``total`` only).
            default: used when ``retries`` is ``None``; ``None`` means
                :attr:`Retry.DEFAULT`.
        """
        if retries is None:
            retries = cls.DEFAULT if default is None else default
        if isinstance(retries, Retry):
            return retries
        return cls(retries, redirect=None if redirect else False)

    # ------------------------------------------------------------------
    # Waiting between attempts.

    def get_backoff_time(self) -> float:
        """Seconds to back off after the current run of consecutive errors.

        With ``n`` failed attempts since the last redirect, this is
        ``backoff_factor * 2 ** (n - 1)`` (no wait at all for ``n <= 1``: a
        second try usually just works), plus up to ``backoff_jitter`` random
        seconds, clamped to ``[0, backoff_max]``.
        """
        run = sum(
            1
            for _ in takewhile(
                lambda h: h.redirect_location is None, reversed(self.history)
            )
        )
        if run <= 1:
            return 0
        backoff = self.backoff_factor * 2 ** (run - 1)
        if self.backoff_jitter != 0.0:
            backoff += random.random() * self.backoff_jitter
        return float(max(0, min(self.backoff_max, backoff)))

    def parse_retry_after(self, retry_after: str) -> float:
        """Turn a ``Retry-After`` value into seconds to wait from now.

        Args:
            retry_after: delay-seconds or an HTTP-date. A date without a zone
                is taken as UTC, the only zone HTTP dates use.

        Returns:
            Seconds, never negative, at most ``retry_after_max``.

        Raises:
            InvalidHeader: the value is neither form.
        """
        seconds: float
        if _DELAY_SECONDS.fullmatch(retry_after):
            # Anything longer than retry_after_max is capped anyway; a huge
            # digit string must not reach int() (which limits digit counts).
            digits = retry_after.strip().lstrip("0") or "0"
            seconds = int(digits) if len(digits) <= 12 else self.retry_after_max
        else:
            seconds = _parse_http_date(retry_after) - _now()
        return min(max(seconds, 0), self.retry_after_max)

    def get_retry_after(self, response: ResponseLike) -> float | None:
        """Seconds the response's ``Retry-After`` asks for, or ``None``."""
        value = response.headers.get("Retry-After")
        if value is None:
            return None
        return self.parse_retry_after(value)

    def sleep_time(self, response: ResponseLike | None = None) -> float:
        """Seconds the request loop should wait before its next attempt.

        This is the pure half of urllib3's ``Retry.sleep()``: a non-zero
        ``Retry-After`` wait from the response when the policy honours that
        header, otherwise :meth:`get_backoff_time`.

        Raises:
            InvalidHeader: the response's ``Retry-After`` is malformed.
        """
        if self.respect_retry_after_header and response is not None:
            retry_after = self.get_retry_after(response)
            if retry_after:
                return retry_after
        return self.get_backoff_time()

    # ------------------------------------------------------------------
    # Deciding.

    def _is_connection_error(self, err: Exception) -> bool:
        # Raised before the request left us: always safe to try again.
        if isinstance(err, ProxyError):
            return isinstance(err.original_error, ConnectTimeoutError)
        return isinstance(err, ConnectTimeoutError)

    def _is_read_error(self, err: Exception) -> bool:
        # Raised after the request was (maybe partly) sent: the server may
        # have acted on it.
        return isinstance(err, (ReadTimeoutError, ProtocolError))

    def _is_method_retryable(self, method: str) -> bool:
        allowed = self.allowed_methods
        return allowed is None or method.upper() in allowed

    def is_retry(
        self, method: str, status_code: int, has_retry_after: bool = False
    ) -> bool:
        """Whether a response with this status should be retried.

        Only methods in ``allowed_methods`` are retried. A status in
        ``status_forcelist`` is retried; so is a 413, 429 or 503 carrying
        ``Retry-After`` when the policy honours that header and ``total`` is
        neither ``0``, ``None`` nor ``False``.
        """
        if not self._is_method_retryable(method):
            return False
        if self.status_forcelist and status_code in self.status_forcelist:
            return True
        return bool(
            self.total
            and self.respect_retry_after_header
            and has_retry_after
            and status_code in self.RETRY_AFTER_STATUS_CODES
        )

    def is_exhausted(self) -> bool:
        """Whether some count has gone below zero."""
        counts = (
            self.total,
            self.connect,
            self.read,
            self.redirect,
            self.status,
            self.other,
        )
        # None and False mean "not limited"; a count of 0 is not used up yet.
        return any(c is not None and c is not False and c < 0 for c in counts)

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: ResponseLike | None = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: TracebackType | None = None,
    ) -> Retry:
        """Record one failed attempt and return the policy for the next one.

        Args:
            method: the request method.
            url: the request URL, for the history and ``MaxRetryError``.
            response: the response that is to be retried or redirected.
            error: the error the attempt ended with, if it had no response.
            _pool: the pool, named in ``MaxRetryError``.
            _stacktrace: a traceback to re-raise ``error`` with.

        Returns:
            A new ``Retry`` with the matching counts decremented and one more
            :class:`RequestHistory` entry.

        Raises:
            MaxRetryError: the new policy is exhausted; ``reason`` is the
                error, or a ``ResponseError`` describing the response.
            Exception: ``error`` itself, when retries are disabled
                (``total=False``), when its kind of count is ``False``, or for a
                read error on a method that is not safe to repeat.
        """
        if self.total is False and error is not None:
            _reraise(error, _stacktrace)
        counts = _Counts(self)
        if error is not None:
            self._count_error(counts, error, method, _stacktrace)
            cause = "unknown"
            status = redirect_location = None
        else:
            cause, status, redirect_location = _count_response(counts, response)
        history = (
            *self.history,
            RequestHistory(method, url, error, status, redirect_location),
        )
        new_retry = self.new(**counts.changes(), history=history)
        if new_retry.is_exhausted():
            reason = error or ResponseError(cause)
            # MaxRetryError types url as str; the request loop always passes one.
            raise MaxRetryError(_pool, url or "", reason) from reason
        if error is not None:
            # The history may live as long as the response; do not let it pin
            # the failed attempt's frames through the traceback.
            error.with_traceback(None)
        return new_retry

    def _count_error(
        self,
        counts: _Counts,
        error: Exception,
        method: str | None,
        tb: TracebackType | None,
    ) -> None:
        if self._is_connection_error(error):
            if counts.connect is False:
                _reraise(error, tb)
            counts.connect = _minus_one(counts.connect)
        elif self._is_read_error(error):
            if (
                counts.read is False
                or method is None
                or not self._is_method_retryable(method)
            ):
                _reraise(error, tb)
            counts.read = _minus_one(counts.read)
        else:
            counts.other = _minus_one(counts.other)


#: The policy pools use by default: three retries of any kind.
Retry.DEFAULT = Retry(3)


class _Counts:
    """The mutable scratch copy of the counts that one increment() edits."""

    __slots__ = ("connect", "other", "read", "redirect", "status", "total")

    def __init__(self, retry: Retry) -> None:
        self.total = _minus_one(retry.total)
        self.connect = retry.connect
        self.read = retry.read
        self.redirect = retry.redirect
        self.status = retry.status
        self.other = retry.other

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


def _minus_one(count: int | None) -> int | None:
    # False - 1 == -1 on purpose: a disabled total is exhausted by any
    # response, which is how Retry(False) turns redirects off.
    return None if count is None else count - 1


def _count_response(
    counts: _Counts, response: ResponseLike | None
) -> tuple[str, int | None, str | None]:
    """Count a retried or redirected response; return (cause, status, location)."""
    location = response.get_redirect_location() if response is not None else None
    if response is not None and location:
        counts.redirect = _minus_one(counts.redirect)
        return "too many redirects", response.status, location
    if response is not None and response.status:
        counts.status = _minus_one(counts.status)
        cause = ResponseError.SPECIFIC_ERROR.format(status_code=response.status)
        return cause, response.status, None
    return ResponseError.GENERIC_ERROR, None, None


def _reraise(error: Exception, tb: TracebackType | None) -> NoReturn:
    if tb is not None:
        raise error.with_traceback(tb)
    raise error


def _parse_http_date(value: str) -> float:
    """Return the POSIX time of an HTTP-date, or raise ``InvalidHeader``."""
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError) as exc:
        raise InvalidHeader(f"Invalid Retry-After header: {value}") from exc
    if when.tzinfo is None:
        # parsedate_to_datetime() leaves "-0000" and zone-less dates naive.
        return when.replace(tzinfo=timezone.utc).timestamp()
    return when.timestamp()
