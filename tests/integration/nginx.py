"""A real nginx on loopback, for interop tests (a helper module, not tests).

:func:`start_nginx` writes an ``nginx.conf`` into a directory of its own and
runs ``nginx -c <conf> -p <dir>`` in the foreground (``daemon off;
master_process off;``) until the ``with`` block ends. Every file nginx writes
(pid, logs, temp files) lives in that directory. It always listens for plain
HTTP, and for HTTPS too when given a certificate::

    with start_nginx(tmp_path, tls_cert=ca.issue_cert("localhost")) as nginx:
        ...  # nginx.http_port, nginx.https_port, nginx.access_log()

The default site answers ``/`` with ``hello``, ``/big`` with
:data:`BIG_SIZE` bytes of ``trio_pool.testing.pattern``, and adds the
response headers ``X-Connection`` (nginx's serial number of the connection)
and ``X-Connection-Requests`` (the request's position on it), so a client
test can see reuse from the server's side. Pass ``locations=`` to serve
something else (e.g. a reverse proxy) and ``http_extra=`` for ``http {}``
level directives such as ``upstream`` blocks.

If nginx is not installed the caller skips, with a reason that says how to
install it. ``.ci/run`` installs nginx and sets ``TRIO_POOL_STRICT=1``, under
which any skip fails the run (``tests/conftest.py``), so CI never skips the
nginx tests silently.

It is synchronous (a plain subprocess) so that a session-scoped fixture can
share one nginx between tests: pytest-trio gives every test its own trio
run, and nothing async lives across them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemons import LOOPBACK, free_port, launch, stop_process
from trio_pool.testing import pattern

__all__ = [
    "BIG_SIZE",
    "DEFAULT_LOCATIONS",
    "NginxHandle",
    "find_nginx",
    "start_nginx",
]

#: The size of ``/big``: several TLS records and socket reads, not round.
BIG_SIZE = 3 * 2**20 + 7

DEFAULT_LOCATIONS = """
        add_header X-Connection $connection always;
        add_header X-Connection-Requests $connection_requests always;
        location = / { return 200 "hello"; }
        location = /big { alias "%(dir)s/big.bin"; }
"""

_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid "%(dir)s/nginx.pid";
error_log "%(dir)s/error.log" info;
events { worker_connections 256; }
http {
    access_log "%(dir)s/access.log";
    client_body_temp_path "%(dir)s/client_body";
    proxy_temp_path "%(dir)s/proxy";
    fastcgi_temp_path "%(dir)s/fastcgi";
    uwsgi_temp_path "%(dir)s/uwsgi";
    scgi_temp_path "%(dir)s/scgi";
    default_type application/octet-stream;
    keepalive_timeout %(keepalive_timeout)s;
    keepalive_requests 1000;
%(http_extra)s
    server {
        listen %(host)s:%(http_port)d;
%(tls)s
%(locations)s
    }
}
"""

_TLS = """
        listen %(host)s:%(https_port)d ssl;
        ssl_certificate "%(dir)s/cert.pem";
        ssl_certificate_key "%(dir)s/key.pem";
"""

_START_ATTEMPTS = 3


@dataclass(frozen=True)
class NginxHandle:
    """A running nginx.

    Attributes:
        http_port: the plain HTTP listener.
        https_port: the TLS listener, or None without ``tls_cert``.
        directory: where its config, logs and temp files are.
        process: the nginx process.
    """

    http_port: int
    https_port: int | None
    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def http_url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    @property
    def https_url(self) -> str:
        assert self.https_port is not None, "nginx was started without tls_cert"
        return f"https://localhost:{self.https_port}"

    def access_log(self) -> list[str]:
        """The access log's lines so far (nginx writes them unbuffered)."""
        path = self.directory / "access.log"
        return path.read_text().splitlines() if path.exists() else []


def find_nginx() -> str:
    """The nginx binary (``/usr/sbin`` included, even off ``PATH``), or skip."""
    candidates = (shutil.which("nginx"), "/usr/sbin/nginx")
    found = next((c for c in candidates if c and os.access(c, os.X_OK)), None)
    if found is None:
        pytest.skip("needs nginx, which is not installed: apt-get install nginx")
    return found


@contextlib.contextmanager
def start_nginx(
    directory: Path,
    tls_cert: Any = None,
    *,
    locations: str = DEFAULT_LOCATIONS,
    http_extra: str = "",
    keepalive_timeout: str = "1s",
) -> Iterator[NginxHandle]:
    """Run nginx on loopback until the block ends.

    Args:
        directory: an empty directory for nginx's files.
        tls_cert: a ``trustme.LeafCert`` to serve HTTPS with; None for plain
            HTTP only.
        locations: the ``server {}`` block's contents besides ``listen`` and
            the certificate; ``%(dir)s`` stands for ``directory``.
        http_extra: more directives for the ``http {}`` block.
        keepalive_timeout: nginx's ``keepalive_timeout``.

    Yields:
        The handle, once every listener accepts connections.

    Raises:
        RuntimeError: nginx would not start (the message has its error log).
    """
    binary = find_nginx()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "big.bin").write_bytes(pattern(BIG_SIZE))
    if tls_cert is not None:
        tls_cert.cert_chain_pems[0].write_to_path(str(directory / "cert.pem"))
        tls_cert.private_key_pem.write_to_path(str(directory / "key.pem"))
    settings = {
        "dir": str(directory),
        "host": LOOPBACK,
        "keepalive_timeout": keepalive_timeout,
        "http_extra": http_extra,
    }
    for attempt in range(_START_ATTEMPTS):
        ports = {"http_port": free_port(), "https_port": free_port()}
        tls = _TLS % {**settings, **ports} if tls_cert is not None else ""
        conf = _CONF % {
            **settings,
            **ports,
            "tls": tls,
            "locations": locations % settings,
        }
        (directory / "nginx.conf").write_text(conf)
        try:
            process = _launch(binary, directory, ports, tls_cert is not None)
        except RuntimeError:
            # Most likely another process took a port in the meantime.
            if attempt == _START_ATTEMPTS - 1:
                raise
            continue
        try:
            yield NginxHandle(
                ports["http_port"],
                ports["https_port"] if tls_cert is not None else None,
                directory,
                process,
            )
        finally:
            stop_process(process)
        return


def _launch(
    binary: str, directory: Path, ports: dict[str, int], tls: bool
) -> subprocess.Popen[bytes]:
    argv = [binary, "-p", str(directory), "-c", str(directory / "nginx.conf")]
    # -e: nginx opens its default error log before reading the config; that
    # path is not writable for a non-root developer.
    argv += ["-e", str(directory / "error.log")]
    waiting = [ports["http_port"], *([ports["https_port"]] if tls else [])]
    return launch(argv, directory, waiting, "nginx.out")
