"""Unit tests for the pure retry policy (trio_pool._retry)."""

from __future__ import annotations

import dataclasses
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

import pytest

from trio_pool import _retry
from trio_pool._exceptions import (
    ConnectTimeoutError,
    InvalidHeader,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    ResponseError,
    SSLError,
)
from trio_pool._retry import RequestHistory, Retry

REDIRECT_STATUSES = {301, 302, 303, 307, 308}


@dataclass
class FakeResponse:
    """Just enough of a response for Retry (see _retry.ResponseLike)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)

    def get_redirect_location(self) -> str | Literal[False] | None:
        if self.status in REDIRECT_STATUSES:
            return self.headers.get("Location")
        return False


def read_error() -> ReadTimeoutError:
    return ReadTimeoutError(None, "/", "read timed out")


def redirect_to(location: str, status: int = 302) -> FakeResponse:
    return FakeResponse(status, {"Location": location})


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """Freeze _retry's clock at 2019-06-03 11:00:00 UTC."""
    now = datetime(2019, 6, 3, 11, 0, 0, tzinfo=timezone.utc)
    monkeypatch.setattr(_retry, "_now", now.timestamp)
    return now


class TestConstruction:
    def test_defaults(self) -> None:
        retry = Retry()
        assert retry.total == 10
        assert (retry.connect, retry.read, retry.redirect) == (None, None, None)
        assert (retry.status, retry.other) == (None, None)
        assert retry.allowed_methods == Retry.DEFAULT_ALLOWED_METHODS
        assert retry.status_forcelist == frozenset()
        assert retry.backoff_factor == 0
        assert retry.backoff_max == 120
        assert retry.backoff_jitter == 0.0
        assert retry.retry_after_max == 21600
        assert retry.raise_on_redirect is True
        assert retry.raise_on_status is True
        assert retry.respect_retry_after_header is True
        assert retry.history == ()
        assert retry.remove_headers_on_redirect == {
            "cookie",
            "authorization",
            "proxy-authorization",
        }

    def test_default_instance(self) -> None:
        assert Retry(3) == Retry.DEFAULT
        assert Retry.DEFAULT.total == 3

    def test_repr(self) -> None:
        retry = Retry()
        expected = (
            "Retry(total=10, connect=None, read=None, redirect=None, status=None)"
        )
        assert repr(retry) == expected
        for _ in range(3):
            retry = retry.increment(method="GET")
        assert str(retry) == expected.replace("10", "7")

    def test_remove_headers_on_redirect_lowercased(self) -> None:
        retry = Retry(remove_headers_on_redirect=["X-API-Secret", "Cookie"])
        assert retry.remove_headers_on_redirect == {"x-api-secret", "cookie"}

    def test_collections_are_normalised(self) -> None:
        retry = Retry(allowed_methods=["GET", "POST"], status_forcelist=[500, 502])
        assert retry.allowed_methods == frozenset({"GET", "POST"})
        assert retry.status_forcelist == frozenset({500, 502})
        assert Retry(history=None).history == ()  # type: ignore[arg-type]

    def test_empty_allowed_methods_warns_and_means_any(self) -> None:
        with pytest.warns(FutureWarning, match="allowed_methods=None"):
            retry = Retry(allowed_methods=[])
        assert retry.allowed_methods is None
        assert retry.is_retry("POST", 500) is False  # no forcelist
        assert Retry(allowed_methods=None, status_forcelist=[500]).is_retry("POST", 500)
        # Copies do not warn again (filterwarnings=error would fail here).
        assert retry.new(total=1).allowed_methods is None

    def test_false_total_disables_redirects(self) -> None:
        retry = Retry(False)
        assert retry.total is False
        assert retry.redirect == 0
        assert retry.raise_on_redirect is False

    def test_false_redirect(self) -> None:
        retry = Retry(redirect=False)
        assert retry.total == 10
        assert retry.redirect == 0
        assert retry.raise_on_redirect is False

    def test_zero_total_keeps_raise_on_redirect(self) -> None:
        assert Retry(0).raise_on_redirect is True


