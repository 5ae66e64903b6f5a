"""TLS settings: SSL contexts, certificate requirements, name and pin checks.

Everything here is synchronous and does no network I/O, so it is unit-tested
without sockets. An HTTPS pool turns its keyword arguments into one
:class:`TLSConfig` when it is constructed (so a bad option fails there, not on
the first request); ``_https`` then runs the handshake with ``config.context``
and calls :meth:`TLSConfig.verify_peer` before any request byte is sent.

Who checks what:

* the certificate chain: OpenSSL, during the handshake, unless
  ``verify_mode`` is ``CERT_NONE``;
* the host name: OpenSSL too (``check_hostname``), against the name the
  handshake was started with. Python's ``ssl`` cannot check a name other than
  the one sent as SNI, so ``assert_hostname="other"`` turns OpenSSL's check
  off and :func:`match_hostname` runs after the handshake instead;
* a pinned fingerprint: :func:`check_fingerprint`, after the handshake. As in
  urllib3, a pin replaces the host name check (the pin already names the one
  certificate that is acceptable) but not the chain check.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import os
import ssl
import sys
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias

from ._exceptions import SSLError

__all__ = [
    "ALPN_PROTOCOLS",
    "TLSConfig",
    "check_fingerprint",
    "create_context",
    "match_hostname",
    "normalize_fingerprint",
    "resolve_cert_reqs",
    "resolve_ssl_version",
    "resolve_tls_version",
    "tls_hostname",
]

#: Offered in the handshake; a server that picks nothing is fine too.
ALPN_PROTOCOLS: Final = ("http/1.1",)

#: Digest algorithms of a pinned fingerprint, told apart by hex length.
FINGERPRINT_HASHES: Final = {32: "md5", 40: "sha1", 64: "sha256"}

_DEFAULT_MINIMUM_VERSION: Final = ssl.TLSVersion.TLSv1_2

# Python 3.13's create_default_context() sets these; urllib3 follows it on
# 3.13+ only, because older Pythons' users may rely on laxer chains.
_VERIFY_FLAGS: Final = (
    ssl.VERIFY_X509_PARTIAL_CHAIN | ssl.VERIFY_X509_STRICT
    if sys.version_info >= (3, 13)
    else ssl.VerifyFlags(0)
)

# OpenSSL's verification error code for a name mismatch, so that our own
# check reports like OpenSSL's.
_X509_V_ERR_HOSTNAME_MISMATCH: Final = 62

AssertHostname: TypeAlias = "str | Literal[False] | None"
CADataLike: TypeAlias = "str | bytes | None"
#: ``getpeercert`` of an ``ssl.SSLObject`` (or a ``trio.SSLStream``).
GetPeerCert: TypeAlias = Callable[[bool], Any]


# -- option values -------------------------------------------------------------


def resolve_cert_reqs(candidate: int | str | None) -> ssl.VerifyMode:
    """Turn a ``cert_reqs`` option into an ``ssl.VerifyMode``.

    Args:
        candidate: None (meaning ``CERT_REQUIRED``), an ``ssl.CERT_*`` value,
            or its name with or without the ``CERT_`` prefix, in any case
            (``"CERT_NONE"``, ``"none"``, ``"REQUIRED"``).

    Raises:
        ValueError: anything else.
    """
    if candidate is None:
        return ssl.CERT_REQUIRED
    if isinstance(candidate, str):
        name = candidate.strip().upper()
        if not name.startswith("CERT_"):
            name = "CERT_" + name
        if name in ssl.VerifyMode.__members__:
            return ssl.VerifyMode[name]
    elif not isinstance(candidate, bool) and isinstance(candidate, int):
        try:
            return ssl.VerifyMode(candidate)
        except ValueError:
            pass
    raise ValueError(
        f"Unknown cert_reqs {candidate!r}: use ssl.CERT_REQUIRED, ssl.CERT_NONE "
        "or their names ('CERT_REQUIRED', 'REQUIRED', 'CERT_NONE', 'NONE')"
    )


def resolve_tls_version(name: str, value: object) -> ssl.TLSVersion | None:
    """Check an ``ssl_minimum_version``/``ssl_maximum_version`` option.

    Raises:
        ValueError: not an ``ssl.TLSVersion`` (nor its integer value).
    """
    if value is None or isinstance(value, ssl.TLSVersion):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return ssl.TLSVersion(value)
        except ValueError:
            pass
    raise ValueError(f"{name} must be an ssl.TLSVersion; got {value!r}")


def _protocol_versions() -> dict[str, ssl.TLSVersion | None]:
    # The deprecated ssl_version values, by name: the negotiating protocols
    # set no limit, a fixed one pins both ends of the range. Looked up with
    # getattr because newer Pythons may drop the old constants.
    versions: dict[str, ssl.TLSVersion | None] = {
        "PROTOCOL_TLS": None,
        "PROTOCOL_SSLv23": None,
        "PROTOCOL_TLS_CLIENT": None,
    }
    for version in ("TLSv1", "TLSv1_1", "TLSv1_2"):
        if hasattr(ssl, "PROTOCOL_" + version):
            versions["PROTOCOL_" + version] = ssl.TLSVersion[version]
    return versions


_PROTOCOL_VERSIONS: Final = _protocol_versions()


def resolve_ssl_version(candidate: object) -> ssl.TLSVersion | None:
    """The TLS version a deprecated ``ssl_version`` option pins, if any.

    Args:
        candidate: None, an ``ssl.PROTOCOL_*`` constant (or its integer
            value), or its name with or without the ``PROTOCOL_`` prefix
            (``"PROTOCOL_TLSv1_2"``, ``"TLSv1_2"``).

    Returns:
        None for None, ``PROTOCOL_TLS`` and ``PROTOCOL_TLS_CLIENT``, which
        negotiate and so limit nothing; otherwise the one version that
        ``PROTOCOL_TLSv1``, ``_TLSv1_1`` or ``_TLSv1_2`` stands for.

    Raises:
        ValueError: not one of those protocols (a server-side or unknown one).
    """
    if candidate is None:
        return None
    name: str | None = None
    if isinstance(candidate, str):
        name = candidate.strip()
        if not name.startswith("PROTOCOL_"):
            name = "PROTOCOL_" + name
    elif isinstance(candidate, int) and not isinstance(candidate, bool):
        name = next(
            (n for n in _PROTOCOL_VERSIONS if getattr(ssl, n) == candidate), None
        )
    if name is not None and name in _PROTOCOL_VERSIONS:
        return _PROTOCOL_VERSIONS[name]
    raise ValueError(
        f"Unknown ssl_version {candidate!r}: use ssl_minimum_version and "
        "ssl_maximum_version (ssl.TLSVersion) instead"
    )


def _versions_from_ssl_version(
    ssl_version: object,
    minimum: ssl.TLSVersion | None,
    maximum: ssl.TLSVersion | None,
) -> tuple[ssl.TLSVersion | None, ssl.TLSVersion | None]:
    """The version range once a deprecated ``ssl_version`` is applied."""
    pinned = resolve_ssl_version(ssl_version)
    if pinned is None:
        return minimum, maximum
    if minimum is not None or maximum is not None:
        raise ValueError(
            "ssl_version cannot be combined with ssl_minimum_version or "
            "ssl_maximum_version; use only the latter two"
        )
    # Caller's code -> HTTPSConnectionPool -> from_options -> here.
    warnings.warn(
        "The ssl_version option is deprecated (as in urllib3, which will drop "
        "it in 3.0); use ssl_minimum_version instead",
        FutureWarning,
        stacklevel=4,
    )
    return pinned, pinned


def _check_version_range(
    minimum: ssl.TLSVersion | None, maximum: ssl.TLSVersion | None
) -> None:
    # MINIMUM_SUPPORTED and MAXIMUM_SUPPORTED are negative sentinels, not
    # versions: only two real versions can be out of order.
    if minimum is None or maximum is None or minimum < 0 or maximum < 0:
        return
    if minimum > maximum:
        raise ValueError(
            f"ssl_minimum_version ({minimum.name}) is above "
            f"ssl_maximum_version ({maximum.name})"
        )


def normalize_fingerprint(fingerprint: str) -> str:
    """The lower-case hex digits of a fingerprint, without colons.

    Raises:
        ValueError: not hex, or not the length of an MD5, SHA-1 or SHA-256
            digest (32, 40 or 64 hex digits).
    """
    digits = fingerprint.replace(":", "").strip().lower()
    if len(digits) not in FINGERPRINT_HASHES:
        raise ValueError(
            f"Fingerprint of invalid length: {fingerprint!r} "
            "(expected 32, 40 or 64 hex digits for MD5, SHA-1 or SHA-256)"
        )
    try:
        bytes.fromhex(digits)
    except ValueError:
        raise ValueError(f"Fingerprint is not hexadecimal: {fingerprint!r}") from None
    return digits


def tls_hostname(host: str) -> str:
    """The name to send as SNI and to verify, from a host or server_hostname.

    Brackets around an IPv6 address and its zone (``%eth0``) are dropped:
    ``ssl`` would otherwise take the address for a DNS name.
    """
    name = host.strip().strip("[]")
    if "%" in name:
        address = name[: name.rfind("%")]
        if _ip_address(address) is not None:
            return address
    return name


def _ip_address(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


# -- contexts ------------------------------------------------------------------


def create_context(
    cert_reqs: ssl.VerifyMode = ssl.CERT_REQUIRED,
    *,
    check_hostname: bool = True,
    minimum_version: ssl.TLSVersion | None = None,
    maximum_version: ssl.TLSVersion | None = None,
    alpn_protocols: tuple[str, ...] = ALPN_PROTOCOLS,
) -> ssl.SSLContext:
    """A client context with urllib3's defaults, and no trust store loaded.

    TLS 1.2 at least; OpenSSL's default ciphers; no compression (CRIME); no
    TLS 1.2 session tickets; post-handshake client authentication allowed;
    host names are checked against subjectAltName only, never the commonName;
    ALPN offers ``http/1.1``; ``SSLKEYLOGFILE`` is honoured, for Wireshark.

    Args:
        cert_reqs: ``ssl.CERT_REQUIRED`` or ``ssl.CERT_NONE``.
        check_hostname: let OpenSSL check the host name (ignored with
            ``CERT_NONE``, which cannot check anything).
        minimum_version: the lowest TLS version; TLS 1.2 if None.
        maximum_version: the highest TLS version; OpenSSL's if None.
        alpn_protocols: what ALPN offers (``("h2", "http/1.1")`` for HTTP/2).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = (
        _DEFAULT_MINIMUM_VERSION if minimum_version is None else minimum_version
    )
    if maximum_version is not None:
        context.maximum_version = maximum_version
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_TICKET
    context.verify_flags |= _VERIFY_FLAGS
    context.post_handshake_auth = True
    context.hostname_checks_common_name = False
    _set_verification(context, cert_reqs, check_hostname)
    context.set_alpn_protocols(list(alpn_protocols))
    keylog = _keylog_path()
    if keylog:
        context.keylog_filename = keylog
    return context


