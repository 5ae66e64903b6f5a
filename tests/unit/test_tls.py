"""The pure TLS logic of ``trio_pool._tls``: no sockets, no event loop.

Handshakes, where a test needs a real peer certificate, run between two
``ssl.SSLObject``s over memory BIOs, synchronously.
"""

from __future__ import annotations

import datetime
import hashlib
import ssl
from pathlib import Path
from typing import Any

import certifi
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from trio_pool import SSLError
from trio_pool._tls import (
    TLSConfig,
    check_fingerprint,
    create_context,
    match_hostname,
    normalize_fingerprint,
    resolve_cert_reqs,
    resolve_ssl_version,
    resolve_tls_version,
    tls_hostname,
)
from trio_pool._translate import translate_errors

# -- helpers -----------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> Any:
    return trustme.CA()


@pytest.fixture(scope="module")
def leaf(ca: Any) -> Any:
    return ca.issue_cert("example.org", "127.0.0.1", "::1")


@pytest.fixture
def ca_file(tmp_path: Path, ca: Any) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def server_context(cert: Any, *, client_ca: Any = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    context.set_alpn_protocols(["h2", "http/1.1"])
    if client_ca is not None:
        client_ca.configure_trust(context)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def handshake(
    client: ssl.SSLContext, server: ssl.SSLContext, server_hostname: str
) -> ssl.SSLObject:
    """Run a whole handshake in memory; return the client's side."""
    bios = [ssl.MemoryBIO() for _ in range(4)]
    client_side = client.wrap_bio(bios[0], bios[1], server_hostname=server_hostname)
    server_side = server.wrap_bio(bios[2], bios[3], server_side=True)
    for _ in range(10):
        finished = 0
        for side in (client_side, server_side):
            try:
                side.do_handshake()
                finished += 1
            except ssl.SSLWantReadError:
                pass
        bios[2].write(bios[1].read())
        bios[0].write(bios[3].read())
        if finished == 2:
            return client_side
    raise AssertionError("the handshake did not finish")


def der(cert: Any) -> bytes:
    pem = cert.cert_chain_pems[0].bytes().decode("ascii")
    return ssl.PEM_cert_to_DER_cert(pem)


def ca_count(context: ssl.SSLContext) -> int:
    return context.cert_store_stats()["x509_ca"]


# -- option values -----------------------------------------------------------


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        (None, ssl.CERT_REQUIRED),
        (ssl.CERT_NONE, ssl.CERT_NONE),
        (2, ssl.CERT_REQUIRED),
        ("CERT_REQUIRED", ssl.CERT_REQUIRED),
        ("REQUIRED", ssl.CERT_REQUIRED),
        ("CERT_NONE", ssl.CERT_NONE),
        ("NONE", ssl.CERT_NONE),
        ("none", ssl.CERT_NONE),
        (" Cert_Optional ", ssl.CERT_OPTIONAL),
    ],
)
def test_resolve_cert_reqs(candidate: Any, expected: ssl.VerifyMode) -> None:
    resolved = resolve_cert_reqs(candidate)
    assert resolved == expected
    assert isinstance(resolved, ssl.VerifyMode)


@pytest.mark.parametrize("candidate", ["CERT_MAYBE", "", "PROTOCOL_TLS", 7, True, 2.0])
def test_resolve_cert_reqs_rejects(candidate: Any) -> None:
    with pytest.raises(ValueError, match="Unknown cert_reqs"):
        resolve_cert_reqs(candidate)


def test_resolve_tls_version() -> None:
    assert resolve_tls_version("v", None) is None
    assert resolve_tls_version("v", ssl.TLSVersion.TLSv1_3) is ssl.TLSVersion.TLSv1_3
    assert resolve_tls_version("v", 771) is ssl.TLSVersion.TLSv1_2
    for bad in ("TLSv1_2", 5, True):
        with pytest.raises(ValueError, match=r"v must be an ssl\.TLSVersion"):
            resolve_tls_version("v", bad)


