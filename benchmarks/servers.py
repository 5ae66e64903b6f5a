"""The loopback server: Debian's nginx if installed, else the bundled trio server.

Theory of operation
-------------------
:func:`open_server` is a context manager yielding a :class:`ServerInfo` with
an HTTP and an HTTPS port on 127.0.0.1, a small and a large resource, and the
CA file (made with trustme) that clients must trust for HTTPS.

nginx runs in the foreground as a child process, with a private prefix under
a temporary directory: its own config, logs, pid file and document root, one
worker process (the other core is the client's), keep-alive without a request
limit, no access log. The large file is written once per run.

The fallback runs ``trio_pool.testing.open_server`` (HTTP and HTTPS) in a
child process, ``python -m benchmarks.bundled_server``; the resources are its
``/bytes/<n>`` routes. Being Python, it is far slower than nginx: the numbers
then measure the server as much as the clients, which the report says.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import trustme

HOST = "127.0.0.1"
SMALL_LEN = 1024


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """Where the benchmark server listens and what it serves."""

    name: str
    host: str
    http_port: int
    https_port: int
    ca_file: str
    small_path: str
    small_len: int
    large_path: str
    large_len: int


def find_nginx() -> str | None:
    return shutil.which("nginx") or next(
        (
            p
            for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
            if os.access(p, os.X_OK)
        ),
        None,
    )


def nginx_version(binary: str) -> str:
    done = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False)
    text = (done.stderr or done.stdout).strip()
    return text.removeprefix("nginx version: ").removeprefix("nginx/")


@contextlib.contextmanager
def open_server(kind: str, large_len: int) -> Iterator[ServerInfo]:
    """Start the server (``kind``: ``auto``, ``nginx`` or ``bundled``)."""
    nginx = find_nginx()
    if kind == "nginx" and nginx is None:
        raise SystemExit("nginx is not installed (apt-get install -y nginx)")
    with tempfile.TemporaryDirectory(prefix="trio-pool-bench-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)  # nginx workers may run as another user
        ca_file = _make_certs(root)
        if nginx is not None and kind != "bundled":
            with _run_nginx(nginx, root, ca_file, large_len) as info:
                yield info
        else:
            why = "nginx not found" if nginx is None else "--server bundled"
            with _run_bundled(root, ca_file, large_len, why) as info:
                yield info


def _make_certs(root: Path) -> str:
    ca = trustme.CA()
    cert = ca.issue_cert(HOST, "localhost")
    ca.cert_pem.write_to_path(str(root / "ca.pem"))
    with open(root / "server.pem", "wb") as f:
        for pem in cert.cert_chain_pems:
            f.write(pem.bytes())
    cert.private_key_pem.write_to_path(str(root / "server.key"))
    cert.private_key_and_cert_chain_pem.write_to_path(str(root / "server-both.pem"))
    return str(root / "ca.pem")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def _wait_listening(proc: subprocess.Popen[bytes], ports: list[int]) -> None:
    deadline = time.monotonic() + 10
    for port in ports:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with status {proc.returncode}")
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server did not listen on {port}") from None
                time.sleep(0.05)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


_NGINX_CONF = """\
worker_processes 1;
worker_rlimit_nofile 16384;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 300s;
    keepalive_requests 100000000;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{
        listen {host}:{http_port} backlog=4096;
        root {root}/www;
    }}
    server {{
        listen {host}:{https_port} ssl backlog=4096;
        ssl_certificate {root}/server.pem;
        ssl_certificate_key {root}/server.key;
        root {root}/www;
    }}
}}
"""


@contextlib.contextmanager
def _run_nginx(
    binary: str, root: Path, ca_file: str, large_len: int
) -> Iterator[ServerInfo]:
    www = root / "www"
    www.mkdir(mode=0o755)
    (www / "small").write_bytes(bytes(range(256)) * (SMALL_LEN // 256))
    with open(www / "large", "wb") as f:
        block = bytes(range(256)) * 4096  # 1 MiB
        for _ in range(large_len // len(block)):
            f.write(block)
        f.write(block[: large_len % len(block)])
    for path in www.iterdir():
        path.chmod(0o644)
    http_port, https_port = _free_port(), _free_port()
    conf = root / "nginx.conf"
    conf.write_text(
        _NGINX_CONF.format(
            root=root, host=HOST, http_port=http_port, https_port=https_port
        )
    )
    proc = subprocess.Popen(
        [binary, "-e", str(root / "error.log"), "-p", str(root), "-c", str(conf)],
        stdin=subprocess.DEVNULL,
    )
    try:
        _wait_listening(proc, [http_port, https_port])
        yield ServerInfo(
            name=f"nginx {nginx_version(binary)}",
            host=HOST,
            http_port=http_port,
            https_port=https_port,
            ca_file=ca_file,
            small_path="/small",
            small_len=SMALL_LEN,
            large_path="/large",
            large_len=large_len,
        )
    finally:
        _stop(proc)


@contextlib.contextmanager
def _run_bundled(
    root: Path, ca_file: str, large_len: int, why: str
) -> Iterator[ServerInfo]:
    cert = str(root / "server-both.pem")
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bundled_server", cert],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        ports = json.loads(proc.stdout.readline() or b"{}")
        if not ports:
            raise RuntimeError("the bundled server did not start")
        _wait_listening(proc, [ports["http"], ports["https"]])
        yield ServerInfo(
            name=f"the bundled trio_pool.testing server ({why})",
            host=HOST,
            http_port=ports["http"],
            https_port=ports["https"],
            ca_file=ca_file,
            small_path=f"/bytes/{SMALL_LEN}",
            small_len=SMALL_LEN,
            large_path=f"/bytes/{large_len}",
            large_len=large_len,
        )
    finally:
        _stop(proc)
