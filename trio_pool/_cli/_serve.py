"""``trio-pool serve`` and ``trio-pool demo``: the bundled test server by hand."""

from __future__ import annotations

from typing import BinaryIO, TextIO

import trio

import trio_pool
from trio_pool.testing import open_server

from ._bench import run_bench
from ._get import run_get
from ._options import (
    BenchOptions,
    ClientOptions,
    DemoOptions,
    GetOptions,
    RequestSpec,
    ServeOptions,
)

__all__ = ["ROUTES", "run_demo", "run_serve"]

#: What ``serve`` lists: an example path of each built-in route, and what it does.
ROUTES: tuple[tuple[str, str], ...] = (
    ("/echo", "any method: the request described as JSON"),
    ("/bytes/1000", "1000 bytes 0..255 repeated (?chunked=1 for chunked)"),
    ("/status/503", "that status (?retry_after=, ?body=)"),
    ("/redirect/302?to=/echo", "a redirect"),
    ("/encoded/gzip", "a gzip-encoded body (also deflate, br, zstd)"),
    ("/headers?X-Name=value", "each query pair as a response header"),
    ("/fail/2?key=k&mode=503", "fails twice per key (reset, close or 503), then /echo"),
    ("/fault/stall", "reads the request, never answers"),
    ("/fault/drip?n=10&delay=0.5", "the body one byte at a time"),
    ("/fault/reset", "a TCP reset instead of an answer"),
    ("/fault/close-mid-body", "half the body, then a close"),
    ("/fault/malformed-status", "a status line that is not HTTP"),
)


def _banner(url: str) -> str:
    width = max(len(path) for path, _ in ROUTES)
    lines = [f"Serving the trio_pool test server at {url} (Ctrl-C to stop)", "Routes:"]
    lines += [f"  {path:<{width}}  {what}" for path, what in ROUTES]
    lines.append("More, and every parameter: docs/testing.md.")
    return "\n".join(lines)


async def run_serve(options: ServeOptions, stdout: TextIO, stderr: TextIO) -> int:
    """Serve until cancelled (by Ctrl-C); 1 if the port cannot be opened."""
    listening = False
    try:
        async with open_server(
            options.host, options.port, record_requests=False
        ) as server:
            listening = True
            print(_banner(server.url), file=stdout, flush=True)
            await trio.sleep_forever()
    except OSError as exc:
        if listening:
            raise
        where = f"{options.host}:{options.port}"
        reason = exc.strerror or str(exc)
        print(f"trio-pool serve: cannot listen on {where}: {reason}", file=stderr)
        return 1
    return 0  # pragma: no cover - sleep_forever only ends by cancellation


def _demo_client() -> ClientOptions:
    return ClientOptions(
        timeout=30.0, retries=0, proxy=None, proxy_env=False,
        cacert=None, insecure=False, concurrency=50,
    )  # fmt: skip


async def _demo_fetches(url: str, stdout: TextIO) -> None:
    paths = ["/bytes/10", "/bytes/100000", "/encoded/gzip?n=50000", "/redirect/302"]
    async with trio_pool.PoolManager(maxsize=10, block=True) as http:
        results: dict[str, str] = {}

        async def fetch(path: str) -> None:
            r = await http.request("GET", url + path)
            results[path] = f"{r.status}, {len(r.data)} bytes"

        async with trio.open_nursery() as nursery:
            for path in paths:
                nursery.start_soon(fetch, path)
        print(
            "\nFour URLs fetched concurrently with trio_pool.PoolManager:", file=stdout
        )
        for path in paths:
            print(f"  GET {path} -> {results[path]}", file=stdout)
        stats = http.connection_from_url(url).statistics()
        print(f"  pool statistics: {stats}", file=stdout, flush=True)


async def run_demo(
    options: DemoOptions, stdout: BinaryIO, text: TextIO, stderr: TextIO
) -> int:
    """Start the bundled server, fetch from it and bench it, all offline."""
    async with open_server(record_requests=False) as server:
        print(f"The bundled test server is running at {server.url}", file=text)
        print(f"\n$ trio-pool get -i {server.url}/headers?X-Demo=yes", file=text)
        text.flush()
        spec = RequestSpec("GET", (), None)
        get = GetOptions(
            (server.url + "/headers?X-Demo=yes",), True, None, _demo_client(), spec
        )
        code = await run_get(get, stdout, stderr)
        await _demo_fetches(server.url, text)
        url = server.url + "/bytes/100"
        print(f"\n$ trio-pool bench -n {options.requests} {url}", file=text)
        bench = BenchOptions(url, None, options.requests, _demo_client(), spec)
        return code or await run_bench(bench, text, stderr)
