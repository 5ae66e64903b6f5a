"""HTTP/2 benchmarks: ``python -m benchmarks.h2 [--quick | --profile]``.

Theory of operation
-------------------
nginx runs on loopback with one TLS listener that speaks ``h2`` and
``http/1.1`` by ALPN (its own config here: ``listen ... ssl http2``, 128
concurrent streams per connection) and serves a 1 KiB file. Each *row* is one
client with one load:

* trio_pool over HTTP/2: 100 tasks sharing ONE connection (``maxsize=1``,
  ``block=True``); afterwards the pool must report exactly one connection
  created, or the row is an error.
* httpx ``http2=True`` on trio (through anyio), one connection, 100 tasks.
* trio_pool over HTTP/1.1 on the same listener: 100 tasks, 100 connections.
* trio_pool over HTTP/2 with 1000 tasks on one connection (memory stays flat:
  the peak RSS delta is reported).
* ``h2load`` (nghttp2's C load generator), one connection, 100 streams: the
  server's ceiling, when installed.

The Python rows reuse the main runner's machinery: every measurement is a
fresh subprocess (``python -m benchmarks.h2 --measure JOB``) driven by
:func:`benchmarks.drivers.run_trio` (untimed warm-up request per task, a count
and time cap, every response checked, CPU time and peak RSS over the timed
phase) with ``benchmarks.client``'s watchdog, so a client that stalls is cut
or reported as ``timeout``. Each response is also checked to have come over
the protocol the row names. Rounds are interleaved, in an order rotated per
round, and the report takes medians.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import servers
from .client import TEARDOWN_CAP, _describe, _raise_fd_limit, _watchdog
from .common import Job, Outcome, publish
from .drivers import AsyncWorkers, BadResponse, cut_after
from .report import FLAT_MEMORY_MIB
from .run import cpu_model

REPO = Path(__file__).resolve().parent.parent
SMALL = "/small"
#: trio_pool over h2 must reach this multiple of httpx over h2 (SPEC, Quality bars).
H2_TARGET = 5.0


@dataclass(frozen=True, slots=True)
class Row:
    """One client under one load."""

    key: str
    title: str
    short: str  # for the ratios
    client: str  # trio_pool_h2, httpx_h2, trio_pool_h1, bare_h2 or h2load
    tasks: int
    #: Seconds allowed for the untimed warm-up, if more than the plan's.
    warm_cap: float = 0.0


ROWS: tuple[Row, ...] = (
    Row(
        "tp_h2",
        "trio_pool HTTP/2, 100 tasks, 1 connection",
        "trio_pool h2 x100",
        "trio_pool_h2",
        100,
    ),
    Row(
        "httpx_h2",
        "httpx HTTP/2 (trio), 100 tasks, 1 connection",
        "httpx h2 x100",
        "httpx_h2",
        100,
    ),
    Row(
        "tp_h1",
        "trio_pool HTTP/1.1, 100 tasks, 100 connections",
        "trio_pool h1 x100",
        "trio_pool_h1",
        100,
    ),
    # 1000 warm-up requests take a while when the pool is slow with waiters:
    # unfinished ones would be measured as load but not counted.
    Row(
        "tp_h2_1k",
        "trio_pool HTTP/2, 1000 tasks, 1 connection",
        "trio_pool h2 x1000",
        "trio_pool_h2",
        1000,
        warm_cap=15.0,
    ),
    Row(
        "bare_h2",
        "bare h2 loop (trio), 100 tasks, 1 connection",
        "bare h2 loop x100",
        "bare_h2",
        100,
    ),
    Row(
        "h2load",
        "h2load (C), 1 connection, 100 streams",
        "h2load",
        "h2load",
        100,
    ),
)
ROW_BY_KEY = {r.key: r for r in ROWS}


@dataclass(frozen=True, slots=True)
class Plan:
    """How much to measure."""

    rounds: int
    time_cap: float
    warm_cap: float
    h2load_requests: int


FULL = Plan(rounds=5, time_cap=1.0, warm_cap=2.0, h2load_requests=50_000)
QUICK = Plan(rounds=1, time_cap=0.4, warm_cap=1.0, h2load_requests=10_000)


@dataclass(slots=True)
class Measured:
    """One row in one round: the outcome and what the client said after it."""

    outcome: Outcome
    stats: dict[str, Any] = field(default_factory=dict)


# -- the server ------------------------------------------------------------------

_NGINX_CONF = """\
worker_processes 1;
worker_rlimit_nofile 16384;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    default_type application/octet-stream;
    tcp_nodelay on;
    keepalive_timeout 300s;
    keepalive_requests 100000000;
    http2_max_concurrent_streams 128;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{
        listen {host}:{port} ssl http2 backlog=4096;
        ssl_certificate {root}/server.pem;
        ssl_certificate_key {root}/server.key;
        root {root}/www;
    }}
}}
"""


@dataclass(frozen=True, slots=True)
class Server:
    name: str
    host: str
    port: int
    ca_file: str


@contextlib.contextmanager
def open_h2_server() -> Iterator[Server]:
    """nginx with one TLS listener speaking h2 and http/1.1 (by ALPN)."""
    binary = servers.find_nginx()
    if binary is None:
        raise SystemExit("nginx is not installed (apt-get install -y nginx)")
    with tempfile.TemporaryDirectory(prefix="trio-pool-bench-h2-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)  # nginx workers may run as another user
        ca_file = servers._make_certs(root)
        www = root / "www"
        www.mkdir(mode=0o755)
        (www / "small").write_bytes(bytes(range(256)) * (servers.SMALL_LEN // 256))
        (www / "small").chmod(0o644)
        port = servers._free_port()
        conf = root / "nginx.conf"
        conf.write_text(_NGINX_CONF.format(root=root, host=servers.HOST, port=port))
        cmd = [binary, "-e", str(root / "error.log"), "-p", str(root), "-c", str(conf)]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        try:
            servers._wait_listening(proc, [port])
            name = f"nginx {servers.nginx_version(binary)}"
            yield Server(name, servers.HOST, port, ca_file)
        finally:
            servers._stop(proc)


# -- the clients (in the measuring subprocess) ------------------------------------

#: What the client reports after its run (pool statistics), printed after the outcome.
_after: dict[str, Any] = {}


@contextlib.asynccontextmanager
async def _trio_pool(job: Job) -> AsyncIterator[AsyncWorkers]:
    import trio_pool

    from . import drivers

    http2 = job.client == "trio_pool_h2"
    want = 20 if http2 else 11
    pool = trio_pool.HTTPSConnectionPool(
        job.host,
        job.port,
        ca_certs=job.ca_file,
        http2=http2,
        maxsize=1 if http2 else job.concurrency,
        block=True,
    )
    async with pool:

        async def fetch(path: str, stream: bool) -> tuple[int, int]:
            r = await pool.request("GET", path)
            if r.version != want:
                raise BadResponse(f"answered over {r.version_string}")
            return r.status, len(r.data)

        yield drivers.shared(fetch)
        s = pool.statistics()
        _after.update(created=s.created, dropped=s.dropped, resets=s.streams_reset)


@contextlib.asynccontextmanager
async def _httpx(job: Job) -> AsyncIterator[AsyncWorkers]:
    import ssl

    import httpx

    from . import drivers

    # Generous timeout: httpx's 5 s pool timeout would fail tasks that queue.
    async with httpx.AsyncClient(
        http2=True,
        verify=ssl.create_default_context(cafile=job.ca_file),
        limits=httpx.Limits(max_connections=1),
        timeout=120.0,
        trust_env=False,
    ) as client:
        base = job.base_url

        async def fetch(path: str, stream: bool) -> tuple[int, int]:
            r = await client.get(base + path)
            if r.http_version != "HTTP/2":
                raise BadResponse(f"answered over {r.http_version}")
            return r.status_code, len(r.content)

        yield drivers.shared(fetch)
        # httpx's transport is private: best effort, for the table only.
        pool: Any = getattr(getattr(client, "_transport", None), "_pool", None)
        if pool is not None:
            _after.update(open=len(pool.connections))


class _BareH2:
    """The least an h2-on-trio client can do: one connection, one reader
    task, one writer task, request tasks that call h2 and wait for their
    stream's end. No pool, no timeouts, no flow control beyond crediting
    what arrived; stock h2 (header blocks decoded every time).

    It batches its I/O the way trio_pool does, so that the two differ only
    in what sits above h2: the reader decrypts every TLS record already
    received in one pass (trio's ``SSLStream.receive_some`` returns one
    record per call), and the writer sends everything h2 has queued once
    per wake-up.
    """

    def __init__(self, stream: Any) -> None:
        import h2.config
        import h2.connection
        import trio

        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = h2.connection.H2Connection(config)
        self.stream = stream
        self.wake = trio.Event()
        self.waiting: dict[int, tuple[Any, list[int]]] = {}

    def poke(self) -> None:
        self.wake.set()

    async def write_loop(self) -> None:
        import trio

        while True:
            data = self.conn.data_to_send()
            if data:
                await self.stream.send_all(data)
                continue
            self.wake = trio.Event()
            await self.wake.wait()

    def _more_records(self) -> bytes:
        import ssl

        parts = []
        with contextlib.suppress(ssl.SSLError):  # SSLWantReadError: no more yet
            while piece := self.stream._ssl_object.read(2**16):
                parts.append(piece)
        return b"".join(parts)

    async def read_loop(self) -> None:
        import h2.events

        while data := await self.stream.receive_some(2**16):
            data += self._more_records()
            for event in self.conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = dict(event.headers)[b":status"]
                    self.waiting[event.stream_id][1][0] = int(status)
                elif isinstance(event, h2.events.DataReceived):
                    self.waiting[event.stream_id][1][1] += len(event.data)
                    self.conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                elif isinstance(event, h2.events.StreamEnded):
                    self.waiting.pop(event.stream_id)[0].set()
            self.poke()

    async def fetch(self, authority: str, path: str) -> tuple[int, int]:
        import trio

        sid = self.conn.get_next_available_stream_id()
        done, result = trio.Event(), [0, 0]
        self.waiting[sid] = (done, result)
        self.conn.send_headers(
            sid,
            [
                (b":method", b"GET"),
                (b":scheme", b"https"),
                (b":authority", authority.encode()),
                (b":path", path.encode()),
            ],
            end_stream=True,
        )
        self.poke()
        await done.wait()
        return result[0], result[1]


@contextlib.asynccontextmanager
async def _bare_h2(job: Job) -> AsyncIterator[AsyncWorkers]:
    import ssl

    import trio

    from . import drivers

    context = ssl.create_default_context(cafile=job.ca_file)
    context.set_alpn_protocols(["h2"])
    tcp = await trio.open_tcp_stream(job.host, job.port)
    async with trio.SSLStream(tcp, context, server_hostname=job.host) as stream:
        await stream.do_handshake()
        if stream.selected_alpn_protocol() != "h2":
            raise BadResponse("the server did not choose h2")
        client = _BareH2(stream)
        client.conn.initiate_connection()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.write_loop)
            nursery.start_soon(client.read_loop)

            async def fetch(path: str, stream: bool) -> tuple[int, int]:
                return await client.fetch(job.host_header, path)

            yield drivers.shared(fetch)
            nursery.cancel_scope.cancel()


def _run_client(job: Job) -> Outcome:
    import trio

    from . import drivers

    openers = {"httpx_h2": _httpx, "bare_h2": _bare_h2}
    opener = openers.get(job.client, _trio_pool)
    return trio.run(drivers.run_trio, job, opener)


def measure_main(job_json: str) -> None:
    """The subprocess: one measurement, its outcome and then a ``stats`` line."""
    job = Job.from_json(job_json)
    _raise_fd_limit()
    threading.Thread(target=_watchdog, args=(job,), daemon=True).start()
    try:
        outcome = _run_client(job)
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        outcome = Outcome("error", detail=_describe(exc)[:300])
    publish(outcome)
    print("stats " + json.dumps(_after), flush=True)


# -- the runner --------------------------------------------------------------------


def _job(server: Server, plan: Plan, row: Row) -> Job:
    return Job(
        client=row.client,
        scenario=row.key,
        host=server.host,
        port=server.port,
        tls=True,
        ca_file=server.ca_file,
        path=SMALL,
        body_len=servers.SMALL_LEN,
        warm_path=SMALL,
        warm_len=servers.SMALL_LEN,
        concurrency=row.tasks,
        requests=100_000,
        time_cap=plan.time_cap,
        warm_cap=max(plan.warm_cap, row.warm_cap),
        new_conn=False,
        stream=False,
    )


def measure(server: Server, plan: Plan, row: Row) -> Measured:
    """One Python row in a subprocess of its own."""
    job = _job(server, plan, row)
    limit = job.warm_cap + cut_after(job) + TEARDOWN_CAP + 30
    cmd = [sys.executable, "-m", "benchmarks.h2", "--measure", job.to_json()]
    try:
        done = subprocess.run(
            cmd, cwd=REPO, capture_output=True, text=True, timeout=limit, check=False
        )
    except subprocess.TimeoutExpired:
        return Measured(Outcome("timeout", detail=f"killed after {limit:.0f} s"))
    measured = None
    stats: dict[str, Any] = {}
    for line in done.stdout.splitlines():
        if line.startswith("{") and measured is None:
            measured = Outcome.from_dict(json.loads(line))
        elif line.startswith("stats "):
            stats = json.loads(line.removeprefix("stats "))
    if measured is None:
        tail = done.stderr.strip().splitlines()[-1:] or ["no outcome printed"]
        return Measured(Outcome("error", detail=tail[0][:300]))
    return Measured(_verdict(row, measured, stats), stats)


def _verdict(row: Row, outcome: Outcome, stats: dict[str, Any]) -> Outcome:
    """Turn a run that did nothing, or used more than one h2 connection, into
    a failure: neither may look fast."""
    if outcome.status == "ok" and outcome.done == 0:
        return Outcome("timeout", detail="no request completed before the cut")
    if outcome.ok and row.client == "trio_pool_h2" and stats.get("created") != 1:
        got = stats.get("created", "unknown")
        return Outcome("error", detail=f"{got} connections created, expected 1")
    return outcome


_H2LOAD_RATE = re.compile(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s")
_H2LOAD_DONE = re.compile(
    r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded"
)


def measure_h2load(server: Server, plan: Plan, row: Row) -> Measured:
    """h2load's own timing (connect included); CPU from the child's rusage."""
    binary = shutil.which("h2load")
    if binary is None:
        return Measured(Outcome("n/a", detail="h2load not installed (nghttp2-client)"))
    n = plan.h2load_requests
    url = f"https://{server.host}:{server.port}{SMALL}"
    cmd = [binary, "-n", str(n), "-c", "1", "-m", str(row.tasks), "-t", "1", url]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return Measured(Outcome("timeout", detail="h2load ran over 60 s"))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rate, ok = _H2LOAD_RATE.search(done.stdout), _H2LOAD_DONE.search(done.stdout)
    if rate is None or ok is None or "Application protocol: h2" not in done.stdout:
        tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or ["no output"]
        return Measured(Outcome("error", detail=tail[0][:300]))
    if int(ok.group(1)) != n or f"{n} 2xx" not in done.stdout:
        return Measured(Outcome("error", detail=f"not all {n} requests got a 2xx"))
    elapsed = float(rate.group(1)) / (1000 if rate.group(2) == "ms" else 1)
    return Measured(Outcome("ok", done=n, elapsed=elapsed, cpu=cpu))


def run_rounds(
    server: Server, plan: Plan, rows: list[Row]
) -> dict[str, list[Measured]]:
    """Every row, ``plan.rounds`` times, interleaved and rotated per round."""
    results: dict[str, list[Measured]] = {r.key: [] for r in rows}
    for n in range(plan.rounds):
        shift = n % len(rows)
        for row in rows[shift:] + rows[:shift]:
            if any(m.outcome.status == "timeout" for m in results[row.key]):
                m = Measured(Outcome("timeout", detail="timed out in an earlier round"))
            elif row.client == "h2load":
                m = measure_h2load(server, plan, row)
            else:
                m = measure(server, plan, row)
            results[row.key].append(m)
            o = m.outcome
            shown = (
                f"{o.rate(False):>9,.0f} req/s, {_cpu_us(o):>5.0f} us CPU/req,"
                f" RSS +{o.rss_delta_mib:.1f} MiB {o.detail}"
                if o.ok
                else f"{o.status}: {o.detail}"
            )
            print(f"[round {n + 1}/{plan.rounds}] {row.key:9} {shown}", flush=True)
    return results


def _cpu_us(o: Outcome) -> float:
    return o.cpu / o.done * 1e6 if o.done else 0.0


# -- the report --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cell:
    """A row summarised over its rounds (medians; any failed round fails it)."""

    status: str
    detail: str = ""
    rate: float = 0.0
    low: float = 0.0
    high: float = 0.0
    cpu_us: float = 0.0
    rss_mib: float = 0.0
    conns: str = "-"
    cut: int = 0  # rounds that ended at the cut, requests still in flight


def summarize(measured: Sequence[Measured]) -> Cell:
    outcomes = [m.outcome for m in measured]
    bad = [o for o in outcomes if not o.ok]
    if not outcomes or bad:
        first = bad[0] if bad else Outcome("missing")
        return Cell(first.status, first.detail)
    rates = [o.rate(False) for o in outcomes]
    conns = sorted(
        {str(m.stats["created"]) for m in measured if "created" in m.stats}
        | {f"{m.stats['open']} open" for m in measured if "open" in m.stats}
    )
    return Cell(
        "ok",
        rate=statistics.median(rates),
        low=min(rates),
        high=max(rates),
        cpu_us=statistics.median(_cpu_us(o) for o in outcomes),
        rss_mib=max(o.rss_delta_mib for o in outcomes),
        conns="/".join(conns) or "-",
        cut=sum(o.detail == "cut" for o in outcomes),
    )


def _cut_note(cut: int, rounds: int) -> str:
    if not cut:
        return ""
    return f"cut with requests in flight in {cut}/{rounds} rounds"


def _table(
    rows: Sequence[Row], cells: dict[str, Cell], results: dict[str, list[Measured]]
) -> list[str]:
    out = [
        "## Results (median over rounds)",
        "",
        "| row | req/s (wall) | min - max | client CPU us/req | req per CPU-s"
        " | peak RSS delta (MiB, max) | connections | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        c = cells[row.key]
        if c.status != "ok":
            out.append(f"| {row.title} | {c.status} | | | | | | |")
            continue
        rss = "-" if row.client == "h2load" else f"{c.rss_mib:.1f}"
        out.append(
            f"| {row.title} | {c.rate:,.0f} | {c.low:,.0f} - {c.high:,.0f}"
            f" | {c.cpu_us:.0f} | {1e6 / c.cpu_us:,.0f} | {rss} | {c.conns}"
            f" | {_cut_note(c.cut, len(results[row.key]))} |"
        )
    return [*out, ""]


def _compare(
    cells: dict[str, Cell], mine: str, ref: str, target: float | None
) -> str | None:
    a, b = cells.get(mine), cells.get(ref)
    if a is None or b is None:
        return None
    what = f"{ROW_BY_KEY[mine].short} / {ROW_BY_KEY[ref].short}"
    goal = f">= {target:g}x" if target else "(information)"
    if a.status != "ok":
        return f"| {what} | {goal} | {a.status} | - | **not met** |"
    if b.status != "ok":
        met = f"met ({ROW_BY_KEY[ref].client} {b.status})" if target else "-"
        return f"| {what} | {goal} | {ROW_BY_KEY[ref].client}: {b.status} | - | {met} |"
    ratio, cpu_ratio = a.rate / b.rate, b.cpu_us / a.cpu_us
    met = "-" if target is None else ("met" if ratio >= target else "**not met**")
    return f"| {what} | {goal} | {ratio:.2f}x | {cpu_ratio:.2f}x | {met} |"


def _ratios(cells: dict[str, Cell]) -> list[str]:
    out = [
        "## Ratios (of the medians above)",
        "",
        "`met` judges the wall-clock ratio; the CPU ratio (inverse ratio of client",
        "CPU time per request) is steadier on a shared machine.",
        "",
        "| comparison | target | wall ratio | CPU ratio | met |",
        "|---|---|---:|---:|:---:|",
    ]
    pairs = [
        ("tp_h2", "httpx_h2", H2_TARGET),
        ("tp_h2", "tp_h1", None),
        ("tp_h2_1k", "tp_h2", None),
        ("tp_h2", "bare_h2", None),
        # What h2 itself allows: the bare loop has no pool at all.
        ("bare_h2", "httpx_h2", None),
        ("tp_h2", "h2load", None),
    ]
    out += [line for a, b, t in pairs if (line := _compare(cells, a, b, t)) is not None]
    big = cells.get("tp_h2_1k")
    if big is not None:
        shown = f"{big.rss_mib:.1f} MiB" if big.status == "ok" else big.status
        met = big.status == "ok" and big.rss_mib < FLAT_MEMORY_MIB
        out.append(
            f"| {ROW_BY_KEY['tp_h2_1k'].short}: memory flat | peak RSS delta"
            f" < {FLAT_MEMORY_MIB:g} MiB | {shown} | - |"
            f" {'met' if met else '**not met**'} |"
        )
    return [*out, ""]


def _raw(rows: Sequence[Row], results: dict[str, list[Measured]]) -> list[str]:
    rounds = max((len(v) for v in results.values()), default=0)
    out = [
        "<details><summary>Every round (req/s wall; client CPU us/req)</summary>",
        "",
        "| row | " + " | ".join(f"r{i + 1}" for i in range(rounds)) + " |",
        "|---|" + "---:|" * rounds,
    ]
    for row in rows:
        shown = [
            f"{m.outcome.rate(False):,.0f}; {_cpu_us(m.outcome):.0f}"
            if m.outcome.ok
            else m.outcome.status
            for m in results[row.key]
        ]
        out.append(f"| {row.key} | " + " | ".join(shown) + " |")
    return [*out, "", "</details>"]


def _versions() -> str:
    found = []
    for name in ("trio-pool", "trio", "h2", "hpack", "h11", "httpx", "httpcore"):
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found) + ", anyio " + importlib.metadata.version("anyio")


def render(
    server: Server,
    plan: Plan,
    rows: Sequence[Row],
    results: dict[str, list[Measured]],
    seconds: float,
) -> str:
    cells = {row.key: summarize(results[row.key]) for row in rows}
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "# trio_pool HTTP/2 benchmark results",
        "",
        f"Written by `python -m benchmarks.h2` on {stamp}, in {seconds:.0f} s.",
        "",
        f"- Server: {server.name} on {server.host} (loopback), one TLS listener"
        " with `ssl http2` (h2 and http/1.1 by ALPN), 128 streams per connection,"
        f" one worker; GET of a {servers.SMALL_LEN} B file.",
        f"- Machine: {os.cpu_count()} CPUs ({cpu_model()}), {platform.system()}"
        f" {platform.release()}; Python {platform.python_version()}.",
        f"- Libraries: {_versions()}.",
        f"- {plan.rounds} interleaved round(s); each Python measurement is its own"
        " process: one untimed warm-up request per task (up to"
        f" {plan.warm_cap:g} s; 15 s for 1000 tasks), then requests start for"
        f" {plan.time_cap:g} s; requests still in flight"
        f" {max(plan.time_cap, 1.0):g} s later are cut and not counted. Every"
        " response is checked (200, 1024 B, the row's protocol).",
        "- Client CPU is the measuring process's user + system time over the"
        " timed phase, divided by the requests counted.",
        "- The bare h2 loop batches its I/O as trio_pool does (all received TLS"
        " records decrypted in one pass, one writer) on stock h2. trio_pool also"
        " remembers HPACK blocks that encode or decode the same every time"
        " (docs/http2.md, Performance): nginx keeps its dynamic table empty, so"
        " only its first response each second is Huffman-decoded. Where the"
        " client's CPU goes (inside h2, TLS, the kernel, the rest):"
        " `python -m benchmarks.h2_cpu floor` and `replay`.",
        f"- h2load makes {plan.h2load_requests:,} requests (its own timing,"
        " connection setup included).",
        "- The machine is shared and noisy (2 cores; other agents run tests;"
        f" load average {load:.1f} when the run ended): nginx, the client and"
        " everything else share the cores, so compare within this run and read"
        " CPU time beside wall time.",
        "",
    ]
    lines += _table(rows, cells, results)
    lines += _ratios(cells)
    notes = [f"- {r.title}: {cells[r.key].detail}" for r in rows if cells[r.key].detail]
    if notes:
        lines += ["## Not measured", "", *notes, ""]
    lines += _raw(rows, results)
    return "\n".join(lines) + "\n"


# -- profiling -----------------------------------------------------------------------


def profile(seconds: float, tasks: int, top: int = 25) -> None:
    """trio_pool over h2 in this process under pyinstrument: where time goes."""
    import trio
    from pyinstrument import Profiler

    import trio_pool

    with open_h2_server() as server:
        pool = trio_pool.HTTPSConnectionPool(
            server.host,
            server.port,
            ca_certs=server.ca_file,
            http2=True,
            maxsize=1,
            block=True,
        )
        profiler = Profiler(interval=0.001, async_mode="disabled")
        done, elapsed = trio.run(_profiled_load, pool, tasks, seconds, profiler)
    print(f"### trio_pool HTTP/2, {tasks} tasks, 1 connection:", end=" ")
    print(f"{done / elapsed:,.0f} req/s while profiled ({done} requests)\n")
    print("\n".join(_profile_summary(profiler, top)), flush=True)


#: Library of a frame, by a fragment of its file path (first match wins).
_GROUPS = (
    ("/trio_pool/", "trio_pool"),
    ("/trio/", "trio"),
    ("/h2/", "h2"),
    ("/hpack/", "hpack"),
    ("/h11/", "h11"),
    ("/ssl.py", "ssl"),
    ("/benchmarks/", "benchmark loop"),
)


def _profile_summary(profiler: Any, top: int) -> list[str]:
    """Self time by library, the top functions by self time, and trio_pool's
    functions by inclusive time."""
    from .profile_trio_pool import _largest, _name, _walk

    root = profiler.last_session.root_frame()
    total = root.time
    groups: dict[str, float] = {}
    self_time: dict[str, float] = {}
    inclusive: dict[str, float] = {}
    for frame, outermost in _walk(root):
        if frame.is_synthetic:  # "[self]" leaves: already in the parent's self time
            continue
        path = frame.file_path or ""
        group = next((g for part, g in _GROUPS if part in path), "other (stdlib)")
        groups[group] = groups.get(group, 0.0) + frame.total_self_time
        name = _name(frame)
        self_time[name] = self_time.get(name, 0.0) + frame.total_self_time
        if outermost and group == "trio_pool":
            inclusive[name] = inclusive.get(name, 0.0) + frame.time
    lines = [
        "Self time by library: "
        + ", ".join(f"{g} {t / total:.0%}" for g, t in _largest(groups)),
        "",
        f"Top {top} functions by self time:",
    ]
    lines += [f"  {t / total:6.1%}  {n}" for n, t in _largest(self_time, top)]
    lines += ["", f"Top {top} trio_pool functions by inclusive time:"]
    lines += [f"  {t / total:6.1%}  {n}" for n, t in _largest(inclusive, top)]
    return lines


async def _profiled_load(
    pool: Any, tasks: int, seconds: float, profiler: Any
) -> tuple[int, float]:
    import trio

    count = 0

    async def one(until: float) -> None:
        nonlocal count
        while trio.current_time() < until:
            r = await pool.request("GET", SMALL)
            assert r.status == 200 and len(r.data) == servers.SMALL_LEN
            count += 1

    async with pool:
        async with trio.open_nursery() as nursery:  # warm up, unprofiled
            for _ in range(tasks):
                nursery.start_soon(one, trio.current_time() + 0.3)
        count = 0
        profiler.start()
        began = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(tasks):
                nursery.start_soon(one, trio.current_time() + seconds)
        elapsed = time.perf_counter() - began
        profiler.stop()
    return count, elapsed


# -- entry point -----------------------------------------------------------------------


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.h2", description=__doc__)
    p.add_argument("--quick", action="store_true", help="one short round")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 5)")
    p.add_argument("--time-cap", type=float, help="seconds per measurement")
    p.add_argument("--rows", nargs="+", choices=list(ROW_BY_KEY), default=None)
    p.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results_h2.md")
    p.add_argument("--profile", action="store_true", help="profile trio_pool over h2")
    p.add_argument("--seconds", type=float, default=4.0, help="for --profile")
    p.add_argument(
        "--tasks", type=int, nargs="+", default=[100, 1000], help="for --profile"
    )
    p.add_argument("--measure", help=argparse.SUPPRESS)  # the subprocess side
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    if args.measure:
        measure_main(args.measure)
        return
    if args.profile:
        for tasks in args.tasks:
            profile(args.seconds, tasks)
            print()
        return
    plan = QUICK if args.quick else FULL
    plan = Plan(
        rounds=args.rounds or plan.rounds,
        time_cap=args.time_cap or plan.time_cap,
        warm_cap=plan.warm_cap,
        h2load_requests=plan.h2load_requests,
    )
    rows = [r for r in ROWS if args.rows is None or r.key in args.rows]
    began = time.monotonic()
    with open_h2_server() as server:
        print(f"server: {server.name}", flush=True)
        results = run_rounds(server, plan, rows)
    text = render(server, plan, rows, results, time.monotonic() - began)
    print()
    print(text)
    args.output.write_text(text)
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
