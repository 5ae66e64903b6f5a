"""HTTPSConnectionPool against the bundled server over TLS, with trustme CAs.

Every certificate here comes from a throwaway trustme CA, so nothing depends
on the machine's trust store. Errors are checked with ``retries=False`` to see
the raw exception, and once through ``MaxRetryError.reason``.
"""

from __future__ import annotations

import datetime
import hashlib
import ssl
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.integration.conftest import assert_pool_exact
from trio_pool import (
    ConnectTimeoutError,
    HTTPSConnectionPool,
    InsecureRequestWarning,
    LocationValueError,
    MaxRetryError,
    ProtocolError,
    SSLError,
    Timeout,
    TraceEvent,
    connection_from_url,
)
from trio_pool._connection import WATCH_GRACE
from trio_pool.testing import Response, Server, open_server

# -- certificates and servers -------------------------------------------------


@pytest.fixture(autouse=True)
def _deadline(nursery: trio.Nursery) -> None:
    """Fail, rather than hang, a test that runs for more than 10 seconds.

    pytest-trio runs each fixture in its own task, so a cancel scope here
    would not cover the test; a crashing task in its nursery cancels it.
    """

    async def watchdog() -> None:
        await trio.sleep(10)
        raise TimeoutError("test still running after 10 s")

    nursery.start_soon(watchdog)


@pytest.fixture(scope="module")
def leaf(ca: Any) -> Any:
    return ca.issue_cert("localhost", "127.0.0.1")


