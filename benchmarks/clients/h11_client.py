"""A bare h11-on-trio loop: each task owns one keep-alive connection, no pool."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import h11
import trio

from .. import drivers
from ..common import Job, Outcome
from . import client_context


def run(job: Job) -> Outcome:
    return trio.run(drivers.run_trio, job, open_client)


async def _connect(job: Job) -> trio.abc.Stream:
    stream = await trio.open_tcp_stream(job.host, job.port)
    if not job.tls:
        return stream
    return trio.SSLStream(stream, client_context(job), server_hostname=job.host)


async def _exchange(
    stream: trio.abc.Stream, conn: h11.Connection, request: h11.Request
) -> tuple[int, int]:
    await stream.send_all(conn.send(request) + conn.send(h11.EndOfMessage()))
    status = size = 0
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(bytes(await stream.receive_some(2**16)))
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            size += len(event.data)
        elif isinstance(event, h11.EndOfMessage):
            return status, size
        else:
            raise h11.RemoteProtocolError(f"unexpected {event!r}")


@asynccontextmanager
async def open_client(job: Job) -> AsyncIterator[drivers.AsyncWorkers]:
    headers = [("Host", job.host_header)]
    if job.new_conn:
        headers.append(("Connection", "close"))

    @asynccontextmanager
    async def worker() -> AsyncIterator[drivers.Fetch]:
        if job.new_conn:

            async def fetch_once(path: str, stream: bool) -> tuple[int, int]:
                async with await _connect(job) as s:
                    conn = h11.Connection(h11.CLIENT)
                    request = h11.Request(method="GET", target=path, headers=headers)
                    return await _exchange(s, conn, request)

            yield fetch_once
            return
        async with await _connect(job) as s:
            conn = h11.Connection(h11.CLIENT)

            async def fetch(path: str, stream: bool) -> tuple[int, int]:
                request = h11.Request(method="GET", target=path, headers=headers)
                result = await _exchange(s, conn, request)
                conn.start_next_cycle()
                return result

            yield fetch

    yield worker
