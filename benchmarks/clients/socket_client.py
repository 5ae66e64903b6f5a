"""The floor: a trio socket loop writing pre-built request bytes.

Each task owns one connection. It reads until the end of the head
(``\\r\\n\\r\\n``), checks the status line, then reads exactly the known body
length. No parser, no headers, no pool. TLS goes through ``trio.SSLStream``.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import trio

from .. import drivers
from ..common import Job, Outcome
from . import client_context

_RECEIVE = 2**16
Send = Callable[[bytes], Awaitable[None]]
Receive = Callable[[int], Awaitable[bytes | bytearray]]


def run(job: Job) -> Outcome:
    return trio.run(drivers.run_trio, job, open_client)


class _Link:
    """A connected socket (or TLS stream) as two plain callables."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.send: Send
        self.receive: Receive
        self._close: Callable[[], Awaitable[None]]

    async def __aenter__(self) -> _Link:
        if self.job.tls:
            tcp = await trio.open_tcp_stream(self.job.host, self.job.port)
            tls = trio.SSLStream(
                tcp, client_context(self.job), server_hostname=self.job.host
            )
            self.send, self.receive, self._close = (
                tls.send_all,
                tls.receive_some,
                tls.aclose,
            )
            return self
        sock = trio.socket.socket()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await sock.connect((self.job.host, self.job.port))

        async def send(data: bytes) -> None:
            view = memoryview(data)
            while view:
                view = view[await sock.send(view) :]

        async def close() -> None:
            sock.close()

        self.send, self.receive, self._close = send, sock.recv, close
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._close()


async def _exchange(link: _Link, request: bytes, body_len: int) -> tuple[int, int]:
    await link.send(request)
    head = b""
    while (end := head.find(b"\r\n\r\n")) < 0:
        data = await link.receive(_RECEIVE)
        if not data:
            return 0, 0
        head += data
    status = 200 if head.startswith(b"HTTP/1.1 200 ") else 0
    size = len(head) - end - 4
    while size < body_len:
        data = await link.receive(_RECEIVE)
        if not data:
            break
        size += len(data)
    return status, size


@asynccontextmanager
async def open_client(job: Job) -> AsyncIterator[drivers.AsyncWorkers]:
    close = b"Connection: close\r\n" if job.new_conn else b""
    requests: dict[str, bytes] = {}
    lengths = {job.path: job.body_len, job.warm_path: job.warm_len}
    for path in lengths:
        requests[path] = (
            f"GET {path} HTTP/1.1\r\nHost: {job.host_header}\r\n".encode()
            + close
            + b"\r\n"
        )

    @asynccontextmanager
    async def worker() -> AsyncIterator[drivers.Fetch]:
        if job.new_conn:

            async def fetch_once(path: str, stream: bool) -> tuple[int, int]:
                async with _Link(job) as link:
                    return await _exchange(link, requests[path], lengths[path])

            yield fetch_once
            return
        async with _Link(job) as link:

            async def fetch(path: str, stream: bool) -> tuple[int, int]:
                return await _exchange(link, requests[path], lengths[path])

            yield fetch

    yield worker
