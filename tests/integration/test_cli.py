"""The ``trio-pool`` command, run as a real subprocess against loopback servers.

Every test runs ``python -m trio_pool ...`` the way a user would, with stdout
and stderr captured (so never a terminal, except in the one test that gives it
a pseudo-terminal on purpose), under a ``trio.fail_after`` so nothing can hang.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trustme

import trio_pool
from trio_pool._cli._bench import Tally, histogram, percentile, report
from trio_pool._cli._causes import describe
from trio_pool._cli._get import file_name
from trio_pool._cli._serve import ROUTES
from trio_pool.testing import Request, Response, Server, open_server, pattern
from trio_pool.testing._routes import BuiltinRoutes

from . import proxies

# The session fixtures of proxies.py (squid, dante), requested by name below.
target_ca = proxies.target_ca
squid = proxies.squid
dante = proxies.dante

CLI = [sys.executable, "-m", "trio_pool"]
#: Seconds any one command may take before the test fails.
LIMIT = 30


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without proxy variables (the machine's must not count)."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(extra)
    return env


async def run(
    *args: str, env: Mapping[str, str] | None = None, limit: float = LIMIT
) -> subprocess.CompletedProcess[bytes]:
    """Run the command to completion, capturing stdout and stderr."""
    with trio.fail_after(limit):
        return await trio.run_process(
            [*CLI, *args],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=dict(env or clean_env()),
        )


def one_line(stderr: bytes) -> str:
    """stderr, checked to be exactly one line and no traceback."""
    text = stderr.decode()
    assert "Traceback" not in text
    assert text.count("\n") == 1 and text.endswith("\n"), text
    return text


@asynccontextmanager
async def spawn(
    *args: str, stderr: int = subprocess.PIPE
) -> AsyncIterator[trio.Process]:
    """Start the command with piped stdout (and stderr); reap it on the way out."""
    proc = await trio.lowlevel.open_process(
        [*CLI, *args], stdout=subprocess.PIPE, stderr=stderr, env=clean_env()
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            with trio.move_on_after(LIMIT) as waited:
                await proc.wait()
            if waited.cancelled_caught:
                proc.kill()
        with trio.CancelScope(shield=True):
            await proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    await stream.aclose()


async def read_all(stream: trio.abc.ReceiveStream | None) -> bytes:
    """Everything ``stream`` sends until it closes."""
    assert stream is not None
    data = b""
    while piece := await stream.receive_some():
        data += piece
    return data


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A URL whose port is bound but not listening: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


# -- bodies are bytes, streamed ----------------------------------------------


async def test_binary_body_is_written_as_bytes(server: Server) -> None:
    done = await run("get", server.url + "/bytes/70000")
    assert done.returncode == 0, done.stderr
    assert done.stdout == pattern(70000)  # every byte value, invalid UTF-8 too
    assert done.stderr == b""


async def test_output_dir_gets_one_file_per_url(server: Server, tmp_path: Path) -> None:
    urls = [server.url + "/bytes/10", server.url + "/bytes/20000?chunked=1"]
    done = await run("get", *urls, "-o", str(tmp_path), "-c", "2")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "0000-10").read_bytes() == pattern(10)
    assert (tmp_path / "0001-20000").read_bytes() == pattern(20000)
    lines = done.stdout.decode().splitlines()
    assert lines == [
        f"{urls[0]} -> {tmp_path / '0000-10'} (10 bytes)",
        f"{urls[1]} -> {tmp_path / '0001-20000'} (20000 bytes)",
    ]


async def test_output_dir_keeps_no_file_of_a_failed_fetch(
    server: Server, tmp_path: Path, refused_url: str
) -> None:
    urls = [refused_url + "/gone", server.url + "/status/500?body=oops"]
    done = await run("get", *urls, "-o", str(tmp_path), "--retries", "0")
    assert done.returncode == 1
    assert sorted(os.listdir(tmp_path)) == ["0001-500"]
    assert (tmp_path / "0001-500").read_bytes() == b"oops"  # an error status saves
    assert done.stdout.decode() == f"{urls[1]} -> {tmp_path / '0001-500'} (4 bytes)\n"
    # Errors are reported as they happen, so in any order.
    errors = sorted(done.stderr.decode().splitlines())
    assert errors == sorted(
        [
            f"trio-pool: {urls[0]}: connection refused",
            f"trio-pool: {urls[1]}: HTTP 500 Internal Server Error",
        ]
    )


def test_file_names_are_safe() -> None:
    assert file_name(3, "http://h/a/b/c.tar.gz?x=1") == "0003-c.tar.gz"
    assert file_name(0, "http://h/") == "0000-index"
    assert file_name(1, "http://h/..") == "0001-index"
    assert file_name(2, "http://h/a%2Fb") == "0002-a_2Fb"


def peak_rss_kib(pid: int) -> int:
    """A live process's peak resident set size so far (Linux's VmHWM)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM line")  # pragma: no cover


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
async def test_a_200_mb_body_streams_with_flat_memory(server: Server) -> None:
    size = 200_000_000
    block = pattern(256 + 2**20)
    received = 0
    peak_kib = 0
    with trio.fail_after(120):
        async with spawn("get", f"{server.url}/bytes/{size}") as proc:
            assert proc.stdout is not None
            while piece := await proc.stdout.receive_some(2**20):
                start = received % 256
                assert piece == block[start : start + len(piece)], received
                received += len(piece)
                # Sampled while the process still has most of the body to
                # write, so it is alive; a buffered body would show at once.
                if received < size - 2**24:
                    peak_kib = max(peak_kib, peak_rss_kib(proc.pid))
            assert await read_all(proc.stderr) == b""
            assert await proc.wait() == 0
    assert received == size
    assert 0 < peak_kib < 100 * 1024, f"peak RSS {peak_kib} KiB, {size}-byte body"


