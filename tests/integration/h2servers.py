"""Real HTTP/2 servers on loopback for the h2 interop tests (a helper module).

Three servers, each a different h2 implementation from trio_pool's own:

* :func:`start_nginx_h2` — Debian's nginx 1.22 with several ``server``
  blocks, one per behaviour under test (nginx 1.22 turns HTTP/2 on per
  ``listen``, so each behaviour needs its own port): h2 over TLS, h2c with
  prior knowledge, ``keepalive_requests 5`` (a graceful GOAWAY after five
  streams), ``http2_max_concurrent_streams 4``, ``keepalive_timeout 1s``
  (the server closes an idle connection), and TLS without ``http2``
  (ALPN picks HTTP/1.1). Uploads are stored by nginx's DAV module, so a test
  can compare what arrived with what it sent.
* :func:`start_nghttpd` — nghttp2's reference server, whose options make
  the flow-control windows tiny, answer before the upload ends, echo the
  upload back or add response trailers.
* :func:`open_hypercorn` — hypercorn serving an ASGI app in the test's own
  trio run, for stalling and dripping streams scripted in Python.

:func:`open_record_holding_relay` is a loopback TCP relay that changes only
the timing of a client's TLS records, to make one race deterministic.

nginx and nghttpd are plain subprocesses started synchronously, like
``tests/integration/nginx.py``; a missing binary makes the caller skip with
a reason naming the Debian package.
"""

from __future__ import annotations

import contextlib
import functools
import math
import subprocess
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.integration.daemons import LOOPBACK, free_port, launch, stop_process
from tests.integration.nginx import BIG_SIZE, find_nginx
from tests.integration.proxies import find_binary
from trio_pool.testing import pattern

__all__ = [
    "BIG_SIZE",
    "MEDIUM_SIZE",
    "NGINX_SITES",
    "NghttpdHandle",
    "NginxH2Handle",
    "find_nghttpd",
    "open_hypercorn",
    "open_record_holding_relay",
    "start_nghttpd",
    "start_nginx_h2",
]

#: The size of nginx's ``/medium``: a few DATA frames.
MEDIUM_SIZE = 100_003
_START_ATTEMPTS = 3

#: The nginx server blocks: name -> (listen options, extra directives).
NGINX_SITES: dict[str, tuple[str, str]] = {
    "h2": ("ssl http2", "keepalive_requests 100000;"),
    "h2c": ("http2", "keepalive_requests 100000;"),
    "goaway": ("ssl http2", "keepalive_requests 5;"),
    "streams4": ("ssl http2", "http2_max_concurrent_streams 4;"),
    "idle1s": ("ssl http2", "keepalive_timeout 1s;"),
    "h1": ("ssl", ""),
    "plain": ("", ""),
}

_NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid "%(dir)s/nginx.pid";
error_log "%(dir)s/error.log" info;
events { worker_connections 1024; }
http {
    access_log "%(dir)s/access.log";
    client_body_temp_path "%(dir)s/client_body";
    proxy_temp_path "%(dir)s/proxy";
    fastcgi_temp_path "%(dir)s/fastcgi";
    uwsgi_temp_path "%(dir)s/uwsgi";
    scgi_temp_path "%(dir)s/scgi";
    default_type application/octet-stream;
    keepalive_timeout 10s;
    ssl_certificate "%(dir)s/cert.pem";
    ssl_certificate_key "%(dir)s/key.pem";
    client_max_body_size 64m;
%(servers)s
}
"""

# /post/NAME is stored as a file through the plain site's DAV PUT, so a
# POST over h2 can be checked byte for byte (nginx itself cannot echo).
_NGINX_SERVER = """
    server {
        listen %(host)s:%(port)d %(options)s;
        %(extra)s
        add_header X-Connection $connection always;
        location = / { return 200 "hello"; }
        location = /big { alias "%(dir)s/big.bin"; }
        location = /medium { alias "%(dir)s/medium.bin"; }
        # The same body at 1 MB/s (about 0.1 s): a stream that stays open.
        location = /medium-slow { alias "%(dir)s/medium.bin"; limit_rate 1m; }
        location /dav/ {
            root "%(dir)s";
            dav_methods PUT;
            create_full_put_path on;
        }
        location /post/ {
            proxy_method PUT;
            proxy_pass http://%(host)s:%(plain_port)d/dav/;
        }
    }