def server_context(
    cert: Any,
    *,
    client_ca: Any = None,
    maximum_version: ssl.TLSVersion | None = None,
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    if client_ca is not None:
        client_ca.configure_trust(context)
        context.verify_mode = ssl.CERT_REQUIRED
    if maximum_version is not None:
        context.maximum_version = maximum_version
    return context


@asynccontextmanager
async def tls_server(cert: Any, **kw: Any) -> AsyncIterator[Server]:
    idle = kw.pop("idle_close_after", None)
    async with open_server(
        ssl_context=server_context(cert, **kw), idle_close_after=idle
    ) as server:
        yield server


@asynccontextmanager
async def tls_pair(
    cert: Any,
    host: str = "localhost",
    *,
    server_kw: dict[str, Any] | None = None,
    **pool_kw: Any,
) -> AsyncIterator[tuple[Server, HTTPSConnectionPool]]:
    """A TLS server with ``cert``, and a pool connecting to it as ``host``."""
    async with (
        tls_server(cert, **(server_kw or {})) as server,
        HTTPSConnectionPool(host, server.port, **pool_kw) as pool,
    ):
        yield server, pool


@pytest.fixture
async def server(leaf: Any) -> AsyncIterator[Server]:
    async with tls_server(leaf) as running:
        yield running


async def get_ok(pool: HTTPSConnectionPool, path: str = "/echo") -> str:
    response = await pool.request("GET", path)
    assert response.status == 200
    return response.headers["X-Connection-Id"]


async def ssl_failure(pool: HTTPSConnectionPool, path: str = "/echo") -> SSLError:
    """The raw error of a request that must fail TLS; the pool stays exact."""
    with pytest.raises(SSLError) as info:
        await pool.request("GET", path, retries=False)
    assert_pool_exact(pool)
    assert pool.statistics().created == 0
    return info.value


def ssl_cause(error: BaseException) -> BaseException | None:
    """The first error from ``ssl`` along the chain of causes."""
    cause = error.__cause__
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__
    return cause


# -- verification succeeds -----------------------------------------------------


async def test_https_request_and_reuse(server: Server, ca_file: str) -> None:
    async with HTTPSConnectionPool("localhost", server.port, ca_certs=ca_file) as pool:
        first = await get_ok(pool)
        # Let TLS 1.3 session tickets arrive while the idle watch is reading.
        await trio.sleep(0.05)
        assert pool.statistics().dropped == 0
        assert await get_ok(pool) == first
        stats = assert_pool_exact(pool)
        assert (stats.created, stats.reused, stats.dropped) == (1, 1, 0)
    assert server.connections_opened == 1


async def test_trace_reports_tls_version_and_alpn(server: Server, ca_file: str) -> None:
    events: list[TraceEvent] = []
    async with HTTPSConnectionPool(
        "localhost", server.port, ca_certs=ca_file, trace=events.append
    ) as pool:
        await get_ok(pool)
    (connect,) = [e for e in events if e.name == "connect"]
    assert connect.origin == f"https://localhost:{server.port}"
    assert str(connect.detail["tls"]).startswith("TLSv1.")
    assert connect.detail["alpn"] in ("http/1.1", None)


async def test_connection_from_url_gives_https_pool(
    server: Server, ca_file: str
) -> None:
    pool = connection_from_url(f"https://localhost:{server.port}/", ca_certs=ca_file)
    assert isinstance(pool, HTTPSConnectionPool)
    assert (pool.scheme, pool.default_port) == ("https", 443)
    async with pool:
        response = await pool.request("GET", "/echo")
        assert response.json()["path"] == "/echo"
        assert response.url == f"https://localhost:{server.port}/echo"


async def test_ip_address_certificate(server: Server, ca_file: str) -> None:
    async with HTTPSConnectionPool("127.0.0.1", server.port, ca_certs=ca_file) as pool:
        await get_ok(pool)


@pytest.mark.parametrize("form", ["pem", "der"])
async def test_ca_cert_data(server: Server, ca: Any, form: str) -> None:
    pem = ca.cert_pem.bytes().decode("ascii")
    data: str | bytes = pem if form == "pem" else ssl.PEM_cert_to_DER_cert(pem)
    async with HTTPSConnectionPool("localhost", server.port, ca_cert_data=data) as pool:
        await get_ok(pool)


def _tlv(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + content


def _oid(dotted: str) -> bytes:
    first, second, *rest = (int(part) for part in dotted.split("."))
    body = bytearray([40 * first + second])
    for arc in rest:
        septets = [arc & 0x7F]
        arc >>= 7
        while arc:
            septets.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(reversed(septets))
    return _tlv(0x06, bytes(body))


def subject_hash(pem: bytes) -> str:
    """OpenSSL's ``X509_NAME_hash``, the file name ``openssl rehash`` uses.

    SHA-1 of the subject in OpenSSL's canonical form (each value a
    UTF8String, ASCII lower-cased, runs of spaces collapsed, without the
    outer SEQUENCE), first four bytes read little-endian.
    """
    canon = b""
    for rdn in x509.load_pem_x509_certificate(pem).subject.rdns:
        entries = b""
        for attr in rdn:
            value = " ".join(str(attr.value).split()).lower().encode()
            entries += _tlv(0x30, _oid(attr.oid.dotted_string) + _tlv(0x0C, value))
        canon += _tlv(0x31, entries)
    return hashlib.sha1(canon).digest()[3::-1].hex()


async def test_ca_cert_dir(server: Server, ca: Any, tmp_path: Path) -> None:
    pem = ca.cert_pem.bytes()
    (tmp_path / f"{subject_hash(pem)}.0").write_bytes(pem)
    async with HTTPSConnectionPool(
        "localhost", server.port, ca_cert_dir=str(tmp_path)
    ) as pool:
        await get_ok(pool)
    # The same directory with the certificate under another name: OpenSSL
    # finds nothing, which shows the name above is what made it work.
    (tmp_path / f"{subject_hash(pem)}.0").rename(tmp_path / "ca.pem")
    async with HTTPSConnectionPool(
        "localhost", server.port, ca_cert_dir=str(tmp_path)
    ) as pool:
        assert "unable to get local issuer" in str(await ssl_failure(pool))


async def test_ssl_context_takes_precedence(server: Server, ca_file: str) -> None:
    context = ssl.create_default_context(cafile=ca_file)
    async with HTTPSConnectionPool(
        "localhost", server.port, ssl_context=context, ca_certs=None
    ) as pool:
        await get_ok(pool)
    assert pool.ssl_context is context


# -- verification fails ----------------------------------------------------------


async def test_unknown_ca(server: Server) -> None:
    other = trustme.CA()
    async with HTTPSConnectionPool(
        "localhost", server.port, ca_cert_data=other.cert_pem.bytes().decode()
    ) as pool:
        error = await ssl_failure(pool)
    assert "unable to get local issuer certificate" in str(error)
    assert isinstance(ssl_cause(error), ssl.SSLCertVerificationError)
    assert server.requests == []


async def test_default_trust_is_certifi_not_our_ca(server: Server) -> None:
    async with HTTPSConnectionPool("localhost", server.port) as pool:
        assert "unable to get local issuer" in str(await ssl_failure(pool))


async def test_error_through_max_retry_error(server: Server) -> None:
    other = trustme.CA()
    async with HTTPSConnectionPool(
        "localhost", server.port, ca_cert_data=other.cert_pem.bytes().decode()
    ) as pool:
        with pytest.raises(MaxRetryError) as info:
            await pool.request("GET", "/echo", retries=1)
        assert_pool_exact(pool)
    reason = info.value.reason
    assert isinstance(reason, SSLError)
    assert "unable to get local issuer certificate" in str(reason)
    assert server.connections_opened == 2


async def test_hostname_mismatch(ca: Any, ca_file: str) -> None:
    async with tls_pair(ca.issue_cert("example.org"), ca_certs=ca_file) as (_, pool):
        error = await ssl_failure(pool)
    assert "Hostname mismatch, certificate is not valid for 'localhost'" in str(error)
    assert isinstance(ssl_cause(error), ssl.SSLCertVerificationError)


async def test_ip_address_mismatch(ca: Any, ca_file: str) -> None:
    cert = ca.issue_cert("localhost")
    async with tls_pair(cert, "127.0.0.1", ca_certs=ca_file) as (_, pool):
        error = await ssl_failure(pool)
    assert "IP address mismatch" in str(error)


async def test_expired_certificate(ca: Any, ca_file: str) -> None:
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
    expired = ca.issue_cert(
        "localhost", not_before=past - datetime.timedelta(days=30), not_after=past
    )
    async with (
        tls_server(expired) as server,
        HTTPSConnectionPool("localhost", server.port, ca_certs=ca_file) as pool,
    ):
        error = await ssl_failure(pool)
    assert "certificate has expired" in str(error)
    assert isinstance(ssl_cause(error), ssl.SSLCertVerificationError)


# -- names: assert_hostname, server_hostname ---------------------------------------


async def test_assert_hostname(ca: Any, ca_file: str) -> None:
    async with tls_server(ca.issue_cert("example.org")) as server:
        async with HTTPSConnectionPool(
            "localhost", server.port, ca_certs=ca_file, assert_hostname="example.org"
        ) as pool:
            await get_ok(pool)
        async with HTTPSConnectionPool(
            "localhost", server.port, ca_certs=ca_file, assert_hostname="other.org"
        ) as pool:
            error = await ssl_failure(pool)
    assert "Hostname mismatch, certificate is not valid for 'other.org'" in str(error)
    assert isinstance(ssl_cause(error), ssl.SSLCertVerificationError)


async def test_assert_hostname_false_still_verifies_the_chain(ca: Any) -> None:
    async with tls_server(ca.issue_cert("example.org")) as server:
        async with HTTPSConnectionPool(
            "localhost",
            server.port,
            ca_cert_data=ca.cert_pem.bytes().decode(),
            assert_hostname=False,
        ) as pool:
            await get_ok(pool)
        async with HTTPSConnectionPool(
            "localhost",
            server.port,
            ca_cert_data=trustme.CA().cert_pem.bytes().decode(),
            assert_hostname=False,
        ) as pool:
            assert "unable to get local issuer" in str(await ssl_failure(pool))


async def test_server_hostname_is_sni_and_verified(ca: Any, ca_file: str) -> None:
    seen: list[str | None] = []
    context = server_context(ca.issue_cert("example.org"))
    context.sni_callback = lambda _obj, name, _ctx: seen.append(name)
    async with open_server(ssl_context=context) as server:
        async with HTTPSConnectionPool(
            "127.0.0.1", server.port, ca_certs=ca_file, server_hostname="example.org"
        ) as pool:
            await get_ok(pool)
        async with HTTPSConnectionPool(
            "127.0.0.1", server.port, ca_certs=ca_file, server_hostname="other.org"
        ) as pool:
            assert "not valid for 'other.org'" in str(await ssl_failure(pool))
    assert seen == ["example.org", "other.org"]
    # The request's Host header is still the pool's host.
    headers = {name.lower(): value for name, value in server.requests[0].headers}
    assert headers["host"] == f"127.0.0.1:{server.port}"


async def test_invalid_tls_host_name_fails_at_construction() -> None:
    with pytest.raises(LocationValueError, match="Invalid host name for TLS"):
        HTTPSConnectionPool("localhost", server_hostname=".leading-dot")


# -- fingerprints --------------------------------------------------------------


def colons(digest: str) -> str:
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2)).upper()


