"""trio_pool: one ``HTTPConnectionPool`` (``maxsize`` = tasks, ``block=True``).

With ``job.manager``, a ``PoolManager`` (same pool options) given absolute
URLs; with ``job.total_timeout``, every request sets ``Timeout(total=...)``.
"""

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


def _client(job: Job) -> Any:
    if not job.manager:
        return _pool(job)
    return trio_pool.PoolManager(maxsize=job.concurrency, block=True)


#: The total limit when one is set: far above any request's time, so it
#: costs what setting it costs and never fires.
TOTAL = 60.0


@asynccontextmanager
async def open_client(job: Job) -> AsyncIterator[drivers.AsyncWorkers]:
    headers = request_headers(job)
    kw: dict[str, Any] = {"headers": headers}
    if job.total_timeout:
        kw["timeout"] = trio_pool.Timeout(total=TOTAL)
    prefix = job.base_url if job.manager else ""
    async with _client(job) as pool:

        async def fetch(path: str, stream: bool) -> tuple[int, int]:
            if not stream:
                r = await pool.request("GET", prefix + path, **kw)
                return r.status, len(r.data)
            r = await pool.request("GET", prefix + path, preload_content=False, **kw)
            size = 0
            async for chunk in r.stream(2**16):
                size += len(chunk)
            return r.status, size

        yield drivers.shared(fetch)