def test_version_range_is_checked() -> None:
    with pytest.raises(ValueError, match=r"TLSv1_3\) is above ssl_maximum_version"):
        TLSConfig.from_options(
            ssl_minimum_version=ssl.TLSVersion.TLSv1_3,
            ssl_maximum_version=ssl.TLSVersion.TLSv1_2,
        )
    # The sentinels are not versions and never out of order.
    config = TLSConfig.from_options(
        ssl_minimum_version=ssl.TLSVersion.MINIMUM_SUPPORTED,
        ssl_maximum_version=ssl.TLSVersion.TLSv1_2,
    )
    assert config.context.maximum_version == ssl.TLSVersion.TLSv1_2


def test_normalize_fingerprint() -> None:
    sha1 = "AB:cd" * 10
    assert normalize_fingerprint(sha1) == "abcd" * 10
    assert normalize_fingerprint(" " + "0" * 64 + " ") == "0" * 64
    assert normalize_fingerprint("f" * 32) == "f" * 32
    with pytest.raises(ValueError, match="invalid length"):
        normalize_fingerprint("ab" * 17)
    with pytest.raises(ValueError, match="not hexadecimal"):
        normalize_fingerprint("zz" * 16)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("example.org", "example.org"),
        ("[::1]", "::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("[fe80::1%25eth0]", "fe80::1"),
        ("odd%name", "odd%name"),
    ],
)
def test_tls_hostname(host: str, expected: str) -> None:
    assert tls_hostname(host) == expected


# -- contexts ----------------------------------------------------------------


def test_create_context_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSLKEYLOGFILE", raising=False)
    context = create_context()
    assert context.protocol == ssl.PROTOCOL_TLS_CLIENT
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.maximum_version == ssl.TLSVersion.MAXIMUM_SUPPORTED
    assert context.options & ssl.OP_NO_COMPRESSION
    assert context.options & ssl.OP_NO_TICKET
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert not context.hostname_checks_common_name
    assert context.post_handshake_auth
    assert context.keylog_filename is None
    assert ca_count(context) == 0


def test_create_context_options(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SSLKEYLOGFILE", str(tmp_path / "keys.log"))
    context = create_context(
        ssl.CERT_NONE,
        minimum_version=ssl.TLSVersion.TLSv1_3,
        maximum_version=ssl.TLSVersion.TLSv1_3,
    )
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_NONE, False)
    assert context.minimum_version == context.maximum_version == ssl.TLSVersion.TLSv1_3
    assert context.keylog_filename == str(tmp_path / "keys.log")
    unchecked = create_context(check_hostname=False)
    assert (unchecked.verify_mode, unchecked.check_hostname) == (
        ssl.CERT_REQUIRED,
        False,
    )


def test_default_config_trusts_certifi_and_is_shared() -> None:
    first = TLSConfig.from_options()
    second = TLSConfig.from_options(cert_reqs="CERT_REQUIRED")
    assert first.context is second.context
    bundle = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    bundle.load_verify_locations(certifi.where())
    assert ca_count(first.context) == ca_count(bundle) > 10
    assert first.context.check_hostname
    assert first.verified
    # Other settings, other context.
    pinned = TLSConfig.from_options(assert_hostname="example.org")
    assert pinned.context is not first.context
    assert not pinned.context.check_hostname
    assert ca_count(pinned.context) == ca_count(bundle)


def test_cert_none_config() -> None:
    config = TLSConfig.from_options(cert_reqs="NONE")
    assert config.context.verify_mode == ssl.CERT_NONE
    assert not config.context.check_hostname
    assert ca_count(config.context) == 0
    assert not config.verified
    pinned = TLSConfig.from_options(
        cert_reqs=ssl.CERT_NONE, assert_fingerprint="0" * 64
    )
    assert pinned.verified


@pytest.mark.parametrize(
    "options",
    [{"assert_hostname": "other.example"}, {"assert_hostname": False}],
)
def test_own_name_check_turns_off_openssls(options: dict[str, Any]) -> None:
    config = TLSConfig.from_options(**options)
    assert not config.context.check_hostname
    assert config.context.verify_mode == ssl.CERT_REQUIRED
    assert config.assert_hostname == options["assert_hostname"]


