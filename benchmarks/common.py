"""What the runner and the measuring subprocesses share: jobs, outcomes, scenarios."""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
from dataclasses import dataclass
from typing import Any

MIB = 1024 * 1024

#: Every client library measured, in table order, with the label shown.
CLIENTS: dict[str, str] = {
    "trio_pool": "trio_pool (trio)",
    "aiohttp": "aiohttp (asyncio)",
    "httpx": "httpx (trio)",
    "httpcore": "httpcore (trio)",
    "urllib3": "urllib3 (threads)",
    "h11": "bare h11 (trio)",
    "socket": "bare socket (trio)",
}

#: urllib3 gets one thread per task, but never more than this many threads.
THREAD_CAP = 50


@dataclass(frozen=True, slots=True)
class Scenario:
    """One kind of load.

    Attributes:
        key: short name, used on the command line and in the tables.
        title: what it measures, for the tables.
        concurrency: tasks (or threads) issuing requests at once.
        requests: the most requests one measurement makes (a time cap
            applies as well).
        tls: HTTPS instead of HTTP.
        new_conn: every request goes on a new connection
            (``Connection: close``).
        download: fetch the large body, streamed, and report MiB/s.
        manager: trio_pool through ``PoolManager.request`` (absolute URLs)
            instead of ``HTTPConnectionPool.request``.
        total_timeout: trio_pool with ``timeout=Timeout(total=...)`` set.
        only: the clients that run it (None: all); the others show ``n/a``.
    """

    key: str
    title: str
    concurrency: int = 1
    requests: int = 100_000
    tls: bool = False
    new_conn: bool = False
    download: bool = False
    manager: bool = False
    total_timeout: bool = False
    only: tuple[str, ...] | None = None

    @property
    def unit(self) -> str:
        return "MiB/s" if self.download else "req/s"


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("seq", "sequential keep-alive GET, 1 task"),
    Scenario(
        "seq_pm",
        "sequential GET, PoolManager.request",
        manager=True,
        only=("trio_pool",),
    ),
    Scenario(
        "seq_total",
        "sequential GET, Timeout(total) set",
        total_timeout=True,
        only=("trio_pool",),
    ),
    Scenario("https", "HTTPS sequential keep-alive GET", tls=True),
    Scenario("c50", "50 concurrent tasks", concurrency=50),
    Scenario("c200", "200 concurrent tasks", concurrency=200),
    Scenario("c1000", "1000 concurrent tasks", concurrency=1000),
    Scenario("newconn", "new connection per request", requests=20_000, new_conn=True),
    Scenario("download", "streamed download", requests=10, download=True),
)
SCENARIO_BY_KEY = {s.key: s for s in SCENARIOS}


@dataclass(frozen=True, slots=True)
class Job:
    """One measurement, as handed to a subprocess (serialised as JSON)."""

    client: str
    scenario: str
    host: str
    port: int
    tls: bool
    ca_file: str | None
    path: str
    body_len: int
    warm_path: str
    warm_len: int
    concurrency: int
    requests: int
    time_cap: float
    warm_cap: float
    new_conn: bool
    stream: bool
    manager: bool = False
    total_timeout: bool = False

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def host_header(self) -> str:
        return f"{self.host}:{self.port}"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Job:
        return cls(**json.loads(text))


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one measurement found.

    Attributes:
        status: ``ok``; ``error`` (a request failed or a response was wrong);
            ``n/a`` (the client cannot do this scenario); ``timeout`` (the
            subprocess had to be killed).
        done: requests completed and checked within the timed phase.
        elapsed: seconds the timed phase took.
        body_bytes: response body bytes received in the timed phase.
        rss_delta_mib: peak RSS during the timed phase minus RSS at its start.
        cpu: CPU seconds (user + system, all threads) the client process used
            in the timed phase.
        detail: the error, or why the scenario is not available.
    """

    status: str
    done: int = 0
    elapsed: float = 0.0
    body_bytes: int = 0
    rss_delta_mib: float = 0.0
    cpu: float = 0.0
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.elapsed > 0

    def rate(self, download: bool) -> float:
        """req/s, or MiB/s of body for a download."""
        return self._per(self.elapsed, download)

    def cpu_rate(self, download: bool) -> float:
        """Requests (or MiB) per CPU-second of the client: what it would do
        alone on a core, much less disturbed by other load on the machine."""
        return self._per(self.cpu, download)

    def _per(self, seconds: float, download: bool) -> float:
        if not self.ok or seconds <= 0:
            return 0.0
        return (self.body_bytes / MIB if download else self.done) / seconds

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Outcome:
        return cls(**data)


_publishing = threading.Lock()
published = threading.Event()


def publish(outcome: Outcome) -> bool:
    """Print a measurement's outcome as the subprocess's answer, once.

    The first call wins: the meter publishes as soon as the timed phase ends,
    so a client that then hangs while closing cannot lose its result.
    """
    if not _publishing.acquire(blocking=False):
        return False
    sys.stdout.write(outcome.to_json() + "\n")
    sys.stdout.flush()
    published.set()
    return True
