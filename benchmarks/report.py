"""Medians, ratios and targets, rendered as markdown tables."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .common import CLIENTS, SCENARIO_BY_KEY, Outcome, Scenario

Results = Mapping[tuple[str, str], Sequence[Outcome]]

#: trio_pool's peak RSS growth while streaming the large body must stay below this.
FLAT_MEMORY_MIB = 10.0


@dataclass(frozen=True, slots=True)
class Target:
    """trio_pool in ``scenario`` must reach ``factor`` x the reference."""

    scenario: str
    reference: str  # a client name
    factor: float
    reference_scenario: str | None = None  # default: the same scenario

    def describe(self) -> str:
        ref = CLIENTS[self.reference]
        if self.reference_scenario is not None:
            ref += f" in {SCENARIO_BY_KEY[self.reference_scenario].title}"
        return f">= {self.factor:g}x {ref}"


#: The SPEC's quality bars (section "Quality bars").
TARGETS: tuple[Target, ...] = (
    Target("seq", "h11", 0.85),
    Target("seq_pm", "h11", 0.8, reference_scenario="seq"),
    Target("seq_total", "trio_pool", 0.9, reference_scenario="seq"),
    Target("https", "h11", 0.85),
    Target("c50", "aiohttp", 1.0),
    Target("c50", "httpx", 20),
    Target("c50", "httpcore", 20),
    Target("c200", "aiohttp", 1.0),
    Target("c200", "httpx", 20),
    Target("c200", "httpcore", 20),
    Target("c1000", "trio_pool", 0.85, reference_scenario="c50"),
    Target("download", "socket", 0.8),
)


@dataclass(frozen=True, slots=True)
class Cell:
    """The summary of one (client, scenario) over all rounds."""

    status: str  # ok, error, timeout, n/a, missing
    rate: float = 0.0  # median req/s (MiB/s)
    cpu_rate: float = 0.0  # median req (MiB) per client CPU-second
    rss_mib: float = 0.0
    detail: str = ""


def _fmt(value: float, download: bool) -> str:
    digits = 1 if download and value < 100 else 0
    return f"{value:,.{digits}f}"


def summarize(outcomes: Sequence[Outcome], scenario: Scenario) -> Cell:
    """Medians over rounds; any failed round makes the whole cell a failure."""
    if not outcomes:
        return Cell("missing")
    bad = [o for o in outcomes if not o.ok]
    if bad:
        # A failure in any round voids the cell: a broken client cannot win.
        first = next((o for o in bad if o.status != "n/a"), bad[0])
        return Cell(first.status, detail=first.detail)
    return Cell(
        "ok",
        rate=statistics.median(o.rate(scenario.download) for o in outcomes),
        cpu_rate=statistics.median(o.cpu_rate(scenario.download) for o in outcomes),
        rss_mib=statistics.median(o.rss_delta_mib for o in outcomes),
    )


def render(
    results: Results,
    scenarios: Sequence[Scenario],
    clients: Sequence[str],
    header: Sequence[str],
) -> str:
    """The whole report: throughput, targets, efficiency, notes, raw rounds."""
    cells = {
        (c, s.key): summarize(results.get((c, s.key), ()), s)
        for c in clients
        for s in scenarios
    }
    lines = [*header, ""]
    lines += _matrix(cells, scenarios, clients, cpu=False)
    lines += _targets(cells, scenarios, clients)
    lines += _matrix(cells, scenarios, clients, cpu=True)
    lines += _per_request(cells, scenarios, clients)
    lines += _notes(cells, scenarios, clients)
    lines += _raw(results, scenarios, clients)
    return "\n".join(lines) + "\n"


def _matrix(
    cells: Mapping[tuple[str, str], Cell],
    scenarios: Sequence[Scenario],
    clients: Sequence[str],
    cpu: bool,
) -> list[str]:
    download = next((s for s in scenarios if s.download), None)
    if cpu:
        title = "## Efficiency: per client CPU-second (median; higher is better)"
        cols = [f"{s.title} ({s.unit.split('/')[0]}/CPU-s)" for s in scenarios]
    else:
        title = "## Throughput (median over rounds; higher is better)"
        cols = [f"{s.title} ({s.unit})" for s in scenarios]
        if download is not None:
            cols.append("download peak RSS delta (MiB)")
    out = [title, "", "| client | " + " | ".join(cols) + " |"]
    out.append("|---|" + "---:|" * len(cols))
    for c in clients:
        row = []
        for s in scenarios:
            cell = cells[c, s.key]
            value = cell.cpu_rate if cpu else cell.rate
            row.append(_fmt(value, s.download) if cell.status == "ok" else cell.status)
        if download is not None and not cpu:
            cell = cells[c, download.key]
            row.append(f"{cell.rss_mib:.1f}" if cell.status == "ok" else cell.status)
        out.append(f"| {CLIENTS[c]} | " + " | ".join(row) + " |")
    return [*out, ""]


def _per_request(
    cells: Mapping[tuple[str, str], Cell],
    scenarios: Sequence[Scenario],
    clients: Sequence[str],
) -> list[str]:
    """Wall and CPU microseconds per request (one task: the request's
    latency; many: the inverse of the throughput)."""
    shown = [s for s in scenarios if not s.download]
    out = [
        "## Per request: wall µs / CPU µs (median; lower is better)",
        "",
        "| client | " + " | ".join(s.title for s in shown) + " |",
        "|---|" + "---:|" * len(shown),
    ]
    for c in clients:
        row = []
        for s in shown:
            cell = cells[c, s.key]
            if cell.status != "ok" or cell.rate <= 0 or cell.cpu_rate <= 0:
                row.append(cell.status)
            else:
                row.append(f"{1e6 / cell.rate:,.0f} / {1e6 / cell.cpu_rate:,.0f}")
        out.append(f"| {CLIENTS[c]} | " + " | ".join(row) + " |")
    return [*out, ""]


def _ratio(mine: float, ref: float) -> str:
    return f"{mine / ref:.2f}x" if ref > 0 else "-"


def _targets(
    cells: Mapping[tuple[str, str], Cell],
    scenarios: Sequence[Scenario],
    clients: Sequence[str],
) -> list[str]:
    keys = {s.key for s in scenarios}
    out = [
        "## Targets (trio_pool; ratios of the medians above, from this one run)",
        "",
        "`met` judges the wall-clock ratio; the CPU ratio (requests per client",
        "CPU-second) is shown because it is steadier on a shared machine.",
        "",
        "| scenario | target | trio_pool | reference | ratio | CPU ratio | met |",
        "|---|---|---:|---:|---:|---:|:---:|",
    ]
    for t in TARGETS:
        ref_scenario = t.reference_scenario or t.scenario
        if t.scenario not in keys or ref_scenario not in keys:
            continue
        if "trio_pool" not in clients or t.reference not in clients:
            continue
        download = SCENARIO_BY_KEY[t.scenario].download
        mine = cells["trio_pool", t.scenario]
        ref = cells[t.reference, ref_scenario]
        if mine.status == "ok" and ref.status == "ok" and ref.rate > 0:
            met = "yes" if mine.rate / ref.rate >= t.factor else "**no**"
            ratio = _ratio(mine.rate, ref.rate)
            cpu_ratio = _ratio(mine.cpu_rate, ref.cpu_rate)
        else:
            met = ratio = cpu_ratio = "n/a"
        shown = [
            _fmt(c.rate, download) if c.status == "ok" else c.status
            for c in (mine, ref)
        ]
        out.append(
            f"| {SCENARIO_BY_KEY[t.scenario].title} | {t.describe()} | {shown[0]} "
            f"| {shown[1]} | {ratio} | {cpu_ratio} | {met} |"
        )
    download_scenario = next((s for s in scenarios if s.download), None)
    if download_scenario is not None and "trio_pool" in clients:
        cell = cells["trio_pool", download_scenario.key]
        if cell.status == "ok":
            met = "yes" if cell.rss_mib < FLAT_MEMORY_MIB else "**no**"
            shown_rss = f"{cell.rss_mib:.1f} MiB"
        else:
            met, shown_rss = "n/a", cell.status
        out.append(
            f"| {download_scenario.title} | memory flat: peak RSS delta"
            f" < {FLAT_MEMORY_MIB:g} MiB | {shown_rss} | - | - | - | {met} |"
        )
    return [*out, ""]


def _notes(
    cells: Mapping[tuple[str, str], Cell],
    scenarios: Sequence[Scenario],
    clients: Sequence[str],
) -> list[str]:
    notes = [
        f"- {CLIENTS[c]}, {s.title}: {cells[c, s.key].status}"
        f" ({cells[c, s.key].detail})"
        for s in scenarios
        for c in clients
        if cells[c, s.key].status != "ok" and (s.only is None or c in s.only)
    ]
    if not notes:
        return []
    return ["## Not measured", "", *notes, ""]


def _raw(
    results: Results, scenarios: Sequence[Scenario], clients: Sequence[str]
) -> list[str]:
    rounds = max((len(v) for v in results.values()), default=0)
    out = [
        "<details><summary>Every round (wall-clock rate)</summary>",
        "",
        "| scenario | client | "
        + " | ".join(f"r{i + 1}" for i in range(rounds))
        + " |",
        "|---|---|" + "---:|" * rounds,
    ]
    for s in scenarios:
        for c in clients:
            shown = [
                _fmt(o.rate(s.download), s.download) if o.ok else o.status
                for o in results.get((c, s.key), ())
            ]
            out.append(f"| {s.key} | {c} | " + " | ".join(shown) + " |")
    return [*out, "", "</details>"]