def leaf_digest(cert: Any, algorithm: str) -> str:
    pem = cert.cert_chain_pems[0].bytes().decode("ascii")
    return hashlib.new(algorithm, ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "sha256"])
@pytest.mark.parametrize("spelling", [str, colons])
async def test_fingerprint_good(
    ca: Any, ca_file: str, algorithm: str, spelling: Callable[[str], str]
) -> None:
    cert = ca.issue_cert("example.org")
    pin = spelling(leaf_digest(cert, algorithm))
    # The pin stands in for the name check (example.org is not localhost),
    # as in urllib3.
    async with tls_pair(cert, ca_certs=ca_file, assert_fingerprint=pin) as (_, pool):
        await get_ok(pool)


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "sha256"])
@pytest.mark.parametrize("spelling", [str, colons])
async def test_fingerprint_bad(
    server: Server,
    leaf: Any,
    ca_file: str,
    algorithm: str,
    spelling: Callable[[str], str],
) -> None:
    actual = leaf_digest(leaf, algorithm)
    wrong = ("1" if actual[0] == "0" else "0") + actual[1:]
    async with HTTPSConnectionPool(
        "localhost", server.port, ca_certs=ca_file, assert_fingerprint=spelling(wrong)
    ) as pool:
        error = await ssl_failure(pool)
    assert (
        str(error) == f'Fingerprints did not match. Expected "{wrong}", got "{actual}".'
    )
    # Checked before a single request byte was sent.
    assert server.requests == []