def test_ca_options_replace_certifi(ca: Any, ca_file: Path) -> None:
    from_file = TLSConfig.from_options(ca_certs=str(ca_file))
    assert ca_count(from_file.context) == 1
    from_pem = TLSConfig.from_options(ca_cert_data=ca.cert_pem.bytes().decode())
    assert ca_count(from_pem.context) == 1
    from_der = TLSConfig.from_options(ca_cert_data=der_of_ca(ca))
    assert ca_count(from_der.context) == 1
    from_dir = TLSConfig.from_options(ca_cert_dir=str(ca_file.parent))
    assert ca_count(from_dir.context) == 0  # read lazily, during handshakes
    assert from_dir.context.check_hostname


def der_of_ca(ca: Any) -> bytes:
    return ssl.PEM_cert_to_DER_cert(ca.cert_pem.bytes().decode("ascii"))


def test_ca_certs_expands_user(ca_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(ca_file.parent))
    config = TLSConfig.from_options(ca_certs="~/ca.pem")
    assert ca_count(config.context) == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ca_certs": "/nonexistent/ca.pem"}, "Could not load CA certificates"),
        ({"ca_cert_data": "not a certificate"}, "Could not load CA certificates"),
        ({"ca_cert_dir": "/nonexistent/dir"}, "ca_cert_dir is not a directory"),
        ({"cert_file": "/nonexistent/c.pem"}, r"client certificate \(/nonexistent"),
        (
            {"cert_file": "/nonexistent/c.pem", "key_file": "/nonexistent/k.pem"},
            r"\(/nonexistent/c.pem \+ /nonexistent/k.pem\)",
        ),
    ],
)
def test_unloadable_files(options: dict[str, Any], message: str) -> None:
    with pytest.raises(SSLError, match=message) as info:
        TLSConfig.from_options(**options)
    if "ca_cert_dir" not in options:
        assert isinstance(info.value.__cause__, (OSError, ValueError))


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"key_file": "k.pem"}, ValueError, "key_file needs cert_file"),
        ({"key_password": "pw"}, ValueError, "key_password needs cert_file"),
        ({"assert_hostname": True}, ValueError, "assert_hostname must be"),
        ({"assert_hostname": ""}, ValueError, "assert_hostname must be"),
        ({"assert_fingerprint": "abc"}, ValueError, "invalid length"),
        ({"cert_reqs": "SOMETIMES"}, ValueError, "Unknown cert_reqs"),
        ({"ssl_context": "ctx"}, TypeError, "must be an ssl.SSLContext"),
    ],
)
def test_bad_options(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        TLSConfig.from_options(**options)


# -- client certificates -----------------------------------------------------


def write_key(leaf: Any, path: Path, password: bytes | None) -> Path:
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None)
    encryption: serialization.KeySerializationEncryption = (
        serialization.NoEncryption()
        if password is None
        else serialization.BestAvailableEncryption(password)
    )
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
    )
    return path


