"""HTTP/2 against the bundled h2 test server: cancellation at every
checkpoint, and every fault mode, each followed by exact books."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import trio
import trustme

from tests.unit.test_cancel_points import cancel_at_each_step
from trio_pool import (
    HTTPConnectionPool,
    HTTPSConnectionPool,
    IncompleteRead,
    MaxRetryError,
    PoolManager,
    ProtocolError,
    ReadTimeoutError,
    Retry,
    StreamRefusedError,
    Timeout,
)
from trio_pool.testing import (
    H2Server,
    H2Stream,
    Request,
    Response,
    open_h2_server,
    pattern,
)

DEADLINE = 20


@pytest.fixture(autouse=True)
def _deadline(nursery: trio.Nursery) -> None:
    """Fail, rather than hang, a test still running after DEADLINE seconds
    (a task crashing in the fixture nursery cancels the test)."""

    async def watchdog() -> None:
        await trio.sleep(DEADLINE)
        raise TimeoutError(f"test still running after {DEADLINE} s")

    nursery.start_soon(watchdog)


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
async def h2c() -> AsyncIterator[H2Server]:
    async with open_h2_server() as server:
        once_refused: set[str] = set()

        @server.raw_route("/refuse-once")
        async def refuse_once(request: Request, stream: H2Stream) -> None:
            if request.target in once_refused:
                await stream.send_response(Response.text("second time lucky"))
                return
            once_refused.add(request.target)
            stream.reset(0x7)  # REFUSED_STREAM

        yield server


def h2c_pool(server: H2Server, **kw: Any) -> HTTPConnectionPool:
    return HTTPConnectionPool(server.host, server.port, http2="prior-knowledge", **kw)


def assert_h2_exact(pool: HTTPConnectionPool) -> None:
    stats = pool.statistics()
    assert stats.in_use == 0, stats
    assert stats.streams_active == 0, stats
    assert stats.tokens_free == pool.maxsize, stats
    assert stats.waiting == 0, stats
    for conn in pool._h2_conns:
        # Our count of streams and h2's own move in lock-step.
        assert conn.active == conn.open_outbound_streams == 0, conn
        assert conn.token_lease is None


# -- cancel at every checkpoint -----------------------------------------------------


async def small_get(pool: HTTPConnectionPool) -> None:
    response = await pool.request("GET", "/echo")
    assert response.version == 20


async def streamed_get_read_halfway(pool: HTTPConnectionPool) -> None:
    response = await pool.request("GET", "/bytes/200000", preload_content=False)
    assert await response.read(100_000) == pattern(200_000)[:100_000]
    await response.release_conn()


async def post_larger_than_the_window(pool: HTTPConnectionPool) -> None:
    body = pattern(300_000)  # the server's stream window is 64 KiB
    response = await pool.request("POST", "/echo-body", body=body)
    assert response.data == body


async def retry_after_refused_stream(pool: HTTPConnectionPool) -> None:
    # A fresh target each run, so the first attempt is always refused.
    retry_after_refused_stream.runs += 1  # type: ignore[attr-defined]
    target = f"/refuse-once?run={retry_after_refused_stream.runs}"  # type: ignore[attr-defined]
    response = await pool.request("POST", target, body=b"not idempotent")
    assert response.data == b"second time lucky"


retry_after_refused_stream.runs = 0  # type: ignore[attr-defined]


async def follow_redirect(pool: HTTPConnectionPool) -> None:
    response = await pool.request("GET", "/redirect/302?to=/echo")
    assert response.status == 200


@pytest.mark.parametrize(
    "flavour",
    [
        small_get,
        streamed_get_read_halfway,
        post_larger_than_the_window,
        retry_after_refused_stream,
        follow_redirect,
    ],
)
async def test_cancel_at_every_checkpoint_over_h2(
    h2c: H2Server, flavour: Callable[[HTTPConnectionPool], Awaitable[None]]
) -> None:
    async with h2c_pool(h2c, maxsize=2, block=True) as pool:
        await small_get(pool)

        async def check() -> None:
            assert_h2_exact(pool)
            await small_get(pool)
            assert_h2_exact(pool)

        steps = await cancel_at_each_step(lambda: flavour(pool), check)
        # An h2 GET waits only at checkout and for its response: few steps.
        assert steps > 1, f"only {steps} checkpoints: suspiciously few"
        # The connection stayed in the pool through every cancellation.
        assert pool.statistics().created == 1
        assert pool.statistics().h2_connections == 1
    record = h2c.record(1)
    assert record.active_streams == 0


async def test_a_cancelled_stream_is_reset_and_the_connection_kept(
    h2c: H2Server,
) -> None:
    async with h2c_pool(h2c) as pool:
        with trio.move_on_after(0.2):
            await pool.request("GET", "/fault/stall")
        await h2c.wait_until(lambda s: bool(s.record(1).resets_received))
        assert h2c.record(1).resets_received[0][1] == 0x8  # CANCEL
        assert pool.statistics().streams_reset == 1
        await small_get(pool)
        assert pool.statistics().created == 1
        assert_h2_exact(pool)


async def test_manager_statistics_sum_the_http2_figures(h2c: H2Server) -> None:
    base = f"http://{h2c.host}:{h2c.port}"
    async with PoolManager(http2="prior-knowledge") as http:
        streamed = await http.request("GET", f"{base}/echo", preload_content=False)
        stats = http.statistics()
        assert (stats.pools, stats.h2_connections, stats.streams_active) == (1, 1, 1)
        await streamed.read()
        with trio.move_on_after(0.2):
            await http.request("GET", f"{base}/fault/stall")
        stats = http.statistics()
        assert (stats.streams_active, stats.streams_reset) == (0, 1)
        assert (stats.h2_connections, stats.created, stats.in_use) == (1, 1, 0)


# -- multiplexing and limits -------------------------------------------------


async def test_many_streams_share_one_connection(h2c: H2Server) -> None:
    async with h2c_pool(h2c, maxsize=1, block=True) as pool:
        await small_get(pool)  # the server's SETTINGS are in
        async with trio.open_nursery() as nursery:
            for _ in range(50):
                nursery.start_soon(small_get, pool)
        assert pool.statistics().created == 1
        assert h2c.record(1).peak_active_streams > 1
        assert_h2_exact(pool)


async def test_concurrent_first_requests_wait_for_the_first_connection(
    h2c: H2Server,
) -> None:
    # The protocol is unknown until the first connection is up: the others
    # wait for it instead of opening maxsize connections.
    async with h2c_pool(h2c, maxsize=10, block=True) as pool:
        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(small_get, pool)
        assert pool.statistics().created == 1
        assert_h2_exact(pool)


async def test_max_concurrent_streams_one_is_honoured() -> None:
    from trio_pool.testing import H2Faults

    faults = H2Faults(max_concurrent_streams=1)
    async with open_h2_server(faults=faults) as server:
        pool = h2c_pool(server, maxsize=1, block=True)
        async with pool, trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(small_get, pool)
        assert server.record(1).peak_active_streams == 1
        assert pool.statistics().created == 1


async def test_block_false_opens_an_extra_connection_closed_after_use() -> None:
    from trio_pool.testing import H2Faults

    faults = H2Faults(max_concurrent_streams=1)
    async with (
        open_h2_server(faults=faults) as server,
        h2c_pool(server, maxsize=1) as pool,
    ):
        if True:
            await small_get(pool)
            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(small_get, pool)
            await server.wait_until(lambda s: s.open_connections <= 1)
            assert pool.statistics().created > 1
            assert_h2_exact(pool)


# -- faults ---------------------------------------------------------------------------


async def test_refused_stream_is_retried_whatever_the_method(h2c: H2Server) -> None:
    async with h2c_pool(h2c) as pool:
        with pytest.raises(MaxRetryError) as caught:
            await pool.request("POST", "/fault/refuse", retries=Retry(2))
        assert isinstance(caught.value.reason, StreamRefusedError)
        assert h2c.request_count == 3  # tried, and retried twice
        assert_h2_exact(pool)
        await small_get(pool)


@pytest.mark.parametrize("code", ["INTERNAL_ERROR", "PROTOCOL_ERROR"])
async def test_a_reset_mid_body_fails_only_that_stream(
    h2c: H2Server, code: str
) -> None:
    async with h2c_pool(h2c) as pool:
        with pytest.raises(ProtocolError):
            await pool.request(
                "GET",
                f"/fault/reset-mid-body?n=100000&sent=1000&code={code}",
                retries=False,
            )
        await small_get(pool)
        assert pool.statistics().created == 1
        assert_h2_exact(pool)


async def test_goaway_streams_below_last_finish_the_rest_are_retried(
    h2c: H2Server,
) -> None:
    async with h2c_pool(h2c, maxsize=1, block=True) as pool:
        await small_get(pool)  # stream 1; SETTINGS in
        results: list[int] = []

        async def get(path: str) -> None:
            results.append((await pool.request("GET", path)).status)

        async with trio.open_nursery() as nursery:
            # Stream 3 asks for a GOAWAY(last=3) once 3 streams are open: 5 and
            # 7 were never processed and go to a new connection.
            nursery.start_soon(get, "/fault/goaway?wait_streams=3&last=3")
            await h2c.wait_until(lambda s: s.request_count >= 2)
            # Slow enough to be open (3 streams) when the server counts.
            nursery.start_soon(get, "/delay/0.3")
            nursery.start_soon(get, "/delay/0.3")
        assert results.count(200) == 3
        assert pool.statistics().created == 2
        assert_h2_exact(pool)


async def test_goaway_with_an_error_fails_the_connections_streams(
    h2c: H2Server,
) -> None:
    async with h2c_pool(h2c) as pool:
        with pytest.raises(ProtocolError):
            await pool.request(
                "GET", "/fault/goaway?code=ENHANCE_YOUR_CALM", retries=False
            )
        await small_get(pool)  # on a new connection
        assert pool.statistics().created == 2
        assert_h2_exact(pool)


@pytest.mark.parametrize(
    "path",
    [
        "/fault/push-promise",
        "/fault/huge-header",
        "/fault/continuation-flood",
        "/fault/garbage",
        "/fault/close-mid-body?n=100000&sent=1000",
        "/fault/close-mid-body?n=100000&sent=1000&how=reset",
    ],
)
async def test_broken_servers_give_a_clear_error_and_the_pool_recovers(
    h2c: H2Server, path: str
) -> None:
    async with h2c_pool(h2c) as pool:
        with pytest.raises((ProtocolError, IncompleteRead)):
            await pool.request("GET", path, retries=False)
        await small_get(pool)
        assert_h2_exact(pool)


async def test_garbage_instead_of_a_preface() -> None:
    from trio_pool.testing import H2Faults

    async with (
        open_h2_server(faults=H2Faults(preface=b"HTTP/1.1 400 Nope\r\n\r\n")) as server,
        h2c_pool(server) as pool,
    ):
        with pytest.raises(ProtocolError):
            await pool.request("GET", "/echo", retries=False)
        assert_h2_exact(pool)


async def test_ping_and_settings_changes_mid_connection(h2c: H2Server) -> None:
    async with h2c_pool(h2c) as pool:
        assert (await pool.request("GET", "/fault/ping?count=3")).status == 200
        await h2c.wait_until(lambda s: len(s.record(1).pings_acked) == 3)
        response = await pool.request("GET", "/fault/settings?max_concurrent_streams=2")
        assert response.status == 200
        await small_get(pool)
        (conn,) = pool._h2_conns
        assert conn.capacity == 2
        assert_h2_exact(pool)


async def test_zero_and_tiny_windows_still_move_every_byte() -> None:
    from trio_pool.testing import H2Faults

    faults = H2Faults(initial_window_size=0, window_update_delay=0.05)
    async with open_h2_server(faults=faults) as server, h2c_pool(server) as pool:
        body = pattern(100_000)
        response = await pool.request("POST", "/echo-body", body=body)
        assert response.data == body
        assert_h2_exact(pool)


async def test_a_negative_window_after_a_settings_change(h2c: H2Server) -> None:
    async with h2c_pool(h2c) as pool:
        await pool.request("GET", "/fault/shrink-window")
        body = pattern(200_000)
        response = await pool.request("POST", "/echo-body", body=body)
        assert response.data == body
        assert_h2_exact(pool)


async def test_an_early_4xx_during_an_upload(h2c: H2Server) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(200):
            yield pattern(16_384)

    async with h2c_pool(h2c) as pool:
        response = await pool.request(
            "POST", "/fault/early-response?status=413", body=chunks()
        )
        assert response.status == 413
        await small_get(pool)
        assert_h2_exact(pool)


async def test_a_per_stream_read_timeout_spares_the_other_streams(
    h2c: H2Server,
) -> None:
    async with h2c_pool(h2c, maxsize=1, block=True) as pool:
        await small_get(pool)
        async with trio.open_nursery() as nursery:

            async def stalled() -> None:
                with pytest.raises(ReadTimeoutError):
                    await pool.request(
                        "GET", "/fault/stall", timeout=Timeout(read=0.5), retries=False
                    )

            nursery.start_soon(stalled)
            for _ in range(5):
                await small_get(pool)  # meanwhile, on the same connection
        await small_get(pool)
        assert pool.statistics().created == 1
        assert_h2_exact(pool)


async def test_http_1_1_required_falls_back_and_is_remembered(
    ca: trustme.CA, ca_file: str
) -> None:
    async with open_h2_server(ssl_context=server_context(ca)) as server:

        @server.raw_route("/legacy")
        async def legacy(request: Request, stream: H2Stream) -> None:
            stream.reset(0xD)  # HTTP_1_1_REQUIRED

        @server.http1.route("/legacy")
        async def legacy_http1(request: Request) -> Response:
            return Response.text("over HTTP/1.1")

        async with HTTPSConnectionPool(
            "localhost", server.port, ca_certs=ca_file, http2=True
        ) as pool:
            response = await pool.request("GET", "/legacy")
            assert (response.version, response.data) == (11, b"over HTTP/1.1")
            response = await pool.request("GET", "/echo")
            assert response.version == 11  # remembered for the origin


# -- ALPN, managers, trace ---------------------------------------------------


async def test_alpn_picks_h2_and_falls_back_to_http_1_1(
    ca: trustme.CA, ca_file: str
) -> None:
    events: list[Any] = []
    async with open_h2_server(ssl_context=server_context(ca)) as server:
        async with HTTPSConnectionPool(
            "localhost", server.port, ca_certs=ca_file, http2=True, trace=events.append
        ) as pool:
            response = await pool.request("GET", "/echo")
            assert (response.version, response.version_string) == (20, "HTTP/2")
        connect = [e for e in events if e.name == "connect"]
        assert connect[0].detail["alpn"] == "h2"
    async with (
        open_h2_server(ssl_context=server_context(ca), alpn=("http/1.1",)) as server,
        HTTPSConnectionPool(
            "localhost", server.port, ca_certs=ca_file, http2=True
        ) as pool,
    ):
        assert (await pool.request("GET", "/echo")).version == 11


async def test_a_manager_with_http2_still_speaks_http_1_1_to_plain_http(
    h2c: H2Server, ca: trustme.CA, ca_file: str
) -> None:
    from trio_pool.testing import open_server

    async with (
        open_server() as plain,
        open_h2_server(ssl_context=server_context(ca)) as tls,
        PoolManager(http2=True, ca_certs=ca_file) as http,
    ):
        assert (await http.request("GET", f"{plain.url}/echo")).version == 11
        url = f"https://localhost:{tls.port}/redirect/302?to=/echo"
        response = await http.request("GET", url)
        assert (response.status, response.version) == (200, 20)


async def test_request_headers_map_to_http2(h2c: H2Server) -> None:
    async with h2c_pool(h2c) as pool:
        await pool.request(
            "GET",
            "/echo",
            headers={"Connection": "keep-alive", "X-Mine": "1", "TE": "trailers"},
        )
    request = h2c.requests[-1]
    names = [name for name, _ in request.headers]
    assert names[:4] == [":method", ":scheme", ":authority", ":path"]
    assert "connection" not in names
    assert ("x-mine", "1") in request.headers
    assert ("te", "trailers") in request.headers
    assert request.header(":authority") == f"{h2c.host}:{h2c.port}"


async def test_trailers_are_available_after_the_body(h2c: H2Server) -> None:
    async with h2c_pool(h2c) as pool:
        response = await pool.request("GET", "/trailers", preload_content=False)
        assert response.trailers is None  # not before the body's end
        await response.read()
        assert response.trailers is not None
        assert response.trailers["x-trailer"] == "yes"
        assert_h2_exact(pool)


async def test_keepalive_expiry_closes_with_goaway_no_error(h2c: H2Server) -> None:
    async with h2c_pool(h2c, keepalive_expiry=0.3) as pool:
        await small_get(pool)
        await h2c.wait_until(lambda s: bool(s.record(1).goaways_received))
        (goaway,) = h2c.record(1).goaways_received
        assert goaway.error_code == 0
        await h2c.wait_until(lambda s: s.open_connections == 0)
        assert pool.statistics().h2_connections == 0
        await small_get(pool)  # a new connection
        assert pool.statistics().created == 2


async def test_pool_close_sends_goaway(h2c: H2Server) -> None:
    async with h2c_pool(h2c) as pool:
        await small_get(pool)
    await h2c.wait_until(lambda s: bool(s.record(1).goaways_received))
    assert h2c.record(1).goaways_received[0].error_code == 0
