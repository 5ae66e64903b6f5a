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


TARGETS: tuple[Target, ...] = (
    Target("seq", "h11", 0.75),
    Target("seq", "aiohttp", 1.3),
    Target("https", "h11", 0.75),
    Target("https", "aiohttp", 1.3),
    Target("c50", "aiohttp", 1.0),
    Target("c50", "httpx", 10),
    Target("c50", "httpcore", 10),
    Target("c200", "aiohttp", 1.0),
    Target("c200", "httpx", 10),
    Target("c200", "httpcore", 10),
    Target("c1000", "trio_pool", 0.8, reference_scenario="c50"),
    Target("download", "socket", 0.9),
)


@dataclass(frozen=True, slots=True)
class Cell:
    """The summary of one (client, scenario) over all rounds."""

    status: str  # ok, error, timeout, n/a, missing
    median: float = 0.0
    rss_mib: float = 0.0
    detail: str = ""

    def show(self, download: bool) -> str:
        if self.status != "ok":
            return self.status
        digits = 1 if download and self.median < 100 else 0
        return f"{self.median:,.{digits}f}"


def summarize(outcomes: Sequence[Outcome], scenario: Scenario) -> Cell:
    """Median over rounds; any failed round makes the whole cell a failure."""
    if not outcomes:
        return Cell("missing")
    bad = [o for o in outcomes if not o.ok]
    if bad and all(o.status == "n/a" for o in outcomes):
        return Cell("n/a", detail=bad[0].detail)
    if bad:
        # A failure in any round voids the cell: a broken client cannot win.
        first = next((o for o in bad if o.status != "n/a"), bad[0])
        return Cell(first.status, detail=first.detail)
    return Cell(
        "ok",
        median=statistics.median(o.rate(scenario.download) for o in outcomes),
        rss_mib=statistics.median(o.rss_delta_mib for o in outcomes),
    )


def _ratio(a: Cell, b: Cell) -> float | None:
    if a.status != "ok" or b.status != "ok" or b.median <= 0:
        return None
    return a.median / b.median


def render(
    results: Results,
    scenarios: Sequence[Scenario],
    clients: Sequence[str],
    header: Sequence[str],
) -> str:
    """The whole report: throughput matrix, targets, memory, notes, raw rounds."""
    cells = {
        (c, s.key): summarize(results.get((c, s.key), ()), s)
        for c in clients
        for s in scenarios
    }
    lines = [*header, ""]
    lines += _matrix(cells, scenarios, clients)
    lines += _targets(cells, scenarios, clients)
    lines += _notes(cells, scenarios, clients)
    lines += _raw(results, scenarios, clients)
    return "\n".join(lines) + "\n"


def _matrix(
    cells: Mapping[tuple[str, str], Cell],
    scenarios: Sequence[Scenario],
    clients: Sequence[str],
) -> list[str]:
    download = next((s for s in scenarios if s.download), None)
    cols = [f"{s.title} ({s.unit})" for s in scenarios]
    if download is not None:
        cols.append("download peak RSS delta (MiB)")
    out = [
        "## Throughput (median over rounds; higher is better)",
        "",
        "| client | " + " | ".join(cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for c in clients:
        row = [cells[c, s.key].show(s.download) for s in scenarios]
        if download is not None:
            cell = cells[c, download.key]
            row.append(f"{cell.rss_mib:.1f}" if cell.status == "ok" else cell.status)
        out.append(f"| {CLIENTS[c]} | " + " | ".join(row) + " |")
    return [*out, ""]


def _targets(
    cells: Mapping[tuple[str, str], Cell],
    scenarios: Sequence[Scenario],
    clients: Sequence[str],
) -> list[str]:
    keys = {s.key for s in scenarios}
    out = [
        "## Targets (trio_pool; ratios of the medians above, from this one run)",
        "",
        "| scenario | target | trio_pool | reference | ratio | met |",
        "|---|---|---:|---:|---:|:---:|",
    ]
    for t in TARGETS:
        ref_scenario = t.reference_scenario or t.scenario
        if t.scenario not in keys or ref_scenario not in keys:
            continue
        if "trio_pool" not in clients or t.reference not in clients:
            continue
        scenario = SCENARIO_BY_KEY[t.scenario]
        mine = cells["trio_pool", t.scenario]
        ref = cells[t.reference, ref_scenario]
        ratio = _ratio(mine, ref)
        met = "n/a" if ratio is None else ("yes" if ratio >= t.factor else "**no**")
        out.append(
            f"| {scenario.title} | {t.describe()} | {mine.show(scenario.download)} "
            f"| {ref.show(scenario.download)} "
            f"| {'-' if ratio is None else f'{ratio:.2f}x'} | {met} |"
        )
    download = next((s for s in scenarios if s.download), None)
    if download is not None and "trio_pool" in clients:
        cell = cells["trio_pool", download.key]
        if cell.status == "ok":
            met = "yes" if cell.rss_mib < FLAT_MEMORY_MIB else "**no**"
            shown = f"{cell.rss_mib:.1f} MiB"
        else:
            met, shown = "n/a", cell.status
        out.append(
            f"| {download.title} | memory flat: peak RSS delta"
            f" < {FLAT_MEMORY_MIB:g} MiB | {shown} | - | - | {met} |"
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
        if cells[c, s.key].status != "ok"
    ]
    if not notes:
        return []
    return ["## Not measured", "", *notes, ""]


def _raw(
    results: Results, scenarios: Sequence[Scenario], clients: Sequence[str]
) -> list[str]:
    rounds = max((len(v) for v in results.values()), default=0)
    out = [
        "<details><summary>Every round</summary>",
        "",
        "| scenario | client | "
        + " | ".join(f"r{i + 1}" for i in range(rounds))
        + " |",
        "|---|---|" + "---:|" * rounds,
    ]
    for s in scenarios:
        for c in clients:
            shown = [
                f"{o.rate(s.download):,.0f}" if o.ok else o.status
                for o in results.get((c, s.key), ())
            ]
            out.append(f"| {s.key} | {c} | " + " | ".join(shown) + " |")
    return [*out, "", "</details>"]
