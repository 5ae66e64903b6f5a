"""aiohttp on asyncio: one ``ClientSession``, connector ``limit`` = tasks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp

from .. import drivers
from ..common import Job, Outcome
from . import client_context, request_headers


def run(job: Job) -> Outcome:
    return asyncio.run(drivers.run_asyncio(job, open_client))


@asynccontextmanager
async def open_client(job: Job) -> AsyncIterator[drivers.AsyncWorkers]:
    connector = aiohttp.TCPConnector(
        limit=job.concurrency, ssl=client_context(job) if job.tls else True
    )
    headers = request_headers(job)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        base = job.base_url

        async def fetch(path: str, stream: bool) -> tuple[int, int]:
            async with session.get(base + path, headers=headers) as r:
                if not stream:
                    return r.status, len(await r.read())
                size = 0
                async for chunk in r.content.iter_chunked(2**16):
                    size += len(chunk)
                return r.status, size

        yield drivers.shared(fetch)