async def test_fingerprint_with_cert_none_needs_no_ca(
    server: Server, leaf: Any
) -> None:
    async with HTTPSConnectionPool(
        "localhost",
        server.port,
        cert_reqs="CERT_NONE",
        assert_fingerprint=leaf_digest(leaf, "sha256"),
    ) as pool:
        # A pinned certificate is verified: no InsecureRequestWarning (the
        # suite turns warnings into errors).
        await get_ok(pool)


async def test_bad_fingerprint_fails_at_construction() -> None:
    with pytest.raises(ValueError, match="Fingerprint of invalid length"):
        HTTPSConnectionPool("localhost", assert_fingerprint="ab:cd")


# -- client certificates -------------------------------------------------------


def write_client_files(
    cert: Any, directory: Path, password: bytes | None
) -> tuple[str, str]:
    cert_path = directory / "client.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), None)
    encryption: serialization.KeySerializationEncryption = (
        serialization.NoEncryption()
        if password is None
        else serialization.BestAvailableEncryption(password)
    )
    key_path = directory / "client.key"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
    )
    return str(cert_path), str(key_path)


@pytest.fixture
async def mtls_server(ca: Any, leaf: Any) -> AsyncIterator[Server]:
    async with tls_server(leaf, client_ca=ca) as running:
        yield running


@pytest.mark.parametrize("password", [None, b"s3cret"])
async def test_client_certificate(
    mtls_server: Server, ca: Any, ca_file: str, tmp_path: Path, password: bytes | None
) -> None:
    cert_file, key_file = write_client_files(
        ca.issue_cert("client@example.org"), tmp_path, password
    )
    async with HTTPSConnectionPool(
        "localhost",
        mtls_server.port,
        ca_certs=ca_file,
        cert_file=cert_file,
        key_file=key_file,
        key_password=None if password is None else password.decode(),
    ) as pool:
        await get_ok(pool)
        await get_ok(pool)


async def test_client_certificate_and_key_in_one_file(
    mtls_server: Server, ca: Any, ca_file: str, tmp_path: Path
) -> None:
    both = tmp_path / "both.pem"
    ca.issue_cert("client@example.org").private_key_and_cert_chain_pem.write_to_path(
        str(both)
    )
    async with HTTPSConnectionPool(
        "localhost", mtls_server.port, ca_certs=ca_file, cert_file=str(both)
    ) as pool:
        await get_ok(pool)


async def test_client_certificate_missing_tls12(
    mtls_server: Server, ca: Any, ca_file: str, tmp_path: Path
) -> None:
    tls12: dict[str, Any] = {
        "ca_certs": ca_file,
        "ssl_maximum_version": ssl.TLSVersion.TLSv1_2,
    }
    # In TLS 1.2 the server refuses during the handshake: a connect error.
    # (The bundled server closes without sending its alert, hence no reason.)
    async with HTTPSConnectionPool("localhost", mtls_server.port, **tls12) as pool:
        error = await ssl_failure(pool)
    assert isinstance(ssl_cause(error), ssl.SSLError)
    assert mtls_server.requests == []
    cert_file, key_file = write_client_files(
        ca.issue_cert("client@example.org"), tmp_path, None
    )
    async with HTTPSConnectionPool(
        "localhost", mtls_server.port, cert_file=cert_file, key_file=key_file, **tls12
    ) as pool:
        await get_ok(pool)


