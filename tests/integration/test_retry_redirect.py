"""Retries and redirects through the one loop, against the bundled server."""

from __future__ import annotations

import io
from typing import Any

import pytest
import trio
import trio.testing

from tests.integration.conftest import assert_pool_exact
from trio_pool import (
    HostChangedError,
    HTTPConnectionPool,
    MaxRetryError,
    ProtocolError,
    ResponseError,
    Retry,
    UnrewindableBodyError,
)
from trio_pool.testing import Server


async def test_503_with_retry_after_then_200(pool: HTTPConnectionPool) -> None:
    start = trio.current_time()
    response = await pool.request("GET", "/fail/1?key=ra&mode=503&retry_after=1")
    assert response.status == 200
    assert trio.current_time() - start >= 1
    assert response.retries is not None
    (entry,) = response.retries.history
    assert entry.status == 503
    assert_pool_exact(pool)


async def test_reset_before_response_retried_for_get(
    pool: HTTPConnectionPool, server: Server
) -> None:
    response = await pool.request("GET", "/fail/2?key=get&mode=reset")
    assert response.status == 200
    assert response.retries is not None
    assert [type(h.error) for h in response.retries.history] == [
        ProtocolError,
        ProtocolError,
    ]
    assert server.fail_counts["get"] == 3


async def test_reset_before_response_not_retried_for_post(
    pool: HTTPConnectionPool, server: Server
) -> None:
    with pytest.raises(ProtocolError):
        await pool.request("POST", "/fail/1?key=post&mode=reset", body=b"data")
    assert server.fail_counts["post"] == 1
    # Allowed explicitly, it is retried.
    response = await pool.request(
        "POST",
        "/fail/1?key=post2&mode=close",
        body=b"data",
        retries=Retry(2, allowed_methods=None),
    )
    assert response.json()["body"] == "data"


async def test_status_forcelist_exhaustion(pool: HTTPConnectionPool) -> None:
    retry = Retry(total=2, status_forcelist=[500])
    with pytest.raises(MaxRetryError) as info:
        await pool.request("GET", "/status/500", retries=retry)
    assert isinstance(info.value.reason, ResponseError)
    response = await pool.request(
        "GET",
        "/status/500",
        retries=Retry(total=2, status_forcelist=[500], raise_on_status=False),
    )
    assert response.status == 500
    # As urllib3: the response carries the Retry in force for its attempt.
    assert response.retries is not None and len(response.retries.history) == 2
    assert_pool_exact(pool)


@pytest.mark.parametrize("code", [301, 302, 307, 308])
async def test_redirect_keeps_method_and_rewound_body(
    pool: HTTPConnectionPool, code: int
) -> None:
    for body in (b"payload", io.BytesIO(b"payload"), [b"pay", b"load"]):
        response = await pool.request("POST", f"/redirect/{code}?to=/echo", body=body)
        echoed = response.json()
        assert (echoed["method"], echoed["body"]) == ("POST", "payload")
        assert response.url is not None and response.url.endswith("/echo")
        assert (
            response.retries is not None and response.retries.history[0].status == code
        )


async def test_303_switches_to_get_and_drops_body_headers(
    pool: HTTPConnectionPool,
) -> None:
    response = await pool.request(
        "POST",
        "/redirect/303?to=/echo",
        body=b"payload",
        headers={"Content-Type": "text/plain", "X-Keep": "1"},
    )
    echoed = response.json()
    assert (echoed["method"], echoed["body"]) == ("GET", "")
    names = {name.lower() for name, _ in echoed["headers"]}
    assert "content-type" not in names and "x-keep" in names
    head = await pool.request("HEAD", "/redirect/303?to=/echo")
    assert head.status == 200


async def test_one_shot_body_cannot_follow_307(pool: HTTPConnectionPool) -> None:
    def once() -> object:
        yield b"x"

    with pytest.raises(UnrewindableBodyError):
        await pool.request("POST", "/redirect/307?to=/echo", body=once())
    assert_pool_exact(pool)


async def test_redirect_limits(pool: HTTPConnectionPool) -> None:
    with pytest.raises(MaxRetryError) as info:
        await pool.request("GET", "/redirect-loop")
    assert "too many redirects" in str(info.value.reason)
    # Default Retry(3): three redirects are followed, the fourth raises.
    response = await pool.request(
        "GET", "/redirect-loop", retries=Retry(3, raise_on_redirect=False)
    )
    assert response.status == 302
    assert response.retries is not None and len(response.retries.history) == 3
    options: list[dict[str, Any]] = [{"redirect": False}, {"retries": False}]
    for kw in options:
        response = await pool.request("GET", "/redirect/302?to=/echo", **kw)
        assert response.status == 302
        assert response.get_redirect_location() == "/echo"
    assert_pool_exact(pool)


async def test_redirect_to_other_host_is_host_changed_error(
    pool: HTTPConnectionPool,
) -> None:
    with pytest.raises(HostChangedError):
        await pool.request("GET", "/redirect/302?to=http://elsewhere.test/x")
    assert_pool_exact(pool)


async def test_cancel_during_backoff_sleep_releases_everything(
    pool: HTTPConnectionPool,
) -> None:
    retry = Retry(total=5, status_forcelist=[503], backoff_factor=5)
    scope = trio.CancelScope()
    async with trio.open_nursery() as nursery:

        async def request() -> None:
            with scope:
                await pool.request("GET", "/fail/5?key=bo&mode=503", retries=retry)

        nursery.start_soon(request)
        await trio.sleep(1)  # two attempts, then the 10 s backoff sleep
        stats = pool.statistics()
        scope.cancel()
    assert scope.cancelled_caught
    assert (stats.in_use, stats.tokens_free) == (0, pool.maxsize)
    assert_pool_exact(pool)


async def test_deadline_shorter_than_backoff_ends_at_once(
    pool: HTTPConnectionPool,
) -> None:
    retry = Retry(total=3, status_forcelist=[503])
    with trio.move_on_after(5):
        start = trio.current_time()
        with pytest.raises(MaxRetryError):
            await pool.request(
                "GET", "/fail/3?key=dl&mode=503&retry_after=30", retries=retry
            )
        assert trio.current_time() - start < 2