async def test_closed_stdout_pipe_exits_quietly(server: Server) -> None:
    with trio.fail_after(LIMIT):
        async with spawn("get", f"{server.url}/bytes/50000000") as proc:
            assert proc.stdout is not None
            assert await proc.stdout.receive_some(1000)
            await proc.stdout.aclose()  # like `| head -c 1000`
            err = await read_all(proc.stderr)
            assert (await proc.wait(), err) == (0, b"")


# -- timeouts and retries -----------------------------------------------------


async def test_timeout_ends_a_stalled_fetch(server: Server) -> None:
    start = trio.current_time()
    done = await run("get", server.url + "/fault/stall", "--timeout", "0.5")
    assert done.returncode == 1
    assert one_line(done.stderr) == (
        f"trio-pool: {server.url}/fault/stall: timed out after 0.5 s\n"
    )
    assert trio.current_time() - start < 10


async def test_timeout_bounds_the_retries_too(server: Server) -> None:
    # Each attempt gets a 503 after 0.3 s; with the backoff (0, 1, 2, 4 s...)
    # ten retries would take over a minute, far beyond the 1.5 s given.
    @server.route("/slow-503")
    async def slow_503(request: Request) -> Response:
        await trio.sleep(0.3)
        return Response.text("busy", 503)

    start = trio.current_time()
    done = await run(
        "get", server.url + "/slow-503", "--timeout", "1.5", "--retries", "10"
    )
    elapsed = trio.current_time() - start
    assert done.returncode == 1
    # Either the deadline struck mid-attempt, or the retry loop saw that the
    # next backoff would outlive it and returned the last 503.
    assert re.search(r"timed out after 1.5 s|HTTP 503", one_line(done.stderr))
    assert elapsed < 1.5 + 3  # 3 s: interpreter startup on a busy machine
    assert server.request_count >= 2  # it did retry


