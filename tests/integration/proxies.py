"""Real proxies on loopback for the proxy tests: squid, dante and microsocks.

This is a helper module, not a test module. ``test_proxies.py`` loads it as a
pytest plugin, so the session fixtures below are started once per run, and
only if a test asks for them:

* ``squid`` — Debian's ``squid-openssl`` with a generated config: an open
  ``http_port``, an ``http_port`` that wants basic auth, and an ``https_port``
  (TLS to the proxy itself) with a certificate from its own trustme CA. Only
  loopback clients are allowed, CONNECT goes to any port (our test servers use
  random high ones), nothing is cached, and every file it writes lives in a
  temporary directory. Its access log records what it saw, including a
  header (:data:`NOTE_HEADER`) and the authenticated user.
* ``dante`` — Debian's ``danted``: SOCKS4 and SOCKS5 without authentication
  (dante does not speak SOCKS4a).
* ``microsocks`` — Debian's ``microsocks``: SOCKS5 with username/password.

If a binary is missing, or lacks a feature the tests rely on (squid without
OpenSSL, as in Debian's plain ``squid`` package), the fixture skips with a
reason that names the package to install. ``.ci/run`` installs them all and
sets ``TRIO_POOL_STRICT=1``, under which any skip fails the run
(``tests/conftest.py``), so CI never skips these tests silently.

The processes are plain subprocesses of the pytest process, started and
stopped synchronously (pytest-trio gives every test its own trio run, so
nothing async can live for a whole session).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, TypeVar

import pytest
import trio
import trustme

from tests.integration.daemons import LOOPBACK, accepts, free_port, stop_process, tail

#: A request header that squid writes into its access log (``-`` if absent).
NOTE_HEADER = "X-Proxy-Note"
PROXY_USER = "alice"
PROXY_PASSWORD = "correct-horse"
SOCKS_USER = "bob"
SOCKS_PASSWORD = "hunter2"

_START_TIMEOUT = 20.0
_START_ATTEMPTS = 3

T = TypeVar("T")


# -- finding binaries ---------------------------------------------------------


def missing(what: str, package: str) -> NoReturn:
    """Skip the test because ``what`` is not installed; say how to get it."""
    pytest.skip(f"needs {what}, which is not installed: apt-get install {package}")


def find_binary(name: str, package: str) -> str:
    """The path of a Debian binary (sbin included), or skip.

    The sbin directories are searched even when not on ``PATH`` (they are
    not, for most non-root users on Debian).
    """
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    missing(name, package)


# -- processes ----------------------------------------------------------------


@contextlib.contextmanager
def run_daemon(
    argv: list[str], ports: list[int], workdir: Path, logs: list[Path]
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` until the block ends; ready once every port accepts.

    Raises:
        RuntimeError: the daemon exited or did not listen in time; the
            message carries the tail of its logs.
    """
    output = workdir / f"{Path(argv[0]).name}.out"
    with output.open("wb") as sink:
        proc = subprocess.Popen(
            argv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink
        )
    try:
        deadline = time.monotonic() + _START_TIMEOUT
        pending = list(ports)
        while pending:
            if proc.poll() is not None or time.monotonic() > deadline:
                details = "\n".join(
                    f"--- {path.name}:\n{tail(path)}" for path in [output, *logs]
                )
                state = (
                    "did not listen in time"
                    if proc.poll() is None
                    else f"exited with {proc.returncode}"
                )
                raise RuntimeError(f"{argv[0]} {state}\n{details}")
            if accepts(pending[0]):
                pending.pop(0)
            else:
                time.sleep(0.05)
        yield proc
    finally:
        stop_process(proc)


