"""httpx on trio: one ``AsyncClient`` with a connection limit equal to the tasks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import trio

from .. import drivers
from ..common import Job, Outcome
from . import client_context, request_headers


def run(job: Job) -> Outcome:
    return trio.run(drivers.run_trio, job, open_client)


@asynccontextmanager
async def open_client(job: Job) -> AsyncIterator[drivers.AsyncWorkers]:
    limits = httpx.Limits(
        max_connections=job.concurrency, max_keepalive_connections=job.concurrency
    )
    # Generous timeouts: httpx's 5 s pool timeout would fail 1000 waiting tasks.
    async with httpx.AsyncClient(
        limits=limits,
        verify=client_context(job) if job.tls else True,
        timeout=120.0,
        trust_env=False,
        headers=request_headers(job),
    ) as client:
        base = job.base_url

        async def fetch(path: str, stream: bool) -> tuple[int, int]:
            if not stream:
                r = await client.get(base + path)
                return r.status_code, len(r.content)
            async with client.stream("GET", base + path) as r:
                size = 0
                async for chunk in r.aiter_bytes():
                    size += len(chunk)
                return r.status_code, size

        yield drivers.shared(fetch)