async def test_default_retries_cover_503_and_resets(server: Server) -> None:
    done = await run("get", server.url + "/fail/2?key=s&mode=503")
    assert done.returncode == 0, done.stderr
    assert server.fail_counts["s"] == 3
    done = await run("get", server.url + "/fail/2?key=r&mode=reset")
    assert done.returncode == 0, done.stderr
    assert server.fail_counts["r"] == 3


async def test_retries_zero_shows_the_error_status(server: Server) -> None:
    done = await run("get", server.url + "/fail/1?key=z&mode=503", "--retries", "0")
    assert done.returncode == 1
    assert done.stdout == b"failing"  # the body is still written
    assert one_line(done.stderr).endswith(": HTTP 503 Service Unavailable\n")
    assert server.fail_counts["z"] == 1


async def test_redirects_are_followed_without_retries(server: Server) -> None:
    done = await run("get", server.url + "/redirect/302?to=/bytes/5", "--retries", "0")
    assert (done.returncode, done.stdout) == (0, pattern(5))


# -- errors: one line, naming the cause ---------------------------------------


async def test_connection_refused(refused_url: str) -> None:
    done = await run("get", refused_url + "/x", "--retries", "0")
    assert done.returncode == 1
    assert one_line(done.stderr) == f"trio-pool: {refused_url}/x: connection refused\n"


async def test_certificate_verify_failed(tmp_path: Path) -> None:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    async with open_server(ssl_context=context) as tls:
        done = await run("get", tls.url + "/bytes/3")
        assert done.returncode == 1
        assert one_line(done.stderr) == (
            f"trio-pool: {tls.url}/bytes/3: certificate verify failed: "
            "unable to get local issuer certificate\n"
        )
        done = await run("get", tls.url + "/bytes/3", "--cacert", str(ca_file))
        assert (done.returncode, done.stdout) == (0, pattern(3))
        done = await run("get", tls.url + "/bytes/3", "--insecure")
        assert (done.returncode, done.stdout, done.stderr) == (0, pattern(3), b"")


async def test_protocol_errors_are_named(server: Server) -> None:
    done = await run("get", server.url + "/fault/reset", "--retries", "0")
    assert "connection reset by peer" in one_line(done.stderr)
    done = await run("get", server.url + "/fault/close-mid-body", "--retries", "0")
    assert "body cut short after 512 bytes (512 more expected)" in one_line(done.stderr)
    # Written: every byte that arrived before the body broke.
    assert done.stdout == pattern(512)
    done = await run("get", server.url + "/fault/malformed-status", "--retries", "0")
    assert "malformed response from server" in one_line(done.stderr)
    assert done.returncode == 1


async def test_causes_are_unwrapped_from_chains(refused_url: str) -> None:
    try:
        try:
            raise socket.gaierror(-2, "Name or service not known")
        except socket.gaierror as exc:
            raise trio_pool.NameResolutionError("nowhere.test", None, exc) from exc
    except trio_pool.NameResolutionError as exc:
        wrapped = trio_pool.MaxRetryError(None, "http://nowhere.test/", exc)
    assert describe(wrapped) == "name resolution failed for 'nowhere.test'"
    # Real chains: MaxRetryError -> ProxyError -> NewConnectionError -> OSError
    # -> a group of one ConnectionRefusedError per address tried.
    async with trio_pool.ProxyManager(refused_url, retries=False) as http:
        with pytest.raises(trio_pool.HTTPError) as caught:
            await http.request("GET", "http://127.0.0.1:9/")
    assert describe(caught.value) == "proxy: connection refused"
    async with trio_pool.PoolManager(retries=0) as http:
        with pytest.raises(trio_pool.MaxRetryError) as retried:
            await http.request("GET", refused_url)
    assert describe(retried.value) == "connection refused"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--json", "{bad"], "argument --json: not valid JSON"),
        (["--timeout", "-1"], "argument --timeout: must be > 0, not -1"),
        (["--timeout", "soon"], "argument --timeout: not a number: 'soon'"),
        (["-c", "0"], "argument -c/--concurrency: must be >= 1, not 0"),
        (["-H", "no colon"], "bad header 'no colon': use -H 'Name: value'"),
        (["--data", "@/nonexistent/file"], "--data @/nonexistent/file: No such file"),
        (["--json", "1", "--data", "x"], "not allowed with argument"),
    ],
)
async def test_usage_errors_are_one_line_exit_2(
    server: Server, args: list[str], message: str
) -> None:
    done = await run("get", server.url + "/echo", *args)
    assert done.returncode == 2
    assert message in one_line(done.stderr)
    assert server.request_count == 0


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://127.0.0.1/", "bad URL 'ftp://127.0.0.1/': only http:// and https://"),
        ("http://", "bad URL 'http://': no host"),
        (
            "http://127.0.0.1:99999/",
            "bad URL 'http://127.0.0.1:99999/': Failed to parse",
        ),
    ],
)
async def test_bad_urls_are_usage_errors(url: str, message: str) -> None:
    for command in ("get", "bench"):
        done = await run(command, url)
        assert done.returncode == 2
        assert message in one_line(done.stderr)