class TestImmutability:
    def test_assignment_raises(self) -> None:
        retry = Retry()
        with pytest.raises(dataclasses.FrozenInstanceError):
            retry.total = 3  # type: ignore[misc]

    def test_no_instance_dict(self) -> None:
        retry = Retry()
        assert not hasattr(retry, "__dict__")
        with pytest.raises((AttributeError, TypeError)):
            object.__setattr__(retry, "surprise", 1)

    def test_new_copies(self) -> None:
        retry = Retry(total=5, backoff_factor=0.5, status_forcelist=[503])
        copy = retry.new(total=2)
        assert copy is not retry
        assert retry.total == 5
        assert copy.total == 2
        assert copy.backoff_factor == 0.5
        assert copy.status_forcelist == {503}

    @pytest.mark.parametrize("respect", [True, False])
    def test_new_keeps_respect_retry_after(self, respect: bool) -> None:
        retry = Retry(respect_retry_after_header=respect)
        assert retry.new().respect_retry_after_header is respect

    def test_increment_leaves_original(self) -> None:
        retry = Retry(total=3, connect=2)
        retry.increment(error=ConnectTimeoutError("x"))
        assert (retry.total, retry.connect, retry.history) == (3, 2, ())

    def test_value_semantics(self) -> None:
        assert Retry(3, backoff_factor=1) == Retry(3, backoff_factor=1)
        assert hash(Retry(3)) == hash(Retry(3))
        assert Retry(3) != Retry(4)


class TestFromInt:
    def test_none_gives_default(self) -> None:
        assert Retry.from_int(None) is Retry.DEFAULT

    def test_none_with_default(self) -> None:
        custom = Retry(7)
        assert Retry.from_int(None, default=custom) is custom
        assert Retry.from_int(None, default=2) == Retry(2)

    def test_retry_passes_through(self) -> None:
        custom = Retry(connect=1)
        assert Retry.from_int(custom) is custom
        assert Retry.from_int(custom, redirect=False) is custom

    def test_int(self) -> None:
        retry = Retry.from_int(4)
        assert retry.total == 4
        assert retry.redirect is None
        assert retry.raise_on_redirect is True

    def test_int_without_redirects(self) -> None:
        retry = Retry.from_int(4, redirect=False)
        assert retry.total == 4
        assert retry.redirect == 0
        assert retry.raise_on_redirect is False

    def test_false(self) -> None:
        retry = Retry.from_int(False)
        assert retry.total is False
        assert retry.redirect == 0
        assert retry.raise_on_redirect is False


