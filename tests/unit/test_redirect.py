"""The pure redirect decisions of ``_redirect`` (urllib3 2.x rules)."""

from __future__ import annotations

import pytest

from trio_pool import HTTPHeaderDict, LocationParseError, Retry
from trio_pool._redirect import BODY_HEADERS, join_location, redirect, same_origin

STRIP = Retry.DEFAULT.remove_headers_on_redirect
BODY = {"Content-Type": "text/plain", "Content-Length": "3", "X-Keep": "1"}
SECRETS = {"Authorization": "Basic x", "Cookie": "a=b", "Proxy-Authorization": "p"}


@pytest.mark.parametrize("status", [301, 302, 307, 308])
@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "HEAD"])
def test_only_303_changes_the_method(status: int, method: str) -> None:
    step = redirect(status, method, BODY, "http://a/x", "/y", STRIP)
    assert (step.method, step.drop_body) == (method, False)
    assert dict(step.headers) == BODY


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "GET"])
def test_303_becomes_get_without_its_body(method: str) -> None:
    step = redirect(303, method, BODY, "http://a/x", "/y", STRIP)
    assert (step.method, step.drop_body) == ("GET", True)
    assert dict(step.headers) == {"X-Keep": "1"}


def test_303_keeps_head() -> None:
    step = redirect(303, "HEAD", BODY, "http://a/x", "/y", STRIP)
    assert (step.method, step.drop_body) == ("HEAD", False)
    assert dict(step.headers) == BODY


def test_every_body_header_is_dropped_by_303_in_any_case() -> None:
    headers = HTTPHeaderDict({name.upper(): "v" for name in BODY_HEADERS})
    headers["Accept"] = "*/*"
    step = redirect(303, "POST", headers, "http://a/", "/b", STRIP)
    assert dict(step.headers) == {"Accept": "*/*"}


@pytest.mark.parametrize(
    ("old", "location", "kept"),
    [
        ("http://a/x", "/y", True),
        ("http://a/x", "http://a:80/y", True),  # the default port is the same
        ("http://A/x", "http://a/y", True),  # hosts compare in normal form
        ("http://straße.de/x", "http://xn--strae-oqa.de/y", True),
        ("http://a/x", "http://b/y", False),
        ("http://a/x", "https://a/y", False),
        ("http://a/x", "http://a:8080/y", False),
        ("https://a/x", "https://a:443/y", True),
        ("http://[::1]:80/x", "http://[0:0::1]/y", False),  # text, as urllib3
    ],
)
def test_credentials_are_dropped_when_the_origin_changes(
    old: str, location: str, kept: bool
) -> None:
    step = redirect(302, "GET", {**SECRETS, "X-Keep": "1"}, old, location, STRIP)
    assert ("Authorization" in step.headers) is kept
    assert ("Cookie" in step.headers) is kept
    assert ("Proxy-Authorization" in step.headers) is kept
    assert step.headers["X-Keep"] == "1"


def test_what_is_dropped_comes_from_the_retry_and_any_case() -> None:
    step = redirect(
        302,
        "GET",
        {"X-Token": "t", "Cookie": "c"},
        "http://a/",
        "http://b/",
        ["x-TOKEN"],
    )
    assert dict(step.headers) == {"Cookie": "c"}


def test_no_headers_stay_none() -> None:
    step = redirect(303, "POST", None, "http://a/", "http://b/", STRIP)
    assert step.headers is None


def test_the_callers_headers_are_never_changed_in_place() -> None:
    headers = HTTPHeaderDict({**SECRETS, **BODY})
    redirect(303, "POST", headers, "http://a/", "http://b/", STRIP)
    assert dict(headers) == {**SECRETS, **BODY}


@pytest.mark.parametrize(
    ("base", "location", "joined"),
    [
        ("http://a/b/c", "/d", "http://a/d"),
        ("http://a/b/c", "d", "http://a/b/d"),
        ("http://a/b/c", "../d", "http://a/d"),
        ("http://a/b/c", "?q=1", "http://a/b/c?q=1"),
        ("http://a/b/c", "//other/x", "http://other/x"),
        ("http://a/b/c", "https://b/x", "https://b/x"),
        ("http://a:8080/b", "/c", "http://a:8080/c"),
    ],
)
def test_location_is_joined_onto_the_url_requested(
    base: str, location: str, joined: str
) -> None:
    assert join_location(base, location) == joined
    assert redirect(301, "GET", None, base, location, STRIP).url == joined


@pytest.mark.parametrize(
    "location", ["http://[::1/x", "http://a:99999/", "http://a b/"]
)
def test_an_unparsable_location_is_a_location_parse_error(location: str) -> None:
    with pytest.raises(LocationParseError):
        join_location("http://a/", location)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("http://a/", "http://a:80/x", True),
        ("https://a/", "https://A:443/", True),
        ("http://a/", "https://a/", False),
        ("http://a/", "not a url at all", False),
        ("http://a/", "/relative", False),
    ],
)
def test_same_origin(a: str, b: str, same: bool) -> None:
    assert same_origin(a, b) is same