async def test_bad_proxy_urls_are_usage_errors(server: Server) -> None:
    done = await run("get", server.url, "--proxy", "ftp://127.0.0.1:3")
    assert done.returncode == 2
    assert "--proxy ftp://127.0.0.1:3: unsupported scheme 'ftp'" in one_line(
        done.stderr
    )
    assert server.request_count == 0


async def test_socks_proxy_without_socksio(tmp_path: Path, refused_url: str) -> None:
    # A stand-in package that fails to import, as if socksio were not installed.
    (tmp_path / "socksio").mkdir()
    (tmp_path / "socksio" / "__init__.py").write_text(
        "raise ImportError(\"No module named 'socksio'\")\n"
    )
    env = clean_env(PYTHONPATH=str(tmp_path))
    done = await run("get", refused_url, "--proxy", "socks5h://127.0.0.1:1", env=env)
    assert done.returncode == 2
    assert "SOCKS proxies need the socksio package" in one_line(done.stderr)


async def test_ctrl_c_exits_130_with_one_line(server: Server) -> None:
    with trio.fail_after(LIMIT):
        async with spawn("get", server.url + "/fault/stall") as proc:
            await server.wait_until(lambda s: s.request_count == 1)
            proc.send_signal(signal.SIGINT)
            err = await read_all(proc.stderr)
            assert await proc.wait() == 130
    assert one_line(err) == "trio-pool: interrupted\n"


# -- several URLs, -i, request options ----------------------------------------


async def test_several_urls_in_command_line_order_fetched_concurrently(
    server: Server,
) -> None:
    @server.route("/slow")
    async def slow(request: Request) -> Response:
        await trio.sleep(float(request.param("s") or 0))
        return Response.text(f"body {request.param('s')}")

    urls = [f"{server.url}/slow?s={s}" for s in ("1.5", "1.0", "0.1")]
    start = trio.current_time()
    done = await run("get", *urls, "-c", "3")
    elapsed = trio.current_time() - start
    assert done.returncode == 0, done.stderr
    # Several bodies on stdout: each is preceded by its status line and headers.
    parts = done.stdout.split(b"HTTP/1.1 200 OK\r\n")
    assert parts[0] == b""
    assert [p.rsplit(b"\r\n\r\n", 1)[1] for p in parts[1:]] == [
        b"body 1.5",
        b"body 1.0",
        b"body 0.1",
    ]
    assert elapsed < 2.6 + 1.5  # one after the other would take 2.6 s + startup
    assert max(r.connection_id for r in server.requests) == 3


async def test_include_shows_status_line_and_headers(server: Server) -> None:
    done = await run("get", "-i", server.url + "/headers?X-A=1&X-A=2")
    assert done.returncode == 0, done.stderr
    head, body = done.stdout.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK"
    assert lines[1:3] == ["X-A: 1", "X-A: 2"]
    assert "Content-Length: 2" in lines
    assert body == b"ok"