class TestCounting:
    def test_total_lower_than_connect_wins(self) -> None:
        error = ConnectTimeoutError("conn")
        retry = Retry(connect=3, total=2)
        retry = retry.increment(error=error).increment(error=error)
        with pytest.raises(MaxRetryError) as info:
            retry.increment(error=error)
        assert info.value.reason is error

    def test_connect_lower_than_total_wins(self) -> None:
        error = ConnectTimeoutError("conn")
        retry = Retry(connect=2, total=3)
        retry = retry.increment(error=error).increment(error=error)
        assert (retry.total, retry.connect) == (1, 0)
        with pytest.raises(MaxRetryError):
            retry.increment(error=error)

    def test_new_connection_error_counts_as_connect(self) -> None:
        retry = Retry(total=None, connect=0)
        with pytest.raises(MaxRetryError):
            retry.increment(error=NewConnectionError(None, "refused"))

    def test_proxy_error_around_connect_error_counts_as_connect(self) -> None:
        error = ProxyError("tunnel", ConnectTimeoutError("slow"))
        retry = Retry(total=None, connect=1, other=5).increment(error=error)
        assert (retry.connect, retry.other) == (0, 5)

    def test_proxy_error_around_other_error_counts_as_other(self) -> None:
        error = ProxyError("tunnel", OSError("nope"))
        retry = Retry(total=None, connect=1, other=5).increment(error=error)
        assert (retry.connect, retry.other) == (1, 4)

    def test_total_none_leaves_connect(self) -> None:
        error = ConnectTimeoutError("conn")
        retry = Retry(connect=2, total=None)
        retry = retry.increment(error=error).increment(error=error)
        assert retry.total is None
        with pytest.raises(MaxRetryError) as info:
            retry.increment(error=error)
        assert info.value.reason is error

    def test_total_none_other_kinds_unlimited(self) -> None:
        retry = Retry(connect=2, total=None)
        for _ in range(5):
            retry = retry.increment(method="GET", error=read_error())
        assert not retry.is_exhausted()

    def test_read_counts(self) -> None:
        retry = Retry(read=2, total=3)
        retry = retry.increment(method="GET", error=read_error())
        retry = retry.increment(method="GET", error=read_error())
        assert (retry.total, retry.read) == (1, 0)
        with pytest.raises(MaxRetryError):
            retry.increment(method="GET", error=read_error())

    def test_read_zero(self) -> None:
        error = read_error()
        with pytest.raises(MaxRetryError) as info:
            Retry(read=0).increment(method="GET", error=error)
        assert info.value.reason is error

    def test_protocol_error_is_a_read_error(self) -> None:
        retry = Retry(read=1).increment(method="GET", error=ProtocolError("reset"))
        assert retry.read == 0

    @pytest.mark.parametrize("method", ["POST", "PATCH", None])
    def test_read_error_on_unsafe_method_reraises(self, method: str | None) -> None:
        error = read_error()
        with pytest.raises(ReadTimeoutError) as info:
            Retry().increment(method=method, error=error)
        assert info.value is error

    def test_read_error_lowercase_method_is_retryable(self) -> None:
        assert Retry(read=1).increment(method="get", error=read_error()).read == 0

    def test_read_error_any_method_when_allowed_none(self) -> None:
        retry = Retry(read=1, allowed_methods=None)
        assert retry.increment(method="POST", error=read_error()).read == 0

    def test_read_false_reraises(self) -> None:
        error = ProtocolError("boom")
        with pytest.raises(ProtocolError) as info:
            Retry(read=False).increment(method="GET", error=error)
        assert info.value is error

    def test_connect_false_reraises(self) -> None:
        error = ConnectTimeoutError("slow")
        with pytest.raises(ConnectTimeoutError) as info:
            Retry(connect=False).increment(error=error)
        assert info.value is error

    def test_other_counts(self) -> None:
        error = SSLError("bad cert")
        retry = Retry(connect=1).increment(error=error).increment(error=error)
        assert not retry.is_exhausted()
        retry = Retry(other=1).increment(error=error)
        assert retry.other == 0
        with pytest.raises(MaxRetryError) as info:
            retry.increment(error=error)
        assert info.value.reason is error

    def test_status_counts(self) -> None:
        response = FakeResponse(400)
        retry = Retry(status=2)
        retry = retry.increment(response=response).increment(response=response)
        assert retry.status == 0
        message = ResponseError.SPECIFIC_ERROR.format(status_code=400)
        with pytest.raises(MaxRetryError, match=message) as info:
            retry.increment(response=response)
        assert isinstance(info.value.reason, ResponseError)

    def test_no_response_no_error_is_generic(self) -> None:
        retry = Retry(total=1).increment("POST", "/")
        with pytest.raises(MaxRetryError, match=ResponseError.GENERIC_ERROR) as info:
            retry.increment("POST", "/")
        assert isinstance(info.value.reason, ResponseError)
        assert "redirect" not in str(info.value)

    def test_status_zero_response_is_generic(self) -> None:
        retry = Retry(total=0, status=5)
        with pytest.raises(MaxRetryError, match=ResponseError.GENERIC_ERROR):
            retry.increment(response=FakeResponse(0))

    def test_redirect_counts(self) -> None:
        retry = Retry(redirect=2)
        retry = retry.increment("GET", "/a", response=redirect_to("/b"))
        retry = retry.increment("GET", "/b", response=redirect_to("/c"))
        assert (retry.total, retry.redirect) == (8, 0)
        with pytest.raises(MaxRetryError, match="too many redirects") as info:
            retry.increment("GET", "/c", response=redirect_to("/d"))
        assert isinstance(info.value.reason, ResponseError)

    def test_redirect_status_without_location_counts_as_status(self) -> None:
        retry = Retry(redirect=1, status=1).increment(response=FakeResponse(302))
        assert (retry.redirect, retry.status) == (1, 0)
        assert retry.history[-1].redirect_location is None

    def test_redirect_false_stores_raise_on_redirect(self) -> None:
        # Retry only stores raise_on_redirect; the request loop reads it when
        # MaxRetryError comes out of increment() and returns the 3xx instead.
        retry = Retry(redirect=False)
        with pytest.raises(MaxRetryError):
            retry.increment("GET", "/", response=redirect_to("/x"))
        assert retry.raise_on_redirect is False

    def test_redirect_exhaustion_with_raise_on_redirect_true(self) -> None:
        retry = Retry(redirect=0, raise_on_redirect=True)
        with pytest.raises(MaxRetryError, match="too many redirects"):
            retry.increment("GET", "/", response=redirect_to("/x"))
        assert retry.raise_on_redirect is True

    def test_raise_on_status_is_stored(self) -> None:
        assert Retry(raise_on_status=False).new().raise_on_status is False