def test_client_certificate_loading(leaf: Any, tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    plain = write_key(leaf, tmp_path / "plain.pem", None)
    locked = write_key(leaf, tmp_path / "locked.pem", b"s3cret")
    TLSConfig.from_options(cert_file=str(cert), key_file=str(plain))
    TLSConfig.from_options(cert_file=cert, key_file=locked, key_password="s3cret")
    TLSConfig.from_options(cert_file=cert, key_file=locked, key_password=b"s3cret")
    with pytest.raises(SSLError, match="encrypted, key_password is required"):
        TLSConfig.from_options(cert_file=cert, key_file=locked)
    with pytest.raises(SSLError, match="Could not load the client certificate"):
        TLSConfig.from_options(cert_file=cert, key_file=locked, key_password="wrong")


def test_client_certificate_keeps_certifi_but_own_context(
    leaf: Any, tmp_path: Path
) -> None:
    combined = tmp_path / "both.pem"
    leaf.private_key_and_cert_chain_pem.write_to_path(str(combined))
    config = TLSConfig.from_options(cert_file=str(combined))
    # A client certificate must not end up in the shared default context.
    assert config.context is not TLSConfig.from_options().context
    assert ca_count(config.context) > 10


# -- a caller's own context --------------------------------------------------


def test_ssl_context_takes_precedence(ca_file: Path) -> None:
    own = ssl.create_default_context(cafile=str(ca_file))
    own.minimum_version = ssl.TLSVersion.TLSv1_3
    config = TLSConfig.from_options(
        ssl_context=own, ssl_minimum_version=ssl.TLSVersion.TLSv1_2
    )
    assert config.context is own
    assert own.minimum_version == ssl.TLSVersion.TLSv1_3
    assert own.verify_mode == ssl.CERT_REQUIRED and own.check_hostname
    assert ca_count(own) == 1  # no certifi added


def test_ssl_context_adjusted_like_urllib3(ca: Any) -> None:
    own = ssl.create_default_context()
    config = TLSConfig.from_options(
        ssl_context=own, cert_reqs="CERT_NONE", ca_cert_data=der_of_ca(ca)
    )
    assert (own.verify_mode, own.check_hostname) == (ssl.CERT_NONE, False)
    assert not config.verified
    unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    TLSConfig.from_options(ssl_context=unverified, cert_reqs=ssl.CERT_REQUIRED)
    # Turning verification on does not turn a name check on behind its back.
    assert (unverified.verify_mode, unverified.check_hostname) == (
        ssl.CERT_REQUIRED,
        False,
    )
    named = ssl.create_default_context()
    TLSConfig.from_options(ssl_context=named, assert_fingerprint="a" * 40)
    assert not named.check_hostname


# -- fingerprints --------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "sha256"])
def test_check_fingerprint(leaf: Any, algorithm: str) -> None:
    cert = der(leaf)
    digest = hashlib.new(algorithm, cert).hexdigest()
    check_fingerprint(cert, digest)
    check_fingerprint(
        cert, ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
    )
    check_fingerprint(cert, digest.upper())
    wrong = ("0" if digest[0] != "0" else "1") + digest[1:]
    with pytest.raises(SSLError) as info:
        check_fingerprint(cert, wrong)
    assert str(info.value) == (
        f'Fingerprints did not match. Expected "{wrong}", got "{digest}".'
    )


def test_check_fingerprint_without_certificate() -> None:
    with pytest.raises(SSLError, match="No certificate for the peer"):
        check_fingerprint(None, "0" * 40)


# -- host names ----------------------------------------------------------------


def san(*entries: tuple[str, str]) -> dict[str, Any]:
    return {
        "subject": ((("commonName", "common.example"),),),
        "subjectAltName": entries,
    }


@pytest.mark.parametrize(
    ("pattern", "host"),
    [
        ("example.org", "example.org"),
        ("Example.ORG", "example.org"),
        ("example.org", "EXAMPLE.org."),
        ("*.example.org", "www.example.org"),
        ("*.example.org", "xn--bcher-kva.example.org"),
    ],
)
def test_dns_names_that_match(pattern: str, host: str) -> None:
    match_hostname(san(("DNS", "other.test"), ("DNS", pattern)), host)


@pytest.mark.parametrize(
    ("pattern", "host"),
    [
        ("example.org", "www.example.org"),
        ("*.example.org", "example.org"),
        ("*.example.org", "a.b.example.org"),
        ("*.example.org", ".example.org"),
        ("*.org", "example.org"),
        ("w*.example.org", "www.example.org"),
        ("*.*.example.org", "a.b.example.org"),
        ("www.*.org", "www.example.org"),
        ("127.0.0.1", "127.0.0.1"),  # a DNS entry never matches an address
    ],
)
def test_dns_names_that_do_not_match(pattern: str, host: str) -> None:
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        match_hostname(san(("DNS", pattern)), host)
    kind = "IP address" if host[0].isdigit() else "Hostname"
    assert info.value.verify_message == (
        f"{kind} mismatch, certificate is not valid for {host!r}."
    )
    assert info.value.verify_code == 62


def test_ip_addresses() -> None:
    cert = san(("DNS", "example.org"), ("IP Address", "0:0:0:0:0:0:0:1\n"))
    match_hostname(cert, "::1")
    match_hostname(cert, "[0::1]")
    with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
        match_hostname(cert, "127.0.0.1")
    match_hostname(san(("IP Address", "127.0.0.1")), "127.0.0.1")


def test_common_name_is_never_used() -> None:
    for cert in (san(), {}, None):
        with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
            match_hostname(cert, "common.example")


# -- verify_peer, with real handshakes -------------------------------------------


def test_alpn_offers_http11(ca: Any, leaf: Any) -> None:
    config = TLSConfig.from_options(ca_cert_data=der_of_ca(ca))
    client = handshake(config.context, server_context(leaf), "example.org")
    assert client.selected_alpn_protocol() == "http/1.1"


def test_verify_peer_assert_hostname(ca: Any, leaf: Any) -> None:
    config = TLSConfig.from_options(
        ca_cert_data=der_of_ca(ca), assert_hostname="example.org"
    )
    # The handshake checks no name; verify_peer checks assert_hostname
    # instead of the name the handshake used.
    client = handshake(config.context, server_context(leaf), "elsewhere.test")
    config.verify_peer(client.getpeercert, "elsewhere.test")
    wrong = TLSConfig.from_options(
        ca_cert_data=der_of_ca(ca), assert_hostname="elsewhere.test"
    )
    client = handshake(wrong.context, server_context(leaf), "example.org")
    with pytest.raises(ssl.SSLCertVerificationError, match=r"'elsewhere\.test'"):
        wrong.verify_peer(client.getpeercert, "example.org")


def test_verify_peer_ip_from_real_certificate(ca: Any, leaf: Any) -> None:
    own = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    own.check_hostname = False
    own.load_verify_locations(cadata=der_of_ca(ca))
    config = TLSConfig.from_options(ssl_context=own)
    # A caller's context that does not check names gets urllib3's own check.
    for address in ("127.0.0.1", "::1"):
        client = handshake(own, server_context(leaf), address)
        config.verify_peer(client.getpeercert, address)
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        config.verify_peer(client.getpeercert, "wrong.example")


def test_verify_peer_skips(ca: Any, leaf: Any) -> None:
    calls: list[bool] = []

    def getpeercert(binary_form: bool) -> Any:
        calls.append(binary_form)
        return {}

    checked_by_openssl = TLSConfig.from_options(ca_cert_data=der_of_ca(ca))
    no_name = TLSConfig.from_options(assert_hostname=False)
    unverified = TLSConfig.from_options(cert_reqs="CERT_NONE")
    for config in (checked_by_openssl, no_name, unverified):
        config.verify_peer(getpeercert, "anything.test")
    assert calls == []


def test_verify_peer_fingerprint_replaces_name_check(ca: Any, leaf: Any) -> None:
    digest = hashlib.sha256(der(leaf)).hexdigest()
    config = TLSConfig.from_options(
        ca_cert_data=der_of_ca(ca), assert_fingerprint=digest
    )
    client = handshake(config.context, server_context(leaf), "elsewhere.test")
    config.verify_peer(client.getpeercert, "elsewhere.test")
    other = TLSConfig.from_options(cert_reqs="CERT_NONE", assert_fingerprint="00" * 32)
    client = handshake(other.context, server_context(leaf), "example.org")
    with pytest.raises(SSLError, match=f'got "{digest}"'):
        other.verify_peer(client.getpeercert, "example.org")


# -- urllib3 compatibility: ssl_version, SSLKEYLOGFILE, commonName, messages ----


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        (None, None),
        (ssl.PROTOCOL_TLS, None),
        (ssl.PROTOCOL_TLS_CLIENT, None),
        ("PROTOCOL_TLS", None),
        ("TLS_CLIENT", None),
        ("PROTOCOL_SSLv23", None),
        (int(ssl.PROTOCOL_TLSv1_2), ssl.TLSVersion.TLSv1_2),
        (ssl.PROTOCOL_TLSv1_2, ssl.TLSVersion.TLSv1_2),
        ("PROTOCOL_TLSv1_2", ssl.TLSVersion.TLSv1_2),
        ("TLSv1_1", ssl.TLSVersion.TLSv1_1),
        (ssl.PROTOCOL_TLSv1, ssl.TLSVersion.TLSv1),
    ],
)
def test_resolve_ssl_version(candidate: Any, expected: Any) -> None:
    assert resolve_ssl_version(candidate) is expected


