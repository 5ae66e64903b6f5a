"""urllib3 with threads: a ``PoolManager`` with ``maxsize`` = tasks, ``block=True``.

Threads stand in for tasks, one each up to ``THREAD_CAP`` (50): beyond that,
threads cost more than they show about the client.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import urllib3

from .. import drivers
from ..common import Job, Outcome
from . import request_headers


def run(job: Job) -> Outcome:
    return drivers.run_threads(job, open_client)


@contextmanager
def open_client(job: Job) -> Iterator[drivers.SyncWorkers]:
    headers = request_headers(job)
    with urllib3.PoolManager(
        maxsize=job.concurrency,
        block=True,
        ca_certs=job.ca_file if job.tls else None,
    ) as http:
        base = job.base_url

        def fetch(path: str, stream: bool) -> tuple[int, int]:
            if not stream:
                r = http.request("GET", base + path, headers=headers)
                return r.status, len(r.data)
            r = http.request("GET", base + path, headers=headers, preload_content=False)
            size = 0
            for chunk in r.stream(2**16):
                size += len(chunk)
            r.release_conn()
            return r.status, size

        yield drivers.shared_sync(fetch)