async def test_method_headers_and_bodies(server: Server, tmp_path: Path) -> None:
    url = server.url + "/echo"
    done = await run("get", url, "-X", "put", "-H", "X-Test: yes", "--data", "hi")
    assert done.returncode == 0, done.stderr
    sent = server.requests[-1]
    assert (sent.method, sent.body, sent.header("X-Test")) == ("PUT", b"hi", "yes")
    await run("get", url, "--json", '{"a": 1}')
    sent = server.requests[-1]
    assert (sent.method, sent.body) == ("POST", b'{"a": 1}')
    assert sent.header("Content-Type") == "application/json"
    upload = tmp_path / "upload.bin"
    upload.write_bytes(pattern(3000))
    await run("get", url, "--data", f"@{upload}")
    assert server.requests[-1].body == pattern(3000)
    with trio.fail_after(LIMIT):
        await trio.run_process(
            [*CLI, "get", url, "--data", "@-"], stdin=b"from stdin",
            capture_stdout=True, env=clean_env(),
        )  # fmt: skip
    assert server.requests[-1].body == b"from stdin"


async def test_error_status_fails_but_writes_the_body(server: Server) -> None:
    done = await run("get", server.url + "/status/404?body=gone")
    assert (done.returncode, done.stdout) == (1, b"gone")
    assert one_line(done.stderr) == (
        f"trio-pool: {server.url}/status/404?body=gone: HTTP 404 Not Found\n"
    )


async def on_a_terminal(*args: str, stdout_too: bool = False) -> tuple[int, str]:
    """Run the command with stderr on a pseudo-terminal; exit status and output."""
    controller, terminal = os.openpty()
    stdout = terminal if stdout_too else subprocess.DEVNULL
    try:
        with trio.fail_after(LIMIT):
            proc = await trio.run_process(
                [*CLI, *args], stdout=stdout, stderr=terminal,
                env=clean_env(), check=False,
            )  # fmt: skip
        os.close(terminal)
        terminal = -1
        return proc.returncode, _read_all(controller)
    finally:
        os.close(controller)
        if terminal >= 0:
            os.close(terminal)


def _read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the other end is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


async def test_progress_only_on_a_terminal(server: Server) -> None:
    url = server.url + "/fault/drip?n=8&delay=0.1"
    done = await run("get", url)
    assert done.returncode == 0
    assert done.stderr == b""  # captured stderr is not a terminal: no progress
    code, shown = await on_a_terminal("get", url)
    assert code == 0
    assert "trio-pool: 0/1 URLs" in shown
    assert shown.endswith("\r\x1b[K")  # erased at the end
    # With the body going to the same terminal, no progress to garble it.
    code, shown = await on_a_terminal("get", url, stdout_too=True)
    assert code == 0
    assert shown.replace("\r\n", "\n") == pattern(8).decode("latin-1")


# -- environment proxies --------------------------------------------------------


async def test_no_proxy_env_ignores_http_proxy(server: Server) -> None:
    env = clean_env(HTTP_PROXY="http://127.0.0.1:1")
    done = await run("get", server.url + "/bytes/4", "--no-proxy-env", env=env)
    assert (done.returncode, done.stdout) == (0, pattern(4))


async def test_http_proxy_from_the_environment_is_used(server: Server) -> None:
    env = clean_env(HTTP_PROXY="http://127.0.0.1:1")
    done = await run("get", server.url + "/bytes/4", "--retries", "0", env=env)
    assert done.returncode == 1
    assert one_line(done.stderr).endswith(": proxy: connection refused\n")
    assert server.request_count == 0


async def test_http_proxy_from_the_environment_reaches_squid(
    squid: proxies.Squid, server: Server
) -> None:
    env = clean_env(HTTP_PROXY=squid.url, NO_PROXY="")
    done = await run("get", server.url + "/bytes/100", env=env)
    assert (done.returncode, done.stdout) == (0, pattern(100)), done.stderr
    assert "squid" in (server.requests[-1].header("Via") or "")