def _keylog_path() -> str | None:
    """Where ``SSLKEYLOGFILE`` asks for the TLS secrets, expanded; or None.

    Shells do not expand a value they did not parse (``export
    SSLKEYLOGFILE='~/keys.log'``, or one set from a config file), so ``$VAR``
    and ``~`` are expanded here rather than naming a file literally.
    """
    value = os.environ.get("SSLKEYLOGFILE")
    if not value:
        return None
    return os.path.expanduser(os.path.expandvars(value))


def _set_verification(
    context: ssl.SSLContext, verify_mode: ssl.VerifyMode, check_hostname: bool
) -> None:
    # SSLContext refuses CERT_NONE while check_hostname is on, so the order
    # of the two assignments depends on the direction of the change.
    if verify_mode == ssl.CERT_NONE or not check_hostname:
        context.check_hostname = False
        context.verify_mode = verify_mode
    else:
        context.verify_mode = verify_mode
        context.check_hostname = True


def _new_context(
    verify_mode: ssl.VerifyMode,
    check_hostname: bool,
    minimum_version: ssl.TLSVersion | None,
    maximum_version: ssl.TLSVersion | None,
    *,
    certifi_roots: bool,
    shareable: bool,
    alpn_protocols: tuple[str, ...] = ALPN_PROTOCOLS,
) -> ssl.SSLContext:
    if certifi_roots and shareable:
        return _shared_certifi_context(
            verify_mode,
            check_hostname,
            minimum_version,
            maximum_version,
            _keylog_path(),
            alpn_protocols,
        )
    context = create_context(
        verify_mode,
        check_hostname=check_hostname,
        minimum_version=minimum_version,
        maximum_version=maximum_version,
        alpn_protocols=alpn_protocols,
    )
    if certifi_roots:
        _load_certifi(context)
    return context


