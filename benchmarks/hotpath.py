"""CPU microseconds per request, layer by layer: ``python -m benchmarks.hotpath``.

Theory of operation
-------------------
All variants run in one process against one nginx (or bundled) server, one
task each, on keep-alive connections. Rounds are interleaved: every round
runs every variant for ``--requests`` requests (in an order rotated per
round), timing each with ``time.process_time()``, and the report is the
median over rounds. CPU time, not wall time, because the machine is shared;
in one process, because what is compared is the cost of the layers, not of
process start-up. The variants:

* ``socket``: pre-built request bytes, read until the known length;
* ``h11``: a bare h11 loop on one connection (as ``clients/h11_client``);
* ``engine``: ``HTTP11Connection`` alone (head built, sent, body read);
* ``urlopen``: ``HTTPConnectionPool.urlopen``;
* ``pool``: ``HTTPConnectionPool.request``;
* ``pool+total``: the same with ``timeout=Timeout(total=30)``;
* ``manager``: ``PoolManager.request`` with an absolute URL;
* ``h11-tls`` and ``pool-tls``: the bare h11 loop and
  ``HTTPSConnectionPool.request`` over TLS (the HTTPS bar);
* ``download``: (``--download``) MiB per CPU-second streaming the large body
  with ``stream(2**16)``, beside the bare loops.
"""

from __future__ import annotations

import argparse
import ssl
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import h11
import trio

import trio_pool

from . import servers
from .common import MIB

Fetch = Callable[[], Awaitable[int]]


async def _bare_socket(info: servers.ServerInfo, path: str, length: int) -> Fetch:
    stream = await trio.open_tcp_stream(info.host, info.http_port)
    request = f"GET {path} HTTP/1.1\r\nHost: {info.host}\r\n\r\n".encode()

    async def fetch() -> int:
        await stream.send_all(request)
        head = b""
        while (end := head.find(b"\r\n\r\n")) < 0:
            head += await stream.receive_some(2**16)
        size = len(head) - end - 4
        while size < length:
            size += len(await stream.receive_some(2**16))
        return size

    return fetch


async def _bare_h11(
    info: servers.ServerInfo, path: str, length: int, *, tls: bool = False
) -> Fetch:
    stream: trio.abc.Stream = await trio.open_tcp_stream(
        info.host, info.https_port if tls else info.http_port
    )
    if tls:
        context = ssl.create_default_context(cafile=info.ca_file)
        stream = trio.SSLStream(stream, context, server_hostname=info.host)
    conn = h11.Connection(h11.CLIENT)
    headers = [("Host", f"{info.host}:{info.http_port}")]

    async def fetch() -> int:
        request = h11.Request(method="GET", target=path, headers=headers)
        await stream.send_all(conn.send(request) + conn.send(h11.EndOfMessage()))
        size = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(bytes(await stream.receive_some(2**16)))
            elif isinstance(event, h11.Data):
                size += len(event.data)
            elif isinstance(event, h11.EndOfMessage):
                conn.start_next_cycle()
                return size

    return fetch


def _pool_fetch(pool: trio_pool.HTTPConnectionPool, path: str, **kw: Any) -> Fetch:
    async def fetch() -> int:
        return len((await pool.request("GET", path, **kw)).data)

    return fetch


def _stream_fetch(pool: trio_pool.HTTPConnectionPool, path: str) -> Fetch:
    async def fetch() -> int:
        r = await pool.request("GET", path, preload_content=False)
        size = 0
        async for chunk in r.stream(2**16):
            size += len(chunk)
        return size

    return fetch


async def _engine(info: servers.ServerInfo, path: str) -> Fetch:
    """``HTTP11Connection`` alone: the protocol engine, no pool, no response."""
    from trio_pool._body import RequestBody
    from trio_pool._http11 import HTTP11Connection
    from trio_pool._request import build_head

    stream = await trio.open_tcp_stream(info.host, info.http_port)
    http = HTTP11Connection(stream)
    host = f"{info.host}:{info.http_port}".encode()

    async def fetch() -> int:
        body = RequestBody(None)
        head = build_head("GET", path, None, body, False, host=host, url=path)
        await http.send_request(head, body.chunks(), None)
        await http.receive_response()
        size = 0
        while data := await http.receive_data():
            size += len(data)
        http.finish_cycle()
        return size

    return fetch