class TestExhaustion:
    def test_zero_is_not_exhausted(self) -> None:
        assert not Retry(0).is_exhausted()
        assert Retry(-1).is_exhausted()
        assert Retry(1).increment(method="GET").total == 0

    @pytest.mark.parametrize("total", [0, -1])
    def test_no_retries_left(self, total: int) -> None:
        with pytest.raises(MaxRetryError):
            Retry(total).increment(method="GET")

    @pytest.mark.parametrize(
        "name", ["total", "connect", "read", "redirect", "status", "other"]
    )
    def test_each_count(self, name: str) -> None:
        assert not Retry(total=None).new(**{name: 0}).is_exhausted()
        assert Retry(total=None).new(**{name: -1}).is_exhausted()

    def test_unlimited(self) -> None:
        assert not Retry(total=None).is_exhausted()

    def test_max_retry_error_fields(self) -> None:
        pool = object()
        error = ConnectTimeoutError("conntimeout")
        with pytest.raises(MaxRetryError, match="conntimeout") as info:
            Retry(0).increment("GET", "http://h/x", error=error, _pool=pool)
        assert info.value.reason is error
        assert info.value.__cause__ is error
        assert info.value.url == "http://h/x"
        assert info.value.pool is pool

    def test_missing_url(self) -> None:
        with pytest.raises(MaxRetryError) as info:
            Retry(0).increment()
        assert info.value.url == ""


class TestDisabled:
    def test_error_is_raised_as_itself(self) -> None:
        error = ConnectTimeoutError("raw")
        with pytest.raises(ConnectTimeoutError) as info:
            Retry(False).increment(error=error)
        assert info.value is error
        assert info.value.__cause__ is None

    def test_read_error_raised_as_itself_even_for_get(self) -> None:
        error = read_error()
        with pytest.raises(ReadTimeoutError) as info:
            Retry.from_int(False).increment(method="GET", error=error)
        assert info.value is error

    def test_response_exhausts(self) -> None:
        # A disabled policy raises MaxRetryError for any response; the loop
        # sees raise_on_redirect/raise_on_status and returns the response.
        with pytest.raises(MaxRetryError, match="too many redirects"):
            Retry(False).increment("GET", "/", response=redirect_to("/b"))
        with pytest.raises(MaxRetryError, match="too many 500 error"):
            Retry(False).increment("GET", "/", response=FakeResponse(500))

    def test_reraise_uses_given_traceback(self) -> None:
        def fail() -> None:
            raise ProtocolError("deep")

        try:
            fail()
        except ProtocolError as exc:
            error, tb = exc, exc.__traceback__
        error.with_traceback(None)
        with pytest.raises(ProtocolError) as info:
            Retry(False).increment(error=error, _stacktrace=tb)
        frames = [frame.name for frame in info.traceback]
        assert "fail" in frames