async def test_proxy_option_http_and_socks(
    squid: proxies.Squid, dante: proxies.Socks, server: Server
) -> None:
    done = await run("get", server.url + "/bytes/100", "--proxy", squid.url)
    assert (done.returncode, done.stdout) == (0, pattern(100)), done.stderr
    assert "squid" in (server.requests[-1].header("Via") or "")
    socks = dante.url("socks5h")
    done = await run("get", server.url + "/bytes/200", "--proxy", socks)
    assert (done.returncode, done.stdout) == (0, pattern(200)), done.stderr
    assert dante.connected_to(server.port)


# -- bench -----------------------------------------------------------------------


async def test_bench_n_requests(server: Server) -> None:
    done = await run("bench", server.url + "/bytes/100", "-c", "5", "-n", "200")
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode()
    assert "200 requests in" in text
    assert "with 5 tasks: 200 ok, 0 errors" in text
    assert re.search(
        r"latency ms: p50 [\d.]+  p90 [\d.]+  p99 [\d.]+  max [\d.]+", text
    )
    assert "histogram" in text
    assert server.request_count == 200
    assert done.stderr == b""


async def test_bench_duration_has_no_request_cap(server: Server) -> None:
    start = trio.current_time()
    done = await run("bench", server.url + "/bytes/10", "-d", "1", "-c", "2")
    assert done.returncode == 0, done.stderr
    assert 1 <= trio.current_time() - start < 10
    seconds = float(re.findall(r"requests in ([\d.]+) s", done.stdout.decode())[0])
    assert 0.9 <= seconds <= 1.5
    assert server.request_count > 20


async def test_bench_groups_errors_by_cause(refused_url: str) -> None:
    done = await run("bench", refused_url, "-n", "20", "-c", "2")
    assert done.returncode == 1
    text = done.stdout.decode()
    assert "20 requests in" in text
    assert "    connection refused: 20" in text


async def test_bench_does_not_retry_unless_asked(server: Server) -> None:
    url = server.url + "/fail/3?key=b&mode=503"
    done = await run("bench", url, "-n", "5", "-c", "1", "-X", "POST", "--json", "{}")
    assert done.returncode == 1
    assert "    HTTP 503: 3" in done.stdout.decode()
    assert server.fail_counts["b"] == 5
    assert {r.method for r in server.requests} == {"POST"}
    done = await run(
        "bench", url.replace("key=b", "key=c"), "-n", "1", "--retries", "3"
    )
    assert done.returncode == 0, done.stdout
    assert server.fail_counts["c"] == 4


async def test_bench_progress_only_on_a_terminal(server: Server) -> None:
    done = await run("bench", server.url + "/bytes/10", "-d", "0.6")
    assert done.stderr == b""
    code, shown = await on_a_terminal("bench", server.url + "/bytes/10", "-d", "0.6")
    assert code == 0
    assert re.search(r"trio-pool bench: \d+ requests, [\d,]+ req/s, 0 errors", shown)


async def test_bench_ctrl_c_still_reports(server: Server) -> None:
    with trio.fail_after(LIMIT):
        async with spawn("bench", server.url + "/bytes/10", "-c", "2") as proc:
            await server.wait_until(lambda s: s.request_count >= 50)
            proc.send_signal(signal.SIGINT)
            out = await read_all(proc.stdout)
            err = await read_all(proc.stderr)
            assert await proc.wait() == 130
    assert one_line(err) == "trio-pool: interrupted\n"
    assert re.search(r"\d+ requests in [\d.]+ s with 2 tasks", out.decode())