async def test_client_certificate_missing_tls13(
    mtls_server: Server, ca_file: str
) -> None:
    # In TLS 1.3 the client's handshake is over before the server looks at
    # its certificate: the request is sent, and the server hangs up instead
    # of answering it.
    async with HTTPSConnectionPool(
        "localhost", mtls_server.port, ca_certs=ca_file
    ) as pool:
        with pytest.raises((SSLError, ProtocolError)):
            await pool.request("GET", "/echo", retries=False)
        assert_pool_exact(pool)
    assert mtls_server.requests == []


async def test_encrypted_key_without_password_fails_at_construction(
    ca: Any, tmp_path: Path
) -> None:
    cert_file, key_file = write_client_files(ca.issue_cert("c.test"), tmp_path, b"pw")
    with pytest.raises(SSLError, match="encrypted, key_password is required"):
        HTTPSConnectionPool("localhost", cert_file=cert_file, key_file=key_file)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"key_file": "client.key"}, ValueError),
        ({"ca_certs": "/nonexistent/ca.pem"}, SSLError),
        ({"ca_cert_dir": "/nonexistent/"}, SSLError),
        ({"cert_reqs": "MAYBE"}, ValueError),
    ],
)
async def test_bad_options_fail_at_construction(
    options: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        HTTPSConnectionPool("localhost", **options)


# -- versions and CERT_NONE ----------------------------------------------------


async def test_minimum_version_above_servers_maximum(leaf: Any, ca_file: str) -> None:
    async with tls_server(leaf, maximum_version=ssl.TLSVersion.TLSv1_2) as server:
        async with HTTPSConnectionPool(
            "localhost",
            server.port,
            ca_certs=ca_file,
            ssl_minimum_version=ssl.TLSVersion.TLSv1_3,
        ) as pool:
            error = await ssl_failure(pool)
        assert isinstance(ssl_cause(error), ssl.SSLError)
        assert server.requests == []
        # The same server and trust, with versions that overlap: fine.
        async with HTTPSConnectionPool(
            "localhost",
            server.port,
            ca_certs=ca_file,
            ssl_minimum_version=ssl.TLSVersion.TLSv1_2,
            ssl_maximum_version=ssl.TLSVersion.TLSv1_2,
        ) as pool:
            await get_ok(pool)


@pytest.mark.parametrize("cert_reqs", [ssl.CERT_NONE, "CERT_NONE", "NONE"])
async def test_cert_none_works_and_warns(server: Server, cert_reqs: Any) -> None:
    async with HTTPSConnectionPool(
        "localhost", server.port, cert_reqs=cert_reqs
    ) as pool:
        with pytest.warns(InsecureRequestWarning, match="Unverified HTTPS") as record:
            await get_twice(pool)
    assert len(record) == 2  # once per request, as urllib3 warns


async def test_insecure_warning_as_error_opens_nothing(server: Server) -> None:
    # Under -W error the warning is an exception: it comes before the
    # connection is opened, so nothing is left half-open.
    async with HTTPSConnectionPool("localhost", server.port, cert_reqs="NONE") as pool:
        with warnings.catch_warnings():
            warnings.simplefilter("error", InsecureRequestWarning)
            with pytest.raises(InsecureRequestWarning):
                await pool.request("GET", "/echo", retries=False)
        assert_pool_exact(pool)
        assert pool.statistics().created == 0
    assert server.connections_opened == 0


async def get_twice(pool: HTTPSConnectionPool) -> None:
    assert await get_ok(pool) == await get_ok(pool)


# -- broken servers, timeouts, cancellation ------------------------------------


Handler = Callable[[trio.SocketStream], Awaitable[None]]


@asynccontextmanager
async def raw_listener(handler: Handler) -> AsyncIterator[int]:
    """A TCP listener on loopback serving ``handler``; yields its port."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, handler, listeners)
        yield listeners[0].socket.getsockname()[1]
        nursery.cancel_scope.cancel()


async def pump(source: trio.abc.ReceiveStream, sink: trio.abc.SendStream) -> None:
    async for data in source:
        await sink.send_all(data)
    await trio.aclose_forcefully(sink)


async def test_garbage_instead_of_handshake(server: Server, ca_file: str) -> None:
    accepted = 0

    async def junk_once_then_forward(client: trio.SocketStream) -> None:
        nonlocal accepted
        accepted += 1
        async with client:
            if accepted == 1:
                await client.send_all(b"HTTP/1.1 200 OK\r\n\r\n" + b"\x00junk" * 100)
                return
            upstream = await trio.open_tcp_stream("127.0.0.1", server.port)
            async with upstream, trio.open_nursery() as nursery:
                nursery.start_soon(pump, client, upstream)
                nursery.start_soon(pump, upstream, client)

    async with (
        raw_listener(junk_once_then_forward) as port,
        HTTPSConnectionPool("localhost", port, ca_certs=ca_file) as pool,
    ):
        error = await ssl_failure(pool)
        assert isinstance(ssl_cause(error), ssl.SSLError)
        # The same pool, the next connection: works.
        await get_ok(pool)
        await get_ok(pool)
        stats = assert_pool_exact(pool)
        assert (stats.created, stats.reused) == (1, 1)


@asynccontextmanager
async def silent_listener() -> AsyncIterator[tuple[int, trio.Event]]:
    """Accepts and never answers; the event is set once the client has closed."""
    client_closed = trio.Event()

    async def hold(client: trio.SocketStream) -> None:
        async with client:
            while await client.receive_some():
                pass
        client_closed.set()

    async with raw_listener(hold) as port:
        yield port, client_closed


async def test_cancelled_during_handshake(ca_file: str) -> None:
    async with (
        silent_listener() as (port, client_closed),
        HTTPSConnectionPool("localhost", port, ca_certs=ca_file, maxsize=2) as pool,
    ):
        with trio.move_on_after(0.2) as scope:
            await pool.request("GET", "/echo")
        assert scope.cancelled_caught
        stats = assert_pool_exact(pool)
        assert (stats.in_use, stats.tokens_free, stats.created) == (0, 2, 0)
        # The half-open TLS stream was closed, not left behind.
        await client_closed.wait()


async def test_handshake_within_connect_timeout(ca_file: str) -> None:
    async with (
        silent_listener() as (port, client_closed),
        HTTPSConnectionPool(
            "localhost", port, ca_certs=ca_file, timeout=Timeout(connect=0.2)
        ) as pool,
    ):
        with pytest.raises(ConnectTimeoutError, match=r"connect timeout=0\.2"):
            await pool.request("GET", "/echo", retries=False)
        assert_pool_exact(pool)
        await client_closed.wait()


# -- the idle watch over TLS -----------------------------------------------------


async def wait_dropped(pool: HTTPSConnectionPool, count: int) -> None:
    while pool.statistics().dropped < count:
        await trio.sleep(0.01)


async def test_server_closing_idle_tls_connection_is_noticed(
    leaf: Any, ca_file: str
) -> None:
    closing = {"idle_close_after": 0.1}
    async with tls_pair(leaf, server_kw=closing, ca_certs=ca_file) as (_, pool):
        first = await get_ok(pool)
        with trio.fail_after(WATCH_GRACE + 2):
            await wait_dropped(pool, 1)
        stats = assert_pool_exact(pool)
        assert (stats.idle, stats.dropped) == (0, 1)
        # The next request opens a new connection instead of failing.
        assert await get_ok(pool) != first
        assert pool.statistics().created == 2


@pytest.mark.parametrize("mode", ["close", "stray bytes"])
async def test_tls_connection_dead_within_the_watch_grace_is_not_reused(
    leaf: Any, ca_file: str, mode: str
) -> None:
    """Checked out before its task started watching (within WATCH_GRACE),
    a TLS connection that got a close or stray bytes meanwhile is probed at
    checkout and replaced, not used."""
    server_kw = {"idle_close_after": 0.05} if mode == "close" else {}
    async with tls_pair(leaf, server_kw=server_kw, ca_certs=ca_file) as (server, pool):

        @server.raw_route("/then-garbage")
        async def then_garbage(request: Any, conn: Any) -> None:
            await conn.send_response(Response(body=b"ok"))
            await trio.sleep(0.05)
            await conn.send(b"HTTP/1.1 200 Stray\r\n\r\n")
            await trio.sleep_forever()

        path = "/then-garbage" if mode == "stray bytes" else "/echo"
        first = await pool.request("GET", path, preload_content=True)
        assert first.status == 200
        await trio.sleep(0.15)  # the server acts; still inside the grace
        assert pool.statistics().dropped == 0
        second = await pool.request("GET", "/echo")
        assert second.status == 200
        assert second.headers["X-Connection-Id"] != first.headers["X-Connection-Id"]
        stats = pool.statistics()
        assert (stats.created, stats.dropped) == (2, 1)