"""


@dataclass(frozen=True)
class NginxH2Handle:
    """A running nginx with one port per site of :data:`NGINX_SITES`.

    Attributes:
        ports: the port of each site, by name.
        directory: its config, logs, files; uploads land in ``dav/``.
        process: the nginx process.
    """

    ports: dict[str, int]
    directory: Path
    process: subprocess.Popen[bytes]

    def uploaded(self, name: str) -> bytes:
        """The body a PUT to ``/dav/NAME`` (or POST to ``/post/NAME``) stored."""
        return (self.directory / "dav" / name).read_bytes()


@contextlib.contextmanager
def start_nginx_h2(directory: Path, tls_cert: Any) -> Iterator[NginxH2Handle]:
    """Run nginx with the h2 sites until the block ends.

    Args:
        directory: an empty directory for nginx's files.
        tls_cert: a ``trustme.LeafCert`` for the TLS sites.

    Yields:
        The handle, once every port accepts connections.

    Raises:
        RuntimeError: nginx would not start (the message has its error log).
    """
    binary = find_nginx()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "dav").mkdir(exist_ok=True)
    (directory / "big.bin").write_bytes(pattern(BIG_SIZE))
    (directory / "medium.bin").write_bytes(pattern(MEDIUM_SIZE))
    tls_cert.cert_chain_pems[0].write_to_path(str(directory / "cert.pem"))
    tls_cert.private_key_pem.write_to_path(str(directory / "key.pem"))
    for attempt in range(_START_ATTEMPTS):
        ports = {name: free_port() for name in NGINX_SITES}
        _write_nginx_conf(directory, ports)
        argv = [binary, "-p", str(directory), "-c", str(directory / "nginx.conf")]
        argv += ["-e", str(directory / "error.log")]
        try:
            process = launch(argv, directory, list(ports.values()), "daemon.out")
        except RuntimeError:
            if attempt == _START_ATTEMPTS - 1:
                raise
            continue  # most likely another process took a port meanwhile
        try:
            yield NginxH2Handle(ports, directory, process)
        finally:
            stop_process(process)
        return


def _write_nginx_conf(directory: Path, ports: dict[str, int]) -> None:
    servers = "".join(
        _NGINX_SERVER
        % {
            "host": LOOPBACK,
            "port": ports[name],
            "options": options,
            "extra": extra,
            "dir": str(directory),
            "plain_port": ports["plain"],
        }
        for name, (options, extra) in NGINX_SITES.items()
    )
    conf = _NGINX_CONF % {"dir": str(directory), "servers": servers}
    (directory / "nginx.conf").write_text(conf)


# -- nghttpd ----------------------------------------------------------------------


def find_nghttpd() -> str:
    """The nghttpd binary, or skip saying how to install it."""
    return find_binary("nghttpd", "nghttp2-server")


@dataclass(frozen=True)
class NghttpdHandle:
    """A running nghttpd.

    Attributes:
        port: where it listens (TLS with ALPN h2, or h2c with ``tls=False``).
        docroot: the directory it serves; ``big.bin`` is :data:`BIG_SIZE`
            bytes of ``trio_pool.testing.pattern``.
        process: the nghttpd process.
    """

    port: int
    docroot: Path
    process: subprocess.Popen[bytes]


@contextlib.contextmanager
def start_nghttpd(
    directory: Path, tls_cert: Any, options: Sequence[str] = (), *, tls: bool = True
) -> Iterator[NghttpdHandle]:
    """Run ``nghttpd OPTIONS`` on loopback until the block ends.

    Args:
        directory: an empty directory (the document root is ``directory/www``).
        tls_cert: a ``trustme.LeafCert`` (unused with ``tls=False``).
        options: more nghttpd options, such as ``("-w", "10")``.
        tls: serve TLS (ALPN h2) rather than h2c.

    Yields:
        The handle, once the port accepts connections.
    """
    binary = find_nghttpd()
    docroot = directory / "www"
    docroot.mkdir(parents=True, exist_ok=True)
    (docroot / "big.bin").write_bytes(pattern(BIG_SIZE))
    (docroot / "small.txt").write_bytes(b"small file\n")
    keys: list[str] = []
    if tls:
        tls_cert.private_key_pem.write_to_path(str(directory / "key.pem"))
        tls_cert.cert_chain_pems[0].write_to_path(str(directory / "cert.pem"))
        keys = [str(directory / "key.pem"), str(directory / "cert.pem")]
    for attempt in range(_START_ATTEMPTS):
        port = free_port()
        argv = [binary, "-a", LOOPBACK, "-d", str(docroot), *options]
        argv += ([] if tls else ["--no-tls"]) + [str(port), *keys]
        try:
            process = launch(argv, directory, [port], "daemon.out")
        except RuntimeError:
            if attempt == _START_ATTEMPTS - 1:
                raise
            continue
        try:
            yield NghttpdHandle(port, docroot, process)
        finally:
            stop_process(process)
        return


# -- hypercorn --------------------------------------------------------------------


@contextlib.asynccontextmanager
async def open_hypercorn(
    app: Any, certfile: str, keyfile: str, **settings: Any
) -> AsyncIterator[int]:
    """Serve the ASGI ``app`` with hypercorn (TLS, ALPN h2) in this trio run.

    Args:
        app: an ASGI 3 application.
        certfile: the server's certificate chain (PEM).
        keyfile: its private key (PEM).
        settings: more ``hypercorn.config.Config`` attributes.

    Yields:
        The port it listens on (127.0.0.1).
    """
    try:
        import hypercorn.config
        import hypercorn.trio
    except ImportError:
        pytest.skip("needs hypercorn: pip install 'hypercorn[trio]'")
    config = hypercorn.config.Config()
    config.bind = [f"{LOOPBACK}:0"]
    config.certfile, config.keyfile = certfile, keyfile
    config.graceful_timeout = 0.5
    config.accesslog = config.errorlog = None
    for name, value in settings.items():
        setattr(config, name, value)
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            lambda task_status: hypercorn.trio.serve(
                app, config, shutdown_trigger=stop.wait, task_status=task_status
            )
        )
        try:
            yield int(binds[0].rsplit(":", 1)[1])
        finally:
            stop.set()
            # A stalled stream would hold a graceful shutdown open.
            nursery.cancel_scope.deadline = trio.current_time() + 2


# -- a relay that holds the client's early TLS records ----------------------------


#: How long the relay holds records before it gives up waiting for the
#: small one (a client that waits for the server's SETTINGS sends only a
#: window's worth and then nothing).
_HOLD_LIMIT = 0.5


class _TLSRecords:
    """Reads whole TLS records (header included) from a stream; a read
    cancelled part-way loses nothing."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    async def next(self) -> bytes:
        """The next record; ``b""`` at the end of the stream."""
        while True:
            if len(self.buffer) >= 5:
                size = 5 + int.from_bytes(self.buffer[3:5], "big")
                if len(self.buffer) >= size:
                    record = bytes(self.buffer[:size])
                    del self.buffer[:size]
                    return record
            data = await self.stream.receive_some()
            if not data:
                return b""
            self.buffer += data