class TestHistory:
    def test_entries(self) -> None:
        retry = Retry(total=10, allowed_methods=frozenset(["GET", "POST"]))
        connect = ConnectTimeoutError("conntimeout")
        retry = retry.increment("GET", "/1", None, connect)
        read = ReadTimeoutError(None, "/2", "read timed out")
        retry = retry.increment("POST", "/2", None, read)
        retry = retry.increment("GET", "/3", FakeResponse(500), None)
        retry = retry.increment("GET", "/4", redirect_to("/5", 307), None)
        assert retry.history == (
            RequestHistory("GET", "/1", connect, None, None),
            RequestHistory("POST", "/2", read, None, None),
            RequestHistory("GET", "/3", None, 500, None),
            RequestHistory("GET", "/4", None, 307, "/5"),
        )

    def test_traceback_dropped_from_kept_errors(self) -> None:
        try:
            raise ConnectTimeoutError("x")
        except ConnectTimeoutError as exc:
            error = exc
        assert error.__traceback__ is not None
        retry = Retry().increment(error=error)
        assert retry.history[0].error is error
        assert error.__traceback__ is None

    def test_traceback_kept_for_max_retry_reason(self) -> None:
        try:
            raise ConnectTimeoutError("x")
        except ConnectTimeoutError as exc:
            error = exc
        with pytest.raises(MaxRetryError):
            Retry(0).increment(error=error)
        assert error.__traceback__ is not None


class TestIsRetry:
    def test_status_forcelist(self) -> None:
        retry = Retry(status_forcelist=range(500, 600))
        assert not retry.is_retry("GET", status_code=200)
        assert not retry.is_retry("GET", status_code=400)
        assert retry.is_retry("GET", status_code=500)
        retry = Retry(total=1, status_forcelist=[418])
        assert retry.is_retry("GET", status_code=418)
        assert not retry.is_retry("GET", status_code=400)

    def test_forcelist_ignores_total(self) -> None:
        assert Retry(0, status_forcelist=[500]).is_retry("GET", 500)

    def test_string_codes_do_not_match(self) -> None:
        retry = Retry(status_forcelist=["418"])  # type: ignore[list-item]
        assert not retry.is_retry("GET", status_code=418)

    def test_methods_and_forcelist_are_anded(self) -> None:
        retry = Retry(status_forcelist=[500], allowed_methods=None)
        assert retry.is_retry("GET", 500)
        assert retry.is_retry("POST", 500)
        retry = Retry(status_forcelist=[500], allowed_methods=["POST"])
        assert not retry.is_retry("GET", 500)
        assert retry.is_retry("POST", 500)

    @pytest.mark.parametrize("status", sorted(Retry.RETRY_AFTER_STATUS_CODES))
    def test_retry_after_statuses(self, status: int) -> None:
        retry = Retry()
        assert retry.is_retry("GET", status, has_retry_after=True)
        assert not retry.is_retry("GET", status, has_retry_after=False)
        assert not retry.is_retry("POST", status, has_retry_after=True)

    def test_retry_after_on_other_status(self) -> None:
        assert not Retry().is_retry("GET", 500, has_retry_after=True)

    def test_retry_after_not_respected(self) -> None:
        retry = Retry(respect_retry_after_header=False)
        assert not retry.is_retry("GET", 503, has_retry_after=True)

    @pytest.mark.parametrize("total", [0, None, False])
    def test_retry_after_needs_total(self, total: int | None) -> None:
        assert not Retry(total).is_retry("GET", 503, has_retry_after=True)


