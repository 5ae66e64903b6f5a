"""Unix domain sockets (the Docker API case), against nginx listening on one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from tests.integration.nginx import NginxHandle, start_nginx
from trio_pool import HTTPConnectionPool, PoolManager

from .conftest import assert_pool_exact

LOCATIONS = """
        listen unix:%(dir)s/api.sock;
        location = /version { return 200 "host=$host via=$server_addr"; }
"""


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxHandle]:
    with start_nginx(tmp_path_factory.mktemp("uds"), locations=LOCATIONS) as running:
        yield running


async def test_a_pool_over_a_unix_socket(nginx: NginxHandle) -> None:
    socket_path = str(nginx.directory / "api.sock")
    with trio.fail_after(10):
        async with HTTPConnectionPool("docker", uds=socket_path) as pool:
            for _ in range(3):
                response = await pool.request("GET", "/version")
                # Host comes from ``host``; nginx answered on its socket.
                assert response.data == f"host=docker via=unix:{socket_path}".encode()
            assert pool.statistics().created == 1  # kept alive and reused
            assert_pool_exact(pool)


async def test_a_manager_option_routes_every_origin_to_the_socket(
    nginx: NginxHandle,
) -> None:
    socket_path = str(nginx.directory / "api.sock")
    with trio.fail_after(10):
        async with PoolManager(uds=socket_path) as http:
            response = await http.request("GET", "http://localhost/version")
            assert response.data == f"host=localhost via=unix:{socket_path}".encode()


async def test_a_missing_socket_is_a_new_connection_error(tmp_path: Path) -> None:
    from trio_pool import MaxRetryError, NewConnectionError

    async with HTTPConnectionPool("docker", uds=str(tmp_path / "none.sock")) as pool:
        with pytest.raises(MaxRetryError) as caught:
            await pool.request("GET", "/", retries=1)
    assert isinstance(caught.value.reason, NewConnectionError)
