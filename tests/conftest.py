"""Strict mode for the whole suite: ``TRIO_POOL_STRICT=1`` makes skips fail.

A test that needs a daemon which is missing (or lacks a feature) skips, with
a reason saying what to install: right on a developer's machine, wrong in CI,
where a skipped interop test is a test that silently stopped running. So
``.ci/run`` exports ``TRIO_POOL_STRICT=1``, and then the run fails if any
test (or test module) was skipped; the skipped ones are listed with their
reasons at the end of the report. Expected failures (``xfail``) are not
skips and do not count.
"""

from __future__ import annotations

import os

import pytest

#: The environment variable; any value but "", "0" turns strict mode on.
STRICT_VARIABLE = "TRIO_POOL_STRICT"

_skipped: list[tuple[str, str]] = []


def strict() -> bool:
    """Whether strict mode is on."""
    return os.environ.get(STRICT_VARIABLE, "") not in ("", "0")


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # (path, line, "Skipped: why")
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _record(report: pytest.TestReport | pytest.CollectReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append((report.nodeid, _reason(report)))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _record(report)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    _record(report)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if strict() and _skipped and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not (strict() and _skipped):
        return
    terminalreporter.section(f"{STRICT_VARIABLE}=1: skipped tests fail the run")
    for nodeid, reason in _skipped:
        terminalreporter.write_line(f"SKIPPED {nodeid}: {reason}", red=True)
    terminalreporter.write_line(
        f"{len(_skipped)} skipped; install what they need, or unset "
        f"{STRICT_VARIABLE} to let them skip."
    )
