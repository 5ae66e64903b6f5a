"""trio_pool: one ``HTTPConnectionPool`` (``maxsize`` = tasks, ``block=True``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

import trio_pool

from .. import drivers
from ..common import Job, Outcome
from . import request_headers


def run(job: Job) -> Outcome:
    if job.tls and not hasattr(trio_pool, "HTTPSConnectionPool"):
        return Outcome("n/a", detail="trio_pool.HTTPSConnectionPool does not exist yet")
    return trio.run(drivers.run_trio, job, open_client)


def _pool(job: Job) -> Any:
    if job.tls:
        cls = trio_pool.HTTPSConnectionPool  # type: ignore[attr-defined,unused-ignore]
        return cls(
            job.host,
            job.port,
            maxsize=job.concurrency,
            block=True,
            ca_certs=job.ca_file,
        )
    return trio_pool.HTTPConnectionPool(
        job.host, job.port, maxsize=job.concurrency, block=True
    )


@asynccontextmanager
async def open_client(job: Job) -> AsyncIterator[drivers.AsyncWorkers]:
    headers = request_headers(job)
    async with _pool(job) as pool:

        async def fetch(path: str, stream: bool) -> tuple[int, int]:
            if not stream:
                r = await pool.request("GET", path, headers=headers)
                return r.status, len(r.data)
            r = await pool.request("GET", path, headers=headers, preload_content=False)
            size = 0
            async for chunk in r.stream(2**16):
                size += len(chunk)
            return r.status, size

        yield drivers.shared(fetch)