@functools.lru_cache(maxsize=16)
def _shared_certifi_context(
    verify_mode: ssl.VerifyMode,
    check_hostname: bool,
    minimum_version: ssl.TLSVersion | None,
    maximum_version: ssl.TLSVersion | None,
    keylog: str | None,
    alpn_protocols: tuple[str, ...] = ALPN_PROTOCOLS,
) -> ssl.SSLContext:
    """A context trusting certifi, shared by every pool that wants the same.

    Parsing certifi's bundle takes tens of milliseconds, which would block the
    event loop for each new pool (a PoolManager makes one per host). Sharing
    is safe because nothing changes one of our contexts after it is built.
    ``keylog`` is in the key only so that a changed ``SSLKEYLOGFILE`` is seen.
    """
    context = create_context(
        verify_mode,
        check_hostname=check_hostname,
        minimum_version=minimum_version,
        maximum_version=maximum_version,
        alpn_protocols=alpn_protocols,
    )
    _load_certifi(context)
    return context


def _load_certifi(context: ssl.SSLContext) -> None:
    import certifi

    context.load_verify_locations(cafile=certifi.where())


def _adjust_context(
    context: ssl.SSLContext,
    cert_reqs: int | str | None,
    own_name_check: bool,
    alpn_protocols: tuple[str, ...] = ALPN_PROTOCOLS,
) -> ssl.SSLContext:
    """Apply the pool's options to a caller's context, as urllib3 does."""
    verify_mode = context.verify_mode
    if cert_reqs is not None:
        verify_mode = resolve_cert_reqs(cert_reqs)
    _set_verification(
        context, verify_mode, context.check_hostname and not own_name_check
    )
    context.set_alpn_protocols(list(alpn_protocols))
    return context