@pytest.mark.parametrize(
    "candidate", [ssl.PROTOCOL_TLS_SERVER, "SSLv3", "TLSv1_3", "", 99, True, 2.0]
)
def test_resolve_ssl_version_rejects(candidate: Any) -> None:
    with pytest.raises(ValueError, match="Unknown ssl_version"):
        resolve_ssl_version(candidate)


def test_ssl_version_pins_the_version_with_a_warning() -> None:
    with pytest.warns(FutureWarning, match="ssl_version option is deprecated"):
        config = TLSConfig.from_options(ssl_version="PROTOCOL_TLSv1_2")
    context = config.context
    assert context.minimum_version == context.maximum_version == ssl.TLSVersion.TLSv1_2
    assert context.check_hostname
    assert ca_count(context) > 10  # still certifi's roots


@pytest.mark.parametrize("negotiating", [ssl.PROTOCOL_TLS, ssl.PROTOCOL_TLS_CLIENT])
def test_ssl_version_that_negotiates_changes_nothing(negotiating: Any) -> None:
    # No warning (filterwarnings = error would fail the test), no limits.
    config = TLSConfig.from_options(
        ssl_version=negotiating, ssl_minimum_version=ssl.TLSVersion.TLSv1_3
    )
    assert config.context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert config.context.maximum_version == ssl.TLSVersion.MAXIMUM_SUPPORTED
    plain = TLSConfig.from_options(ssl_version=negotiating)
    assert plain.context is TLSConfig.from_options().context