class TestBackoff:
    def test_sequence(self) -> None:
        retry = Retry(total=100, backoff_factor=0.2)
        assert retry.get_backoff_time() == 0
        retry = retry.increment(method="GET")
        assert retry.get_backoff_time() == 0
        times = []
        for _ in range(4):
            retry = retry.increment(method="GET")
            times.append(retry.get_backoff_time())
        assert times == [0.4, 0.8, 1.6, 3.2]
        for _ in range(10):
            retry = retry.increment(method="GET")
        assert retry.get_backoff_time() == Retry.DEFAULT_BACKOFF_MAX == 120

    def test_custom_cap(self) -> None:
        retry = Retry(total=100, backoff_factor=0.2, backoff_max=1)
        times = []
        for _ in range(6):
            retry = retry.increment(method="GET")
            times.append(retry.get_backoff_time())
        assert times == [0, 0.4, 0.8, 1, 1, 1]

    def test_zero_factor(self) -> None:
        retry = Retry().increment(method="GET").increment(method="GET")
        assert retry.get_backoff_time() == 0

    def test_reset_after_redirect(self) -> None:
        retry = Retry(total=100, redirect=5, backoff_factor=0.2)
        retry = retry.increment(method="GET").increment(method="GET")
        assert retry.get_backoff_time() == 0.4
        retry = retry.increment(method="GET", response=redirect_to("/x"))
        assert retry.get_backoff_time() == 0
        retry = retry.increment(method="GET").increment(method="GET")
        assert retry.get_backoff_time() == 0.4

    @pytest.mark.parametrize(
        ("rand", "expected"), [(0.0, 0.4), (0.5, 0.6), (0.999, 0.4 + 0.999 * 0.4)]
    )
    def test_jitter(
        self, monkeypatch: pytest.MonkeyPatch, rand: float, expected: float
    ) -> None:
        monkeypatch.setattr(random, "random", lambda: rand)
        retry = Retry(total=100, backoff_factor=0.2, backoff_jitter=0.4)
        retry = retry.increment(method="GET").increment(method="GET")
        assert retry.get_backoff_time() == pytest.approx(expected)

    def test_jitter_not_added_to_first_retry(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(random, "random", lambda: 0.9)
        retry = Retry(backoff_factor=0.2, backoff_jitter=5).increment(method="GET")
        assert retry.get_backoff_time() == 0

    def test_jitter_real_random_within_bounds(self) -> None:
        retry = Retry(total=100, backoff_factor=0.2, backoff_jitter=0.4)
        retry = retry.increment(method="GET").increment(method="GET")
        for _ in range(200):
            assert 0.4 <= retry.get_backoff_time() < 0.8

    def test_jitter_capped(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(random, "random", lambda: 0.99)
        retry = Retry(backoff_factor=0.2, backoff_max=0.5, backoff_jitter=10)
        retry = retry.increment(method="GET").increment(method="GET")
        assert retry.get_backoff_time() == 0.5

    def test_negative_factor_clamped_to_zero(self) -> None:
        retry = Retry(backoff_factor=-1).increment(method="GET")
        assert retry.increment(method="GET").get_backoff_time() == 0


class TestRetryAfter:
    @pytest.mark.parametrize(
        ("value", "expected"), [("0", 0), ("1000", 1000), ("\t42 ", 42)]
    )
    def test_seconds(self, value: str, expected: int) -> None:
        assert Retry().parse_retry_after(value) == expected

    @pytest.mark.parametrize(
        "value", ["-1", "+1", "1.0", "\xb2", "", "soon", "Mon, 99 Jun 2019 12:00:00"]
    )
    def test_invalid(self, value: str) -> None:
        with pytest.raises(InvalidHeader, match="Retry-After"):
            Retry().parse_retry_after(value)

    @pytest.mark.usefixtures("frozen_clock")
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("Mon, 3 Jun 2019 12:00:00 UTC", 3600),
            ("Mon, 03 Jun 2019 11:30:12 GMT", 1812),
            ("Monday, 03-Jun-19 11:30:12 GMT", 1812),
            ("Mon Jun  3 11:30:12 2019", 1812),  # asctime: no zone, so UTC
            ("Mon, 03 Jun 2019 11:30:12 -0000", 1812),
            ("Mon, 03 Jun 2019 13:30:12 +0200", 1812),
        ],
    )
    def test_dates(self, value: str, expected: float) -> None:
        assert Retry().parse_retry_after(value) == expected

    @pytest.mark.usefixtures("frozen_clock")
    def test_past_date_is_zero(self) -> None:
        assert Retry().parse_retry_after("Mon, 3 Jun 2019 10:00:00 GMT") == 0

    def test_real_clock(self) -> None:
        retry = Retry(retry_after_max=1e12)
        assert retry.parse_retry_after("Fri, 31 Dec 1999 23:59:59 GMT") == 0
        seconds = retry.parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT")
        end_of_9999 = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
        assert seconds == pytest.approx(end_of_9999.timestamp() - time.time(), abs=60)

    @pytest.mark.usefixtures("frozen_clock")
    def test_capped(self) -> None:
        assert Retry().parse_retry_after("999999") == 21600
        assert Retry().parse_retry_after("Tue, 3 Jun 2025 10:00:00 GMT") == 21600
        assert Retry(retry_after_max=60).parse_retry_after("61") == 60

    def test_get_retry_after(self) -> None:
        retry = Retry()
        assert retry.get_retry_after(FakeResponse(503)) is None
        response = FakeResponse(503, {"Retry-After": "7"})
        assert retry.get_retry_after(response) == 7