# -- checks after the handshake ----------------------------------------------


def check_fingerprint(cert: bytes | None, fingerprint: str) -> None:
    """Compare a DER certificate's digest with a pinned fingerprint.

    Args:
        cert: the peer's certificate, DER-encoded, or None if it sent none.
        fingerprint: the pin: 32, 40 or 64 hex digits (MD5, SHA-1, SHA-256),
            colons allowed, any case.

    Raises:
        SSLError: no certificate, or a different one; the message has the
            expected and the actual digest.
        ValueError: ``fingerprint`` is malformed.
    """
    expected = normalize_fingerprint(fingerprint)
    if cert is None:
        raise SSLError("No certificate for the peer, cannot check its fingerprint.")
    actual = hashlib.new(FINGERPRINT_HASHES[len(expected)], cert).digest()
    if not hmac.compare_digest(actual, bytes.fromhex(expected)):
        raise SSLError(
            f'Fingerprints did not match. Expected "{expected}", got "{actual.hex()}".'
        )


def match_hostname(
    cert: Mapping[str, Any] | None, hostname: str, *, common_name: bool = False
) -> None:
    """Check a verified peer certificate's subjectAltName against a name.

    The rules are OpenSSL's (as ``check_hostname`` applies them): DNS names
    compare case-insensitively, a ``*`` may stand for the whole leftmost
    label only (and not right before a single-label suffix such as
    ``*.com``), and an IP address matches only an IP address entry. The
    subject's commonName is used only if ``common_name`` is set, for a DNS
    name, and when the certificate has no DNS or IP address entry at all
    (as urllib3 does for a context with ``hostname_checks_common_name``).

    Args:
        cert: ``getpeercert()`` of a verified connection.
        hostname: the name or IP address to look for.
        common_name: fall back to the commonName as just described.

    Raises:
        ssl.SSLCertVerificationError: no entry matches; its
            ``verify_message`` says so, as OpenSSL's own check would.
    """
    host = tls_hostname(hostname)
    address = _ip_address(host)
    entries = (cert or {}).get("subjectAltName", ())
    if address is not None:
        if any(
            kind == "IP Address" and _ip_address(value.strip()) == address
            for kind, value in entries
        ):
            return
        what = "IP address"
    else:
        if any(kind == "DNS" and _dns_match(value, host) for kind, value in entries):
            return
        if common_name and _common_name_matches(cert or {}, entries, host):
            return
        what = "Hostname"
    error = ssl.SSLCertVerificationError(
        f"{what} mismatch, certificate is not valid for {host!r}."
    )
    error.verify_message = error.args[0]
    error.verify_code = _X509_V_ERR_HOSTNAME_MISMATCH
    raise error


def _common_name_matches(cert: Mapping[str, Any], entries: Any, host: str) -> bool:
    # A name in the subjectAltName, even of the other kind, means the issuer
    # chose the SAN: the commonName is then only a label.
    if any(kind in ("DNS", "IP Address") for kind, _ in entries):
        return False
    return any(
        key == "commonName" and _dns_match(value, host)
        for rdn in cert.get("subject", ())
        for key, value in rdn
    )