@contextlib.asynccontextmanager
async def open_record_holding_relay(port: int, hold: int) -> AsyncIterator[int]:
    """A loopback relay to a TLS server at ``port`` that delivers the
    client's bulk data late, in one write with the small record after it.

    It reads TLS record headers (it cannot decrypt): once the client has
    sent a large application-data record, it holds the client's records
    until they add up to ``hold`` bytes and a small record (under 100
    bytes: for HTTP/2, the SETTINGS ACK) follows; then it writes them all
    at once (or after :data:`_HOLD_LIMIT`, if no small record comes). The
    server's bytes pass at once. So a server sees an HTTP/2 client's first
    DATA and its SETTINGS ACK in the same read, deterministically.

    Yields:
        The relay's port on 127.0.0.1.
    """

    async def forward_up(client: trio.SocketStream, upstream: Any) -> None:
        held = bytearray()
        holding = done = False
        records = _TLSRecords(client)
        while True:
            with trio.move_on_after(_HOLD_LIMIT if holding else math.inf) as scope:
                record = await records.next()
            if scope.cancelled_caught:
                holding, done = False, True
                await upstream.send_all(held)
                continue
            if not record:
                return
            if not done and (holding or len(record) > 1000):
                holding = True
                held += record
                if len(held) >= hold and len(record) < 100:
                    holding, done = False, True
                    await upstream.send_all(held)
            else:
                await upstream.send_all(record)

    async def forward_down(client: trio.SocketStream, upstream: Any) -> None:
        async for data in upstream:
            await client.send_all(data)

    async def relay(client: trio.SocketStream) -> None:
        upstream = await trio.open_tcp_stream(LOOPBACK, port)
        async with client, upstream, trio.open_nursery() as nursery:

            async def run(direction: Any) -> None:
                with contextlib.suppress(trio.BrokenResourceError):
                    await direction(client, upstream)
                nursery.cancel_scope.cancel()

            nursery.start_soon(run, forward_up)
            nursery.start_soon(run, forward_down)

    async with trio.open_nursery() as nursery:
        serve = functools.partial(trio.serve_tcp, relay, 0, host=LOOPBACK)
        listeners = await nursery.start(serve)
        try:
            yield int(listeners[0].socket.getsockname()[1])
        finally:
            nursery.cancel_scope.cancel()
