"""The ``trio-pool`` command (also ``python -m trio_pool``).

``trio-pool get URL...``   fetch URLs concurrently
``trio-pool bench URL``    a small load generator: req/s and latency percentiles
``trio-pool demo``         start the bundled local server, fetch from it, bench it
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any, TextIO

import trio

from . import PoolManager, ProxyManager, Retry, SOCKSProxyManager, Timeout
from ._exceptions import HTTPError
from ._version import __version__

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trio-pool", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--version", action="version", version=f"trio-pool {__version__}"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    get = commands.add_parser("get", help="fetch one or more URLs concurrently")
    get.add_argument("urls", nargs="+", metavar="URL")
    get.add_argument("-c", "--concurrency", type=int, default=10)
    get.add_argument(
        "-o", "--output-dir", help="save bodies here instead of printing them"
    )
    get.add_argument("-X", "--method", default=None)
    get.add_argument(
        "-H", "--header", action="append", default=[], metavar="'Name: value'"
    )
    body = get.add_mutually_exclusive_group()
    body.add_argument("--json", help="send this JSON text as the body")
    body.add_argument("--data", help="send this text as the body")
    _common(get)

    bench = commands.add_parser("bench", help="load-test a URL")
    bench.add_argument("url")
    bench.add_argument("-c", "--concurrency", type=int, default=50)
    bench.add_argument(
        "-n", "--requests", type=int, default=10_000, help="stop after this many"
    )
    bench.add_argument(
        "-d", "--duration", type=float, default=10.0, help="or after this many seconds"
    )
    _common(bench)

    demo = commands.add_parser(
        "demo", help="run against the bundled local server (no network)"
    )
    demo.add_argument("-n", "--requests", type=int, default=2000)
    return parser


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout", type=float, default=None, help="connect and read timeout, seconds"
    )
    parser.add_argument("--retries", type=int, default=3)
    parser.add_argument("--proxy", help="send requests through this proxy URL")
    parser.add_argument("--cacert", help="trust this CA bundle for https://")
    parser.add_argument(
        "--insecure", action="store_true", help="do not verify certificates"
    )


def _manager(args: argparse.Namespace, maxsize: int) -> PoolManager:
    kw: dict[str, Any] = {
        "maxsize": maxsize,
        "block": True,
        "retries": Retry(args.retries),
        "timeout": Timeout(connect=args.timeout, read=args.timeout),
    }
    if args.cacert:
        kw["ca_certs"] = args.cacert
    if args.insecure:
        kw["cert_reqs"] = "CERT_NONE"
    if args.proxy:
        if args.proxy.lower().startswith("socks"):
            return SOCKSProxyManager(args.proxy, **kw)
        return ProxyManager(args.proxy, **kw)
    return PoolManager(**kw)


def _headers(raw: Sequence[str]) -> dict[str, str]:
    headers = {}
    for line in raw:
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise SystemExit(f"trio-pool: bad header {line!r}; use 'Name: value'")
        headers[name.strip()] = value.strip()
    return headers


async def _get(args: argparse.Namespace, out: TextIO) -> int:
    headers = _headers(args.header)
    body: bytes | None = None
    if args.json is not None:
        json.loads(args.json)  # fail early on bad JSON
        body = args.json.encode()
        headers.setdefault("Content-Type", "application/json")
    elif args.data is not None:
        body = args.data.encode()
    method = args.method or ("POST" if body is not None else "GET")
    failures = 0
    limiter = trio.CapacityLimiter(max(1, args.concurrency))

    async def fetch(index: int, url: str, http: PoolManager) -> None:
        nonlocal failures
        async with limiter:
            try:
                response = await http.urlopen(
                    method,
                    url,
                    body=body,
                    headers=headers or None,
                    preload_content=False,
                )
                data = await _read_with_progress(response, url)
            except HTTPError as exc:
                failures += 1
                print(f"trio-pool: {url}: {type(exc).__name__}: {exc}", file=sys.stderr)
                return
        if response.status >= 400:
            failures += 1
            print(
                f"trio-pool: {url}: HTTP {response.status} {response.reason}",
                file=sys.stderr,
            )
        if args.output_dir:
            name = f"{index:04d}-" + (url.rstrip("/").rsplit("/", 1)[-1] or "index")
            await trio.Path(args.output_dir, name).write_bytes(data)
            print(f"{response.status} {len(data)} bytes {url} -> {name}", file=out)
        else:
            out.write(data.decode("utf-8", "replace"))

    if args.output_dir:
        os.makedirs(args.output_dir, exist_ok=True)
    async with _manager(args, args.concurrency) as http, trio.open_nursery() as nursery:
        for index, url in enumerate(args.urls):
            nursery.start_soon(fetch, index, url, http)
    return 1 if failures else 0


async def _read_with_progress(response: Any, url: str) -> bytes:
    """Read a body; a progress line on stderr for long downloads on a terminal."""
    total = response.length_remaining
    show = sys.stderr.isatty() and (total is None or total > 4 * 2**20)
    parts: list[bytes] = []
    done = 0
    async for chunk in response.stream(2**16):
        parts.append(chunk)
        done += len(chunk)
        if show:
            of = f" / {total / 2**20:.1f}" if total else ""
            print(f"\r{url}: {done / 2**20:.1f}{of} MiB", end="", file=sys.stderr)
    if show:
        print(file=sys.stderr)
    return b"".join(parts)


async def _bench(url: str, args: argparse.Namespace, out: TextIO) -> int:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    sent = 0

    async def worker(http: PoolManager, deadline: float) -> None:
        nonlocal sent
        while sent < args.requests and trio.current_time() < deadline:
            sent += 1
            start = trio.current_time()
            try:
                response = await http.request("GET", url)
            except HTTPError as exc:
                errors[type(exc).__name__] += 1
                continue
            if response.status >= 400:
                errors[f"HTTP {response.status}"] += 1
            else:
                latencies.append(trio.current_time() - start)

    start = trio.current_time()
    async with _manager(args, args.concurrency) as http, trio.open_nursery() as nursery:
        for _ in range(args.concurrency):
            nursery.start_soon(worker, http, start + args.duration)
    elapsed = trio.current_time() - start
    _report(out, url, args.concurrency, latencies, errors, elapsed)
    return 1 if errors else 0


def _report(
    out: TextIO,
    url: str,
    concurrency: int,
    latencies: list[float],
    errors: Counter[str],
    elapsed: float,
) -> None:
    done = len(latencies)
    print(
        f"{url}: {done} ok, {sum(errors.values())} errors, "
        f"{concurrency} tasks, {elapsed:.2f} s",
        file=out,
    )
    print(f"  {done / elapsed:,.0f} req/s", file=out)
    if done >= 2:
        cuts = statistics.quantiles(latencies, n=100)
        p50, p90, p99 = (cuts[i - 1] * 1000 for i in (50, 90, 99))
        print(f"  latency ms: p50 {p50:.2f}  p90 {p90:.2f}  p99 {p99:.2f}", file=out)
    for kind, count in errors.most_common():
        print(f"  error {kind}: {count}", file=out)


async def _demo(args: argparse.Namespace, out: TextIO) -> int:
    from .testing import open_server

    async with open_server(record_requests=False) as server:
        print(f"Bundled test server at {server.url}", file=out)
        urls = [f"{server.url}/bytes/{n}" for n in (10, 1000, 100_000)]
        urls += [
            f"{server.url}/encoded/gzip?n=50000",
            f"{server.url}/redirect/302?to=/echo",
        ]
        async with PoolManager(maxsize=10, block=True) as http:
            results = []

            async def fetch(url: str) -> None:
                response = await http.request("GET", url)
                results.append((url, response.status, len(response.data)))

            async with trio.open_nursery() as nursery:
                for url in urls:
                    nursery.start_soon(fetch, url)
            for url, status, size in sorted(results):
                print(f"  GET {url} -> {status}, {size} bytes", file=out)
            stats = http.connection_from_url(server.url).statistics()
            print(f"  pool: {stats}", file=out)
        bench = argparse.Namespace(
            requests=args.requests, duration=30.0, concurrency=50, retries=0,
            timeout=10.0, proxy=None, cacert=None, insecure=False,
        )  # fmt: skip
        return await _bench(server.url + "/bytes/100", bench, out)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``trio-pool`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "get":
            return trio.run(_get, args, sys.stdout)
        if args.command == "bench":
            return trio.run(_bench, args.url, args, sys.stdout)
        return trio.run(_demo, args, sys.stdout)
    except HTTPError as exc:
        print(f"trio-pool: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
