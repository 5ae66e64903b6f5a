"""pytest fixtures for testing code that uses trio_pool (a pytest11 plugin).

Installing trio_pool registers this module with pytest (entry point
``trio_pool``), so its fixtures are available in every test suite that has
trio_pool installed. The async fixtures need pytest-trio: mark the tests with
``@pytest.mark.trio`` or set ``trio_mode = true``.

Fixtures:

``trio_pool_server``
    A running :func:`~trio_pool.testing.open_server` on ``127.0.0.1``, fresh
    for each test.
``trio_pool_ca``
    A ``trustme.CA`` shared by the whole session. Tests that use it (or the
    TLS fixtures) are skipped with a clear message if trustme is not
    installed.
``trio_pool_tls_server``
    Like ``trio_pool_server`` but serving HTTPS, with a certificate from
    ``trio_pool_ca`` for ``127.0.0.1``, ``::1`` and ``localhost``.
``trio_pool_manager``
    An open :class:`~trio_pool.PoolManager` that trusts ``trio_pool_ca``
    (and nothing else), so it reaches both servers. Without trustme it is a
    plain ``PoolManager()`` that still works for ``http://``.

Every fixture's name starts with ``trio_pool_`` so that it cannot clash with
a suite's own fixtures. Nothing here imports trio_pool until a fixture is
used, so the plugin costs nothing in test suites that do not use it.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from trio_pool import PoolManager
    from trio_pool.testing import Server

__all__ = [
    "trio_pool_ca",
    "trio_pool_manager",
    "trio_pool_server",
    "trio_pool_tls_server",
]

#: The names the TLS server's certificate is valid for.
TLS_SERVER_NAMES = ("127.0.0.1", "::1", "localhost")

_NO_TRUSTME = (
    "trustme is not installed; the trio_pool TLS fixtures need it "
    "(pip install trustme, or trio-pool[test])"
)


@pytest.fixture(scope="session")
def _trio_pool_ca_or_none() -> Any:
    """The session's trustme CA, or None if trustme is not installed."""
    try:
        import trustme
    except ImportError:
        return None
    return trustme.CA()


@pytest.fixture(scope="session")
def trio_pool_ca(_trio_pool_ca_or_none: Any) -> Any:
    """A ``trustme.CA`` for the whole session; skips without trustme.

    Trust it in a client with ``trio_pool_ca.cert_pem.bytes().decode()`` as
    ``ca_cert_data=``, or ``trio_pool_ca.configure_trust(ssl_context)``.
    """
    if _trio_pool_ca_or_none is None:
        pytest.skip(_NO_TRUSTME)
    return _trio_pool_ca_or_none


@pytest.fixture
async def trio_pool_server() -> AsyncIterator[Server]:
    """A running local HTTP test server (``trio_pool.testing``)."""
    from trio_pool.testing import open_server

    async with open_server() as server:
        yield server


@pytest.fixture
async def trio_pool_tls_server(trio_pool_ca: Any) -> AsyncIterator[Server]:
    """A running local HTTPS test server, its certificate from ``trio_pool_ca``."""
    from trio_pool.testing import open_server

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trio_pool_ca.issue_cert(*TLS_SERVER_NAMES).configure_cert(context)
    async with open_server(ssl_context=context) as server:
        yield server


@pytest.fixture
async def trio_pool_manager(_trio_pool_ca_or_none: Any) -> AsyncIterator[PoolManager]:
    """An open ``PoolManager`` that trusts ``trio_pool_ca``.

    Closed (with every connection) at the end of the test.
    """
    from trio_pool import PoolManager

    kw: dict[str, Any] = {}
    if _trio_pool_ca_or_none is not None:
        kw["ca_cert_data"] = _trio_pool_ca_or_none.cert_pem.bytes().decode("ascii")
    async with PoolManager(**kw) as http:
        yield http
