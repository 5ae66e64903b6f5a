"""The benchmark runner: ``python -m benchmarks.run [--quick]`` (or ``nox -s bench``).

Theory of operation
-------------------
One server (see ``servers.py``) runs for the whole run. Every measurement —
one client in one scenario — is a fresh subprocess (``benchmarks.client``),
so asyncio and trio never share a process and memory is per client. Rounds
are interleaved: each round runs every scenario once for every client (in an
order rotated per round), so a burst of load from elsewhere on the machine
hits all clients alike, and the report takes medians over rounds. Each
measurement stops at its request count or its time cap, whichever comes
first, and reports req/s (MiB/s for the download).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import report, servers
from .client import TEARDOWN_CAP
from .common import CLIENTS, MIB, SCENARIO_BY_KEY, SCENARIOS, Job, Outcome, Scenario
from .drivers import cut_after

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "performance.md"
DOCS_START = "<!-- results:start -->"
DOCS_END = "<!-- results:end -->"


@dataclass(frozen=True, slots=True)
class Plan:
    """How much to measure."""

    rounds: int
    time_cap: float
    warm_cap: float
    download_mib: int
    download_requests: int


FULL = Plan(rounds=5, time_cap=1.0, warm_cap=2.0, download_mib=100, download_requests=4)
QUICK = Plan(
    rounds=1, time_cap=0.4, warm_cap=1.0, download_mib=100, download_requests=1
)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    p.add_argument("--quick", action="store_true", help="one short round (~1 min)")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 5)")
    p.add_argument("--time-cap", type=float, help="seconds per measurement")
    p.add_argument(
        "--server",
        choices=["auto", "nginx", "bundled"],
        default="auto",
        help="auto: nginx if installed, else the bundled trio server",
    )
    p.add_argument("--clients", nargs="+", choices=list(CLIENTS), default=list(CLIENTS))
    p.add_argument(
        "--scenarios",
        nargs="+",
        choices=list(SCENARIO_BY_KEY),
        default=list(SCENARIO_BY_KEY),
    )
    p.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results.md")
    p.add_argument(
        "--update-docs",
        action="store_true",
        help=f"also put the report into {DOCS.relative_to(REPO)}",
    )
    return p.parse_args(argv)


def _job(
    server: servers.ServerInfo, plan: Plan, scenario: Scenario, client: str
) -> Job:
    download = scenario.download
    return Job(
        client=client,
        scenario=scenario.key,
        host=server.host,
        port=server.https_port if scenario.tls else server.http_port,
        tls=scenario.tls,
        ca_file=server.ca_file,
        path=server.large_path if download else server.small_path,
        body_len=server.large_len if download else server.small_len,
        warm_path=server.small_path,
        warm_len=server.small_len,
        concurrency=scenario.concurrency,
        requests=plan.download_requests if download else scenario.requests,
        time_cap=plan.time_cap,
        warm_cap=plan.warm_cap,
        new_conn=scenario.new_conn,
        stream=download,
        manager=scenario.manager,
        total_timeout=scenario.total_timeout,
    )


def measure(job: Job) -> Outcome:
    """Run one measurement in a subprocess of its own."""
    limit = job.warm_cap + cut_after(job) + TEARDOWN_CAP + 60
    try:
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.client", job.to_json()],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=limit,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout
        stdout, stderr, status = out or "", f"killed after {limit:.0f} s", "timeout"
    else:
        stdout, stderr, status = done.stdout, done.stderr, "error"
    for line in stdout.splitlines():
        if line.startswith("{"):
            return Outcome.from_dict(json.loads(line))
    tail = stderr.strip().splitlines()[-1:] or ["no outcome printed"]
    return Outcome(status, detail=tail[0][:300])


def _versions() -> str:
    names = [
        "trio-pool",
        "trio",
        "h11",
        "httpx",
        "httpcore",
        "anyio",
        "aiohttp",
        "urllib3",
    ]
    found = []
    for name in names:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else "unknown"


def _header(server: servers.ServerInfo, plan: Plan, seconds: float) -> list[str]:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return [
        "# trio_pool benchmark results",
        "",
        f"Written by `python -m benchmarks.run` on {stamp}, in {seconds:.0f} s.",
        "",
        f"- Server: {server.name}, on {server.host} (loopback).",
        f"- Machine: {os.cpu_count()} CPUs ({cpu_model()}), {platform.system()}"
        f" {platform.release()}; Python {platform.python_version()}.",
        f"- Libraries: {_versions()}.",
        f"- {plan.rounds} interleaved round(s); each measurement stops after"
        f" {plan.time_cap:g} s or its request count; small body"
        f" {server.small_len} B, download {server.large_len // MIB} MiB.",
        "- urllib3 runs one thread per task, capped at 50 threads.",
        "- The machine is shared: treat differences under ~10% as noise.",
    ]


def _write_docs(text: str) -> None:
    docs = DOCS.read_text()
    start, end = docs.find(DOCS_START), docs.find(DOCS_END)
    if start < 0 or end < start:
        print(f"{DOCS} has no {DOCS_START} ... {DOCS_END} markers; not updated")
        return
    body = text.split("\n", 2)[2]  # the report minus its title
    # The page has its own "## Results" heading: nest the report's under it.
    body = re.sub(r"^## ", "### ", body, flags=re.MULTILINE)
    DOCS.write_text(docs[: start + len(DOCS_START)] + "\n" + body + docs[end:])


def run_rounds(
    server: servers.ServerInfo,
    plan: Plan,
    scenarios: list[Scenario],
    clients: list[str],
) -> dict[tuple[str, str], list[Outcome]]:
    """Every scenario for every client, ``plan.rounds`` times, interleaved."""
    results: dict[tuple[str, str], list[Outcome]] = {}
    for r in range(plan.rounds):
        for scenario in scenarios:
            shift = r % len(clients)
            for client in clients[shift:] + clients[:shift]:
                earlier = results.get((client, scenario.key), [])
                if scenario.only is not None and client not in scenario.only:
                    results.setdefault((client, scenario.key), []).append(
                        Outcome("n/a", detail="measured for trio_pool only")
                    )
                    continue
                if any(o.status == "timeout" for o in earlier):
                    # Hung once (httpx/httpcore with 1000 tasks): it would again.
                    outcome = Outcome("timeout", detail="timed out in an earlier round")
                else:
                    outcome = measure(_job(server, plan, scenario, client))
                results.setdefault((client, scenario.key), []).append(outcome)
                shown = (
                    f"{outcome.rate(scenario.download):>10,.0f} {scenario.unit}"
                    if outcome.ok
                    else f"{outcome.status}: {outcome.detail}"
                )
                where = f"[round {r + 1}/{plan.rounds}] {scenario.key:9} {client:10}"
                print(f"{where} {shown}", flush=True)
    return results


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    plan = QUICK if args.quick else FULL
    if args.rounds or args.time_cap:
        plan = Plan(
            rounds=args.rounds or plan.rounds,
            time_cap=args.time_cap or plan.time_cap,
            warm_cap=plan.warm_cap,
            download_mib=plan.download_mib,
            download_requests=plan.download_requests,
        )
    scenarios = [s for s in SCENARIOS if s.key in args.scenarios]
    clients = [c for c in CLIENTS if c in args.clients]
    began = time.monotonic()
    with servers.open_server(args.server, plan.download_mib * MIB) as server:
        print(f"server: {server.name}", flush=True)
        results = run_rounds(server, plan, scenarios, clients)
    text = report.render(
        results, scenarios, clients, _header(server, plan, time.monotonic() - began)
    )
    print()
    print(text)
    args.output.write_text(text)
    print(f"written to {args.output}")
    if args.update_docs:
        _write_docs(text)


if __name__ == "__main__":
    main()