def test_bench_report_percentiles_and_histogram() -> None:
    ordered = [i / 1000 for i in range(1, 101)]  # 1 ms .. 100 ms
    assert [percentile(ordered, p) for p in (50, 90, 99, 100)] == [
        0.05,
        0.09,
        0.099,
        0.1,
    ]
    lines = histogram(ordered)
    assert len(lines) == 10
    assert sum(int(line.split()[3]) for line in lines) == 100
    assert lines[-1].split()[:4] == ["<=", "100.00", "ms", "37"]  # 64..100 ms
    assert lines[0].split()[:4] == ["<=", "1.58", "ms", "1"]
    assert histogram([0.002] * 3) == ["<=     2.00 ms         3  " + "#" * 40]
    tally = Tally()
    tally.ok = 100
    tally.latencies.extend(ordered)
    tally.errors["connection refused"] = 17
    text = report("http://x", tally, 2.0, 4)
    assert "117 requests in 2.00 s with 4 tasks: 100 ok, 17 errors" in text
    assert "58.5 req/s" in text
    assert "p50 50.00  p90 90.00  p99 99.00  max 100.00" in text
    assert text.endswith("errors by cause:\n    connection refused: 17")


# -- serve and demo ------------------------------------------------------------------


async def test_serve_prints_its_url_and_stops_on_ctrl_c() -> None:
    with trio.fail_after(LIMIT):
        async with spawn("serve", "--port", "0") as proc:
            assert proc.stdout is not None
            banner = b""
            while b"docs/testing.md" not in banner:
                piece = await proc.stdout.receive_some()
                assert piece, banner
                banner += piece
            found = re.search(r"at (http://127\.0\.0\.1:\d+) ", banner.decode())
            assert found, banner
            async with trio_pool.PoolManager() as http:
                r = await http.request("GET", found[1] + "/echo?from=test")
            assert r.json()["query"] == {"from": ["test"]}
            proc.send_signal(signal.SIGINT)
            err = await read_all(proc.stderr)
            assert (await proc.wait(), err) == (0, b"")
    assert "/fault/stall" in banner.decode()


async def test_serve_on_a_busy_port_is_one_line(server: Server) -> None:
    done = await run("serve", "--port", str(server.port))
    assert done.returncode == 1
    assert "cannot listen on 127.0.0.1:" in one_line(done.stderr)


def test_serve_lists_only_real_routes() -> None:
    routes = BuiltinRoutes()
    missing = routes.resolve("/no/such/route")
    for example, _ in ROUTES:
        assert routes.resolve(example.split("?")[0]) is not missing, example


async def test_demo_runs_offline() -> None:
    done = await run("demo", "-n", "300", limit=60)
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode()
    assert "HTTP/1.1 200 OK\r\nX-Demo: yes\r\n" in text
    assert "GET /bytes/100000 -> 200, 100000 bytes" in text
    assert "300 requests in" in text
    assert "300 ok, 0 errors" in text


async def test_version_and_help() -> None:
    done = await run("--version")
    assert done.stdout.decode().startswith("trio-pool ")
    done = await run("get", "--help")
    assert done.returncode == 0
    assert b"--no-proxy-env" in done.stdout
    done = await run()
    assert done.returncode == 2
    assert "the following arguments are required" in one_line(done.stderr)


async def test_http2_option(tmp_path: Path) -> None:
    from trio_pool.testing import open_h2_server

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    async with open_h2_server(ssl_context=context) as tls:
        url = f"https://127.0.0.1:{tls.port}/bytes/5"
        done = await run("get", "-i", "--http2", "--cacert", str(ca_file), url)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(b"HTTP/2 200\r\n") or done.stdout.startswith(
            b"HTTP/2 200\n"
        )
        assert done.stdout.endswith(pattern(5))
        done = await run("get", "-i", "--cacert", str(ca_file), url)
        assert done.stdout.startswith(b"HTTP/1.1 200")  # without --http2
        done = await run("bench", "-n", "50", "--http2", "--cacert", str(ca_file), url)
        assert done.returncode == 0, done.stderr
        assert b"50 ok" in done.stdout
    assert tls.requests[0].http_version == "2"
