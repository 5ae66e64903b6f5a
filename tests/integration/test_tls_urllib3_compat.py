"""TLS behaviour that must match urllib3 2.x, over real loopback handshakes.

The deprecated ``ssl_version`` option, an ``SSLKEYLOGFILE`` that needs
expanding, a caller's context that allows commonName matching while
``assert_hostname`` is in force, and what an ``SSLError`` says. Certificates
come from trustme CAs (the fixtures of ``test_https``).
"""

from __future__ import annotations

import ssl
import warnings
from pathlib import Path
from typing import Any

import pytest
import trio
import trustme

from tests.integration import test_https as https
from tests.unit.test_tls import issue_cn_only
from trio_pool import HTTPSConnectionPool, MaxRetryError, SSLError, TraceEvent
from trio_pool._tls import TLSConfig
from trio_pool._transport import start_tls
from trio_pool.testing import Server, open_server

# pytest takes fixtures from module attributes: test_https's, shared here
# (ca and ca_file come from conftest.py).
_deadline = https._deadline
leaf = https.leaf
server = https.server
get_ok = https.get_ok
ssl_cause = https.ssl_cause
ssl_failure = https.ssl_failure

# -- ssl_version ----------------------------------------------------------------


async def handshake_version(config: TLSConfig, port: int) -> str | None:
    """Run a real handshake with ``config`` to 127.0.0.1:port; its version."""
    tcp = await trio.open_tcp_stream("127.0.0.1", port)
    tls = await start_tls(tcp, config, "localhost")
    try:
        version: str | None = tls.version()
        return version
    finally:
        await tls.aclose()


def tls13_only(leaf: Any) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    leaf.configure_cert(context)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context


async def test_ssl_version_tls12_pins_the_handshake(
    server: Server, leaf: Any, ca_file: str
) -> None:
    with pytest.warns(FutureWarning, match="ssl_version option is deprecated"):
        pinned = TLSConfig.from_options(ca_certs=ca_file, ssl_version="TLSv1_2")
    # The server would take TLS 1.3; the pinned client offers 1.2 only.
    assert await handshake_version(pinned, server.port) == "TLSv1.2"
    async with open_server(ssl_context=tls13_only(leaf)) as modern:
        with pytest.raises(trio.BrokenResourceError) as info:
            await handshake_version(pinned, modern.port)
    assert isinstance(info.value.__cause__, ssl.SSLError)


async def test_ssl_version_tls_negotiates(server: Server, ca_file: str) -> None:
    config = TLSConfig.from_options(ca_certs=ca_file, ssl_version=ssl.PROTOCOL_TLS)
    assert await handshake_version(config, server.port) == "TLSv1.3"


async def test_pool_accepts_ssl_version(server: Server, ca_file: str) -> None:
    events: list[TraceEvent] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            pool = HTTPSConnectionPool(
                "localhost",
                server.port,
                ca_certs=ca_file,
                ssl_version=ssl.PROTOCOL_TLSv1_2,
                trace=events.append,
            )
        except TypeError as exc:
            if "ssl_version" not in str(exc):
                raise
            pytest.xfail("HTTPSConnectionPool does not pass ssl_version on yet")
    assert [w.category for w in caught] == [FutureWarning]
    async with pool:
        await get_ok(pool)
    (connect,) = [e for e in events if e.name == "connect"]
    assert connect.detail["tls"] == "TLSv1.2"


# -- SSLKEYLOGFILE ----------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["$TP_KEYLOG_DIR/keys.log", "~/keys.log"])
async def test_keylog_file_at_the_expanded_path(
    server: Server,
    ca_file: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    spelling: str,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TP_KEYLOG_DIR", str(home))
    monkeypatch.setenv("SSLKEYLOGFILE", spelling)
    monkeypatch.chdir(cwd)
    async with HTTPSConnectionPool("localhost", server.port, ca_certs=ca_file) as pool:
        await get_ok(pool)
    lines = (home / "keys.log").read_text().splitlines()
    # TLS 1.3 logs its traffic secrets, TLS 1.2 a CLIENT_RANDOM line.
    assert any(line.startswith(("CLIENT_", "SERVER_")) for line in lines), lines
    assert list(cwd.iterdir()) == []  # nothing named "$TP_KEYLOG_DIR" or "~"


# -- assert_hostname and hostname_checks_common_name --------------------------------


def common_name_context(ca: Any, checks_common_name: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(context)
    context.hostname_checks_common_name = checks_common_name
    return context


async def cn_only_server(ca: Any, tmp_path: Path) -> Any:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*issue_cn_only(ca, "localhost", tmp_path))
    return open_server(ssl_context=context)


@pytest.mark.parametrize(
    "assert_hostname", ["localhost", None], ids=["ours", "openssl"]
)
async def test_context_allowing_common_name(
    ca: Any, tmp_path: Path, assert_hostname: str | None
) -> None:
    """Whichever side checks the name, the context's setting is honoured."""
    async with (
        await cn_only_server(ca, tmp_path) as running,
        HTTPSConnectionPool(
            "127.0.0.1" if assert_hostname else "localhost",
            running.port,
            ssl_context=common_name_context(ca, True),
            assert_hostname=assert_hostname,
        ) as pool,
    ):
        await get_ok(pool)


async def test_context_refusing_common_name(ca: Any, tmp_path: Path) -> None:
    async with (
        await cn_only_server(ca, tmp_path) as running,
        HTTPSConnectionPool(
            "127.0.0.1",
            running.port,
            ssl_context=common_name_context(ca, False),
            assert_hostname="localhost",
        ) as pool,
    ):
        error = await ssl_failure(pool)
    assert "Hostname mismatch, certificate is not valid for 'localhost'" in str(error)
    assert running.requests == []


# -- what an SSLError says ----------------------------------------------------------


async def test_ssl_error_names_the_handshake_and_the_peer(server: Server) -> None:
    other = trustme.CA()
    async with HTTPSConnectionPool(
        "localhost", server.port, ca_cert_data=other.cert_pem.bytes().decode()
    ) as pool:
        error = await ssl_failure(pool)
        with pytest.raises(MaxRetryError) as info:
            await pool.request("GET", "/echo", retries=0)
    expected = (
        f"TLS handshake with localhost:{server.port} failed: "
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
        "unable to get local issuer certificate"
    )
    assert str(error).startswith(expected), str(error)
    cause = ssl_cause(error)
    assert isinstance(cause, ssl.SSLCertVerificationError)
    assert error.__cause__ is cause
    assert str(info.value.reason).startswith(expected)


async def test_ssl_error_for_our_own_name_check(server: Server, ca_file: str) -> None:
    async with HTTPSConnectionPool(
        "127.0.0.1", server.port, ca_certs=ca_file, assert_hostname="other.org"
    ) as pool:
        error = await ssl_failure(pool)
    assert str(error) == (
        f"TLS handshake with 127.0.0.1:{server.port} failed: "
        "Hostname mismatch, certificate is not valid for 'other.org'."
    )
    assert isinstance(error.__cause__, ssl.SSLCertVerificationError)
    assert not isinstance(error, ssl.SSLError)  # ours, chained from ssl's
    assert isinstance(error, SSLError)