@contextlib.contextmanager
def private_dir(prefix: str, owner: str | None = None) -> Iterator[Path]:
    """A temporary directory that a daemon dropping root to ``owner`` can use."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        path.chmod(0o755)
        if owner is not None and os.geteuid() == 0:
            entry = pwd.getpwnam(owner)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def start_with_retries(
    start: Callable[[], contextlib.AbstractContextManager[T]],
) -> tuple[contextlib.ExitStack, T]:
    """Enter ``start()``, again (on new ports) if the daemon did not come up.

    Returns the entered value and the stack that stops it.
    """
    for attempt in range(_START_ATTEMPTS):
        stack = contextlib.ExitStack()
        try:
            return stack, stack.enter_context(start())
        except RuntimeError:
            if attempt == _START_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


# -- TLS material -------------------------------------------------------------


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    """A server-side context with a certificate for 127.0.0.1 and localhost."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(LOOPBACK, "localhost").configure_cert(context)
    return context


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    """A client-side context that trusts ``ca`` only."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@dataclass(frozen=True)
class TargetCA:
    """The CA behind the https test servers (the proxies' *targets*)."""

    ca: trustme.CA
    pem: Path

    def server_context(self) -> ssl.SSLContext:
        return server_context(self.ca)


@pytest.fixture(scope="session")
def target_ca() -> Iterator[TargetCA]:
    ca = trustme.CA()
    # Not under pytest's private tmp dirs: squid reads it after dropping root.
    with private_dir("trio-pool-ca-") as directory:
        pem = directory / "target-ca.pem"
        ca.cert_pem.write_to_path(str(pem))
        pem.chmod(0o644)
        yield TargetCA(ca, pem)


# -- squid --------------------------------------------------------------------


@dataclass(frozen=True)
class Squid:
    """A running squid.

    Attributes:
        port: the open http port.
        auth_port: the http port that wants ``PROXY_USER``/``PROXY_PASSWORD``.
        tls_port: the https port (TLS to the proxy).
        ca: the CA that issued the https port's certificate.
        access_log: one line per transaction, in :data:`_LOG_FORMAT`.
    """

    port: int
    auth_port: int
    tls_port: int
    ca: trustme.CA
    access_log: Path

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def auth_url(self) -> str:
        return f"http://{LOOPBACK}:{self.auth_port}"

    @property
    def https_url(self) -> str:
        return f"https://{LOOPBACK}:{self.tls_port}"

    def context(self) -> ssl.SSLContext:
        """A client context that trusts this proxy's certificate."""
        return client_context(self.ca)

    def log(self) -> list[LogLine]:
        return [LogLine.parse(line) for line in _read_all(self.access_log)]

    async def wait_for(self, match: Callable[[LogLine], bool]) -> LogLine:
        """The first access-log line that ``match``es, once squid writes it.

        Squid logs a transaction when it ends (a CONNECT when its tunnel
        closes), so this polls; bound it with a cancel scope.
        """
        while True:
            for line in self.log():
                if match(line):
                    return line
            await trio.sleep(0.05)


def _read_all(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []


#: Space-separated and free of spaces in every field (squid quotes headers).
_LOG_FORMAT = "%>a %>lp %Ss/%03>Hs %rm %ru %un %{" + NOTE_HEADER + "}>h"


@dataclass(frozen=True)
class LogLine:
    """One line of squid's access log."""

    client: str
    local_port: int
    result: str  # e.g. TCP_TUNNEL/200, TCP_DENIED/407, TCP_MISS/200
    method: str
    url: str  # absolute URL, or host:port for CONNECT
    user: str  # "-" if none
    note: str  # the NOTE_HEADER value, "-" if none

    @classmethod
    def parse(cls, line: str) -> LogLine:
        client, port, result, method, url, user, note = line.split(" ", 6)
        return cls(client, int(port), result, method, url, user, note.strip('"'))


def _squid_config(
    directory: Path, squid: Squid, htpasswd: Path, cert: Path, key: Path, ca: Path
) -> str:
    lines = [
        f"http_port {LOOPBACK}:{squid.port}",
        f"http_port {LOOPBACK}:{squid.auth_port} name=authport",
        f"https_port {LOOPBACK}:{squid.tls_port} tls-cert={cert} tls-key={key}",
        # What squid trusts when *it* speaks TLS to a target (forwarding).
        f"tls_outgoing_options cafile={ca}",
        f"auth_param basic program /usr/lib/squid/basic_ncsa_auth {htpasswd}",
        "auth_param basic realm trio_pool tests",
        "auth_param basic children 2",
        "acl loopback src 127.0.0.1/32 ::1",
        "acl authport myportname authport",
        "acl authed proxy_auth REQUIRED",
        # Unlike Debian's default config, CONNECT to any port is allowed.
        "http_access deny !loopback",
        "http_access deny authport !authed",
        "http_access allow loopback",
        "http_access deny all",
        "cache deny all",
        "cache_mem 4 MB",
        "visible_hostname trio-pool-squid",
        f"logformat triopool {_LOG_FORMAT}",
        f"access_log stdio:{squid.access_log} logformat=triopool",
        f"cache_log {directory / 'cache.log'}",
        "cache_store_log none",
        f"pid_filename {directory / 'squid.pid'}",
        f"coredump_dir {directory}",
        "pinger_enable off",
        "netdb_filename none",
        "logfile_rotate 0",
        "strip_query_terms off",
        "shutdown_lifetime 0 seconds",
    ]
    if os.geteuid() == 0:
        # Squid refuses to keep running as root; Debian's package has this user.
        lines.append("cache_effective_user proxy")
    return "\n".join(lines) + "\n"


def _htpasswd_line(user: str, password: str) -> str:
    openssl = shutil.which("openssl")
    if openssl is None:
        missing("openssl", "openssl")
    hashed = subprocess.run(
        [openssl, "passwd", "-apr1", password],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return f"{user}:{hashed}\n"


def find_squid() -> str:
    """A squid built with OpenSSL, or skip.

    Debian's plain ``squid`` package is built with GnuTLS, and its TLS to the
    targets of forwarded https requests fails (a 502), so it does not count.
    """
    binary = find_binary("squid", "squid-openssl")
    try:
        built = subprocess.run(
            [binary, "-v"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"needs squid, but `{binary} -v` failed ({exc})")
    if "--with-openssl" not in built:
        pytest.skip(
            f"needs squid built with OpenSSL ({binary} -v lacks --with-openssl): "
            "apt-get install squid-openssl"
        )
    return binary


@contextlib.contextmanager
def run_squid(target_ca: Path) -> Iterator[Squid]:
    """Start squid on three fresh loopback ports; stop it afterwards."""
    binary = find_squid()
    helper = Path("/usr/lib/squid/basic_ncsa_auth")
    if not helper.exists():
        missing(str(helper), "squid-openssl")
    owner = "proxy" if os.geteuid() == 0 else None
    with private_dir("trio-pool-squid-", owner) as directory:
        ca = trustme.CA()
        issued = ca.issue_cert(LOOPBACK, "localhost")
        cert, key = directory / "proxy-cert.pem", directory / "proxy-key.pem"
        issued.cert_chain_pems[0].write_to_path(str(cert))
        issued.private_key_pem.write_to_path(str(key))
        htpasswd = directory / "htpasswd"
        htpasswd.write_text(_htpasswd_line(PROXY_USER, PROXY_PASSWORD))
        squid = Squid(
            port=free_port(),
            auth_port=free_port(),
            tls_port=free_port(),
            ca=ca,
            access_log=directory / "access.log",
        )
        config = directory / "squid.conf"
        config.write_text(
            _squid_config(directory, squid, htpasswd, cert, key, target_ca)
        )
        for path in (cert, key, htpasswd, config):
            path.chmod(0o644)
        ports = [squid.port, squid.auth_port, squid.tls_port]
        argv = [binary, "-N", "-f", str(config)]
        with run_daemon(argv, ports, directory, [directory / "cache.log"]):
            yield squid


@pytest.fixture(scope="session")
def squid(target_ca: TargetCA) -> Iterator[Squid]:
    stack, running = start_with_retries(lambda: run_squid(target_ca.pem))
    with stack:
        yield running


# -- SOCKS --------------------------------------------------------------------


@dataclass(frozen=True)
class Socks:
    """A running SOCKS server and the log of the connections it made."""

    port: int
    log_path: Path

    def url(self, scheme: str, auth: str = "") -> str:
        return f"{scheme}://{auth}{LOOPBACK}:{self.port}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def connected_to(self, port: int) -> bool:
        """Whether the log shows a connection made to ``port`` for a client.

        Dante logs ``... -> 127.0.0.1.<port>``, microsocks ``connected to
        <host>:<port>``.
        """
        pattern = rf"connect.*[.:]{port}$"
        return re.search(pattern, self.log(), re.MULTILINE) is not None


def _dante_config(port: int, log: Path) -> str:
    users = (
        "user.privileged: root\nuser.unprivileged: nobody\n"
        if os.geteuid() == 0
        else ""
    )
    return f"""\
logoutput: {log}
internal: {LOOPBACK} port = {port}
external: {LOOPBACK}
clientmethod: none
socksmethod: none
{users}client pass {{
    from: 127.0.0.0/8 to: 0.0.0.0/0
}}
socks pass {{
    from: 127.0.0.0/8 to: 127.0.0.0/8
    command: connect
    log: connect
}}
socks block {{
    from: 0.0.0.0/0 to: 0.0.0.0/0
    log: connect error
}}
"""


@contextlib.contextmanager
def run_dante() -> Iterator[Socks]:
    binary = find_binary("danted", "dante-server")
    with private_dir("trio-pool-dante-") as directory:
        socks = Socks(free_port(), directory / "danted.log")
        config = directory / "danted.conf"
        config.write_text(_dante_config(socks.port, socks.log_path))
        pid = directory / "danted.pid"
        argv = [binary, "-f", str(config), "-p", str(pid), "-N", "1"]
        with run_daemon(argv, [socks.port], directory, [socks.log_path]):
            yield socks


@contextlib.contextmanager
def run_microsocks() -> Iterator[Socks]:
    binary = find_binary("microsocks", "microsocks")
    with private_dir("trio-pool-microsocks-") as directory:
        port = free_port()
        argv = [binary, "-i", LOOPBACK, "-p", str(port)]
        argv += ["-u", SOCKS_USER, "-P", SOCKS_PASSWORD]
        # microsocks logs to stderr, which run_daemon keeps in this file.
        socks = Socks(port, directory / "microsocks.out")
        with run_daemon(argv, [port], directory, []):
            yield socks


@pytest.fixture(scope="session")
def dante() -> Iterator[Socks]:
    stack, running = start_with_retries(run_dante)
    with stack:
        yield running


@pytest.fixture(scope="session")
def microsocks() -> Iterator[Socks]:
    stack, running = start_with_retries(run_microsocks)
    with stack:
        yield running