def _urlopen_fetch(pool: trio_pool.HTTPConnectionPool, path: str) -> Fetch:
    async def fetch() -> int:
        return len((await pool.urlopen("GET", path)).data)

    return fetch


def _manager_fetch(manager: trio_pool.PoolManager, url: str) -> Fetch:
    async def fetch() -> int:
        return len((await manager.request("GET", url)).data)

    return fetch


async def _measure(
    variants: dict[str, Fetch], rounds: int, n: int
) -> dict[str, list[float]]:
    names = list(variants)
    for fetch in variants.values():  # warm up
        for _ in range(20):
            await fetch()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            fetch = variants[name]
            began = time.process_time()
            for _ in range(n):
                await fetch()
            times[name].append((time.process_time() - began) / n)
    return times


async def _run(info: servers.ServerInfo, args: argparse.Namespace) -> None:
    small = info.small_path, info.small_len
    url = f"http://{info.host}:{info.http_port}{info.small_path}"
    total = trio_pool.Timeout(total=30)
    async with (
        trio_pool.HTTPConnectionPool(info.host, info.http_port) as pool,
        trio_pool.HTTPConnectionPool(info.host, info.http_port) as pool2,
        trio_pool.PoolManager() as manager,
        trio_pool.HTTPSConnectionPool(
            info.host, info.https_port, ca_certs=info.ca_file
        ) as tls_pool,
    ):
        variants: dict[str, Fetch] = {
            "socket": await _bare_socket(info, *small),
            "h11": await _bare_h11(info, *small),
            "engine": await _engine(info, info.small_path),
            "urlopen": _urlopen_fetch(pool, info.small_path),
            "pool": _pool_fetch(pool, info.small_path),
            "pool+total": _pool_fetch(pool2, info.small_path, timeout=total),
            "manager": _manager_fetch(manager, url),
            "h11-tls": await _bare_h11(info, *small, tls=True),
            "pool-tls": _pool_fetch(tls_pool, info.small_path),
        }
        only = set(args.only or variants)
        variants = {k: v for k, v in variants.items() if k in only}
        times = await _measure(variants, args.rounds, args.requests)
        medians = {name: statistics.median(v) * 1e6 for name, v in times.items()}
        print(f"CPU µs per request (median of {args.rounds} rounds x {args.requests})")
        for name, us in medians.items():
            # Over TLS, the reference is the bare h11 loop over TLS.
            reference = "h11-tls" if name.endswith("-tls") else "h11"
            ratio = ""
            if reference in medians:
                ratio = f"  {medians[reference] / us:5.2f}x bare {reference}"
            print(f"  {name:12} {us:7.1f}{ratio}")
        if args.download:
            big = info.large_path, info.large_len
            downloads = {
                "socket": await _bare_socket(info, *big),
                "h11": await _bare_h11(info, *big),
                "pool": _stream_fetch(pool, info.large_path),
            }
            times = await _measure(downloads, args.rounds, 1)
            print(f"MiB per CPU-second, {info.large_len // MIB} MiB body")
            for name, values in times.items():
                rate = info.large_len / MIB / statistics.median(values)
                print(f"  {name:12} {rate:7,.0f}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.hotpath")
    p.add_argument("--server", choices=["auto", "nginx", "bundled"], default="auto")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--only", nargs="+")
    p.add_argument("--download", action="store_true")
    p.add_argument("--download-mib", type=int, default=50)
    args = p.parse_args(argv)
    large = args.download_mib * MIB if args.download else servers.SMALL_LEN
    with servers.open_server(args.server, large) as info:
        trio.run(_run, info, args)


if __name__ == "__main__":
    main()
