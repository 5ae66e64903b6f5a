"""httpcore on trio: one ``AsyncConnectionPool`` (``max_connections`` = tasks)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpcore
import trio

from .. import drivers
from ..common import Job, Outcome
from . import client_context, request_headers


def run(job: Job) -> Outcome:
    return trio.run(drivers.run_trio, job, open_client)


@asynccontextmanager
async def open_client(job: Job) -> AsyncIterator[drivers.AsyncWorkers]:
    headers = list((request_headers(job) or {}).items())
    async with httpcore.AsyncConnectionPool(
        ssl_context=client_context(job) if job.tls else None,
        max_connections=job.concurrency,
        max_keepalive_connections=job.concurrency,
    ) as pool:
        base = job.base_url

        async def fetch(path: str, stream: bool) -> tuple[int, int]:
            if not stream:
                r = await pool.request("GET", base + path, headers=headers)
                return r.status, len(r.content)
            async with pool.stream("GET", base + path, headers=headers) as r:
                size = 0
                async for chunk in r.aiter_stream():
                    size += len(chunk)
                return r.status, size

        yield drivers.shared(fetch)
