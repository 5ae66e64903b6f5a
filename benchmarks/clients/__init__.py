"""One module per client library; each has ``run(job) -> Outcome``.

A module is imported only by the subprocess that measures it, so no process
holds two client libraries, or both trio and asyncio.
"""

from __future__ import annotations

import importlib
import ssl

from ..common import Job, Outcome

_MODULES = {
    "trio_pool": "trio_pool_client",
    "aiohttp": "aiohttp_client",
    "httpx": "httpx_client",
    "httpcore": "httpcore_client",
    "urllib3": "urllib3_client",
    "h11": "h11_client",
    "socket": "socket_client",
}


def run(job: Job) -> Outcome:
    """Measure ``job`` with the client it names."""
    module = importlib.import_module(f"{__name__}.{_MODULES[job.client]}")
    outcome: Outcome = module.run(job)
    return outcome


def client_context(job: Job) -> ssl.SSLContext:
    """A client TLS context trusting only the benchmark's CA."""
    return ssl.create_default_context(cafile=job.ca_file)


def request_headers(job: Job) -> dict[str, str] | None:
    """Extra request headers: ``Connection: close`` for a new connection each time."""
    return {"Connection": "close"} if job.new_conn else None