@pytest.mark.parametrize(
    "limit",
    [
        {"ssl_minimum_version": ssl.TLSVersion.TLSv1_2},
        {"ssl_maximum_version": ssl.TLSVersion.TLSv1_3},
    ],
)
def test_ssl_version_conflicts_with_version_range(limit: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="ssl_version cannot be combined"):
        TLSConfig.from_options(ssl_version=ssl.PROTOCOL_TLSv1_2, **limit)


def test_ssl_version_is_ignored_with_a_context() -> None:
    own = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # As urllib3: the caller's context decides, and no warning is given.
    config = TLSConfig.from_options(ssl_context=own, ssl_version="TLSv1_2")
    assert config.context.maximum_version == ssl.TLSVersion.MAXIMUM_SUPPORTED
    with pytest.raises(ValueError, match="Unknown ssl_version"):
        TLSConfig.from_options(ssl_context=own, ssl_version="SSLv2")


def test_keylog_file_is_expanded(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("TP_KEYLOG_DIR", str(tmp_path / "logs"))
    (tmp_path / "logs").mkdir()
    monkeypatch.setenv("SSLKEYLOGFILE", "${TP_KEYLOG_DIR}/keys.log")
    assert create_context().keylog_filename == str(tmp_path / "logs" / "keys.log")
    shared = TLSConfig.from_options().context
    assert shared.keylog_filename == str(tmp_path / "logs" / "keys.log")
    monkeypatch.setenv("SSLKEYLOGFILE", "~/home.log")
    assert create_context().keylog_filename == str(tmp_path / "home.log")
    # A changed variable gives another shared context, not the old file.
    assert TLSConfig.from_options().context.keylog_filename == str(
        tmp_path / "home.log"
    )


def issue_cn_only(ca: Any, common_name: str, directory: Path) -> tuple[Path, Path]:
    """A certificate from ``ca`` naming its host in the commonName only.

    trustme always adds a subjectAltName, so this one is built by hand.
    Returns the paths of the certificate (PEM) and of its private key.
    """
    issuer = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    issuer_key = serialization.load_pem_private_key(
        ca.private_key_pem.bytes(), password=None
    )
    assert isinstance(issuer_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(ski, False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            False,
        )
        .sign(issuer_key, hashes.SHA256())
    )
    cert_path = directory / f"{common_name}-cn-only.pem"
    key_path = directory / f"{common_name}-cn-only.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def cn_only_server(ca: Any, common_name: str, directory: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*issue_cn_only(ca, common_name, directory))
    return context


def subject(common_name: str, *entries: tuple[str, str]) -> dict[str, Any]:
    cert: dict[str, Any] = {"subject": ((("commonName", common_name),),)}
    if entries:
        cert["subjectAltName"] = entries
    return cert


def test_common_name_when_asked_and_no_san() -> None:
    match_hostname(subject("example.org"), "EXAMPLE.org", common_name=True)
    match_hostname(subject("*.example.org"), "www.example.org", common_name=True)
    cases = [
        (subject("example.org"), "other.org"),
        # Any DNS or IP entry in the SAN rules the commonName out.
        (subject("example.org", ("DNS", "other.org")), "example.org"),
        (subject("example.org", ("IP Address", "127.0.0.1")), "example.org"),
        # An address is never looked for in the commonName.
        (subject("127.0.0.1"), "127.0.0.1"),
    ]
    for cert, host in cases:
        with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
            match_hostname(cert, host, common_name=True)
    # Other kinds of entry do not count as names.
    email = subject("example.org", ("email", "a@example.org"))
    match_hostname(email, "example.org", common_name=True)


def _cn_context(ca: Any, checks_common_name: bool) -> ssl.SSLContext:
    own = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    own.load_verify_locations(cadata=der_of_ca(ca))
    own.hostname_checks_common_name = checks_common_name
    return own


def test_assert_hostname_honours_contexts_common_name_setting(
    ca: Any, tmp_path: Path
) -> None:
    server = cn_only_server(ca, "cn.example", tmp_path)
    config = TLSConfig.from_options(
        ssl_context=_cn_context(ca, True), assert_hostname="cn.example"
    )
    client = handshake(config.context, server, "127.0.0.1")
    config.verify_peer(client.getpeercert, "127.0.0.1")
    strict = TLSConfig.from_options(
        ssl_context=_cn_context(ca, False), assert_hostname="cn.example"
    )
    client = handshake(strict.context, server, "127.0.0.1")
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        strict.verify_peer(client.getpeercert, "127.0.0.1")


def test_own_contexts_never_use_the_common_name(ca: Any, tmp_path: Path) -> None:
    config = TLSConfig.from_options(
        ca_cert_data=der_of_ca(ca), assert_hostname="cn.example"
    )
    assert not config.user_context
    client = handshake(config.context, cn_only_server(ca, "cn.example", tmp_path), "x")
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        config.verify_peer(client.getpeercert, "x")


class _PoolLike:
    host = "example.org"
    port = None
    default_port = 443


def _ssl_message(error: Exception, phase: str, **kw: Any) -> str:
    with pytest.raises(SSLError) as info, translate_errors(phase, **kw):
        raise error
    assert info.value.__cause__ is error
    return str(info.value)


def test_ssl_error_message_says_what_failed_and_with_whom() -> None:
    verify = ssl.SSLCertVerificationError(
        1,
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
        "unable to get local issuer certificate (_ssl.c:1006)",
    )
    verify.reason = "CERTIFICATE_VERIFY_FAILED"
    verify.verify_message = "unable to get local issuer certificate"
    pool = _PoolLike()
    assert _ssl_message(verify, "connect", pool=pool, host=pool.host) == (
        "TLS handshake with example.org:443 failed: "
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
        "unable to get local issuer certificate (_ssl.c:1006)"
    )
    # A proxy's handshake: the host is the proxy's, the pool's port is not.
    assert _ssl_message(verify, "connect", pool=pool, host="proxy.test").startswith(
        "TLS handshake with proxy.test failed: [SSL: CERTIFICATE_VERIFY_FAILED]"
    )
    bad_record = ssl.SSLError(1, "[SSL: BAD_RECORD_MAC] bad record mac")
    assert _ssl_message(bad_record, "receive", pool=pool) == (
        "TLS error on the connection to example.org:443: "
        "[SSL: BAD_RECORD_MAC] bad record mac"
    )


def test_ssl_error_message_from_one_argument_and_ipv6() -> None:
    mismatch = ssl.SSLCertVerificationError("Hostname mismatch, not valid for 'x'.")
    assert _ssl_message(mismatch, "connect", host="::1") == (
        "TLS handshake with [::1] failed: Hostname mismatch, not valid for 'x'."
    )
    bare = ssl.SSLCertVerificationError("certificate verify failed")
    bare.verify_message = "certificate has expired"
    assert _ssl_message(bare, "connect") == (
        "TLS handshake with the server failed: certificate verify failed: "
        "certificate has expired"
    )
