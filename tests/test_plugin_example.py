"""Tests written the way a trio_pool user would write them."""

import pytest
import trio

import trio_pool
from trio_pool.testing import Request, Response, Server

pytestmark = pytest.mark.trio


async def test_client_sends_json(
    trio_pool_server: Server, trio_pool_manager: trio_pool.PoolManager
) -> None:
    @trio_pool_server.route("/items")
    async def create_item(request: Request) -> Response:
        return Response.json({"created": True}, status=201)

    r = await trio_pool_manager.request(
        "POST", trio_pool_server.url + "/items", json={"name": "widget"}
    )

    assert r.status == 201
    assert r.json() == {"created": True}
    sent = trio_pool_server.requests[-1]
    assert sent.header("Content-Type") == "application/json"
    assert sent.body == b'{"name":"widget"}'


async def test_client_gives_up_on_a_stalled_server(
    trio_pool_server: Server, trio_pool_manager: trio_pool.PoolManager
) -> None:
    # /fault/stall reads the request and never answers.
    with pytest.raises(trio_pool.MaxRetryError) as caught:
        await trio_pool_manager.request(
            "GET",
            trio_pool_server.url + "/fault/stall",
            timeout=trio_pool.Timeout(read=0.1),
            retries=trio_pool.Retry(1),
        )
    assert isinstance(caught.value.reason, trio_pool.ReadTimeoutError)
    # One attempt and one retry, each on a fresh connection.
    assert trio_pool_server.request_count == 2


async def test_https_with_the_test_ca(
    trio_pool_tls_server: Server, trio_pool_manager: trio_pool.PoolManager
) -> None:
    with trio.fail_after(5):
        r = await trio_pool_manager.request("GET", trio_pool_tls_server.url + "/echo")
    assert r.status == 200
    assert r.json()["path"] == "/echo"