def _dns_match(pattern: str, host: str) -> bool:
    pattern = pattern.lower().rstrip(".")
    host = host.lower().rstrip(".")
    if not pattern.startswith("*."):
        return pattern == host
    suffix = pattern[2:]
    if "." not in suffix or "*" in suffix:
        return False
    label, _, rest = host.partition(".")
    return bool(label) and rest == suffix


# -- one pool's settings -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """Everything one HTTPS pool needs for its handshakes, built once.

    Attributes:
        context: the context every connection of the pool uses.
        assert_hostname: a name to verify instead of the server's, False to
            skip the name check (the chain is still verified), or None.
        fingerprint: a pinned certificate digest (normalised hex), or None.
        user_context: ``context`` is the caller's ``ssl_context``, not one
            built here: only then may our own name check fall back to the
            commonName, if the context's ``hostname_checks_common_name``
            asks for it.
    """

    context: ssl.SSLContext
    assert_hostname: AssertHostname = None
    fingerprint: str | None = None
    user_context: bool = False

    @property
    def verified(self) -> bool:
        """Whether the peer is authenticated (by its chain or by a pin)."""
        return self.context.verify_mode != ssl.CERT_NONE or self.fingerprint is not None

    @classmethod
    def from_options(
        cls,
        *,
        ssl_context: ssl.SSLContext | None = None,
        cert_reqs: int | str | None = None,
        ca_certs: str | os.PathLike[str] | None = None,
        ca_cert_dir: str | os.PathLike[str] | None = None,
        ca_cert_data: CADataLike = None,
        cert_file: str | os.PathLike[str] | None = None,
        key_file: str | os.PathLike[str] | None = None,
        key_password: str | bytes | None = None,
        ssl_minimum_version: ssl.TLSVersion | None = None,
        ssl_maximum_version: ssl.TLSVersion | None = None,
        assert_hostname: AssertHostname = None,
        assert_fingerprint: str | None = None,
        ssl_version: int | str | None = None,
        alpn_protocols: tuple[str, ...] = ALPN_PROTOCOLS,
    ) -> TLSConfig:
        """Validate an HTTPS pool's TLS options and build its context.

        ``ssl_context`` takes precedence: its protocol versions, ciphers,
        verify mode and trust store are used as they are (the two version
        options are ignored), but like urllib3 the pool still *adjusts* it:
        an explicit ``cert_reqs`` sets its verify mode, ``ca_*`` and
        ``cert_file`` are loaded into it, ALPN is set, and ``assert_hostname``
        or ``assert_fingerprint`` turn its ``check_hostname`` off (the pool
        then checks names itself, honouring the context's
        ``hostname_checks_common_name``). Without ``ssl_context`` and without
        any ``ca_*`` option, the peer is verified against certifi's roots.

        ``ssl_version`` is urllib3's deprecated spelling of a version range:
        ``PROTOCOL_TLS``/``PROTOCOL_TLS_CLIENT`` limit nothing, and
        ``PROTOCOL_TLSv1_2`` (say) allows TLS 1.2 only, with a
        ``FutureWarning``. Like the two version options it is ignored (though
        checked) when ``ssl_context`` is given.

        Raises:
            TypeError: ``ssl_context`` is not an ``ssl.SSLContext``.
            ValueError: an option is malformed or they contradict each other
                (e.g. ``key_file`` without ``cert_file``, or ``ssl_version``
                pinning a version together with ``ssl_minimum_version``).
            SSLError: a CA, certificate or key file cannot be read or loaded,
                or the key is encrypted and ``key_password`` is missing.
        """
        _validate(ssl_context, assert_hostname, cert_file, key_file, key_password)
        fingerprint = (
            None
            if assert_fingerprint is None
            else normalize_fingerprint(assert_fingerprint)
        )
        minimum = resolve_tls_version("ssl_minimum_version", ssl_minimum_version)
        maximum = resolve_tls_version("ssl_maximum_version", ssl_maximum_version)
        if ssl_context is None:
            minimum, maximum = _versions_from_ssl_version(ssl_version, minimum, maximum)
        else:
            resolve_ssl_version(ssl_version)
        _check_version_range(minimum, maximum)
        # We check names ourselves when OpenSSL cannot: another name than SNI,
        # none at all, or a pin standing in for the name.
        own_name_check = fingerprint is not None or assert_hostname is not None
        if ssl_context is not None:
            context = _adjust_context(
                ssl_context, cert_reqs, own_name_check, alpn_protocols
            )
        else:
            verify_mode = resolve_cert_reqs(cert_reqs)
            has_ca = bool(ca_certs or ca_cert_dir or ca_cert_data)
            context = _new_context(
                verify_mode,
                not own_name_check,
                minimum,
                maximum,
                certifi_roots=not has_ca and verify_mode != ssl.CERT_NONE,
                shareable=cert_file is None,
                alpn_protocols=alpn_protocols,
            )
        _load_trust(context, ca_certs, ca_cert_dir, ca_cert_data)
        _load_client_cert(context, cert_file, key_file, key_password)
        return cls(
            context, assert_hostname, fingerprint, user_context=ssl_context is not None
        )

    def verify_peer(self, getpeercert: GetPeerCert, hostname: str) -> None:
        """Check the peer after a handshake, before anything is sent.

        Args:
            getpeercert: the connection's ``getpeercert`` method.
            hostname: the name the handshake was started with (SNI).

        Raises:
            SSLError: the pinned fingerprint does not match.
            ssl.SSLCertVerificationError: the certificate is not valid for
                ``assert_hostname`` (or ``hostname``) where OpenSSL did not
                check the name itself.
        """
        if self.fingerprint is not None:
            check_fingerprint(getpeercert(True), self.fingerprint)
        elif (
            self.context.verify_mode != ssl.CERT_NONE
            and not self.context.check_hostname
            and self.assert_hostname is not False
        ):
            # Ours never use the commonName; some Pythons (PyPy) report True
            # for hostname_checks_common_name whatever it was set to.
            common_name = self.user_context and bool(
                getattr(self.context, "hostname_checks_common_name", False)
            )
            match_hostname(
                getpeercert(False),
                self.assert_hostname or hostname,
                common_name=common_name,
            )


def _validate(
    ssl_context: object,
    assert_hostname: object,
    cert_file: object,
    key_file: object,
    key_password: object,
) -> None:
    if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
        raise TypeError(f"ssl_context must be an ssl.SSLContext; got {ssl_context!r}")
    if assert_hostname is True or assert_hostname == "":
        raise ValueError("assert_hostname must be a host name, False or None")
    if key_file is not None and cert_file is None:
        raise ValueError("key_file needs cert_file (the matching certificate)")
    if key_password is not None and cert_file is None:
        raise ValueError("key_password needs cert_file (and usually key_file)")


def _load_trust(
    context: ssl.SSLContext,
    ca_certs: str | os.PathLike[str] | None,
    ca_cert_dir: str | os.PathLike[str] | None,
    ca_cert_data: CADataLike,
) -> None:
    if not (ca_certs or ca_cert_dir or ca_cert_data):
        return
    cafile = os.path.expanduser(ca_certs) if ca_certs else None
    capath = os.path.expanduser(ca_cert_dir) if ca_cert_dir else None
    # OpenSSL reads a CA directory lazily, during handshakes; without this a
    # typo would only show up as "unknown CA" on every request.
    if capath is not None and not os.path.isdir(capath):
        raise SSLError(f"ca_cert_dir is not a directory: {capath!r}")
    try:
        context.load_verify_locations(cafile, capath, ca_cert_data or None)
    except (OSError, ValueError) as exc:
        # ssl.SSLError is an OSError; a malformed cadata string a ValueError
        # on some OpenSSL builds.
        raise SSLError(f"Could not load CA certificates: {exc}") from exc


def _load_client_cert(
    context: ssl.SSLContext,
    cert_file: str | os.PathLike[str] | None,
    key_file: str | os.PathLike[str] | None,
    key_password: str | bytes | None,
) -> None:
    if cert_file is None:
        return

    def no_password() -> str:
        # Without a callback OpenSSL would prompt on the terminal.
        raise SSLError("Client private key is encrypted, key_password is required")

    try:
        context.load_cert_chain(
            cert_file, key_file, no_password if key_password is None else key_password
        )
    except OSError as exc:
        files = (
            os.fspath(cert_file)
            if key_file is None
            else (f"{os.fspath(cert_file)} + {os.fspath(key_file)}")
        )
        raise SSLError(
            f"Could not load the client certificate ({files}): {exc}"
        ) from exc