class TestSleepTime:
    def backed_off(self, **kw: Any) -> Retry:
        retry = Retry(backoff_factor=1, **kw)
        return retry.increment(method="GET").increment(method="GET")

    def test_no_response_gives_backoff(self) -> None:
        assert self.backed_off().sleep_time() == 2
        assert Retry().sleep_time() == 0

    @pytest.mark.parametrize("status", [413, 429, 503, 500])
    def test_retry_after_wins(self, status: int) -> None:
        # Like urllib3's Retry.sleep(), any retried response's Retry-After is
        # honoured (a 500 only gets here through status_forcelist).
        response = FakeResponse(status, {"Retry-After": "30"})
        assert self.backed_off().sleep_time(response) == 30

    @pytest.mark.usefixtures("frozen_clock")
    def test_retry_after_date(self) -> None:
        response = FakeResponse(503, {"Retry-After": "Mon, 3 Jun 2019 11:01:00 GMT"})
        assert Retry().sleep_time(response) == 60

    def test_without_header_gives_backoff(self) -> None:
        assert self.backed_off().sleep_time(FakeResponse(503)) == 2

    def test_not_respected_gives_backoff(self) -> None:
        retry = self.backed_off(respect_retry_after_header=False)
        response = FakeResponse(503, {"Retry-After": "30"})
        assert retry.sleep_time(response) == 2

    def test_zero_retry_after_falls_back_to_backoff(self) -> None:
        response = FakeResponse(503, {"Retry-After": "0"})
        assert self.backed_off().sleep_time(response) == 2

    def test_garbage_raises(self) -> None:
        response = FakeResponse(503, {"Retry-After": "later"})
        with pytest.raises(InvalidHeader):
            Retry().sleep_time(response)

    def test_capped(self) -> None:
        response = FakeResponse(503, {"Retry-After": str(sys.maxsize)})
        assert Retry(retry_after_max=5).sleep_time(response) == 5
