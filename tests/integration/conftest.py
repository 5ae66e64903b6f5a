"""Fixtures: the bundled test server on loopback, and a pool pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme

from trio_pool import HTTPConnectionPool, PoolStatistics
from trio_pool._connection import ConnState
from trio_pool.testing import Server, open_server


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """A certificate authority for a module's TLS servers."""
    return trustme.CA()


@pytest.fixture
def ca_file(tmp_path: Path, ca: trustme.CA) -> str:
    """``ca``'s certificate as a PEM file, for ``ca_certs=``."""
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    async with open_server() as running:
        yield running


@pytest.fixture
async def pool(server: Server) -> AsyncIterator[HTTPConnectionPool]:
    async with HTTPConnectionPool(server.host, server.port, maxsize=4) as opened:
        yield opened


def assert_pool_exact(pool: HTTPConnectionPool) -> PoolStatistics:
    """Nothing leased, every token free, every idle connection really idle."""
    stats = pool.statistics()
    assert stats.in_use == 0, stats
    assert stats.tokens_free == pool.maxsize, stats
    assert stats.waiting == 0, stats
    assert all(conn.state is ConnState.IDLE for conn in pool._idle)
    assert set(pool._idle) <= pool._conns
    assert not [c for c in pool._conns if c.state is ConnState.ACTIVE]
    return stats
