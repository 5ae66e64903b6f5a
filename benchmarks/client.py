"""Subprocess entry point: ``python -m benchmarks.client JOB_JSON``.

Runs one measurement and prints its :class:`~benchmarks.common.Outcome` as a
JSON line on stdout, as soon as the timed phase ends. A client that raises is
reported as ``error``, never as a rate. A watchdog thread ends the process if
the client hangs: if it never starts the timed phase, as ``timeout``; if it
misses its cut, with what it completed by then; and closing the client after
the outcome is out gets a few seconds.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
import time
import traceback

from .clients import run
from .common import Job, Outcome, publish, published
from .drivers import Meter

#: Seconds a client may take to close after its outcome is out.
TEARDOWN_CAP = 5.0


def _raise_fd_limit() -> None:
    # 1000 connections per process need more than the usual 1024 descriptors.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _describe(exc: BaseException) -> str:
    # Exception groups (trio nurseries) hide the interesting leaf.
    while getattr(exc, "exceptions", None):
        exc = exc.exceptions[0]  # type: ignore[attr-defined]
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def _watchdog(job: Job) -> None:
    """End a hung client: report what it did, then exit the process."""
    began = time.perf_counter()
    meter = None
    while meter is None and time.perf_counter() - began < job.warm_cap + 5:
        meter = Meter.current
        time.sleep(0.05)
    if meter is None or not meter.started.wait(job.warm_cap + 5):
        publish(Outcome("timeout", detail="the client never started its timed phase"))
        os._exit(0)
    # A client busy in pure-Python loops may not even get to its own cut.
    if not published.wait(max(0.0, meter.cut_time + 2.0 - time.perf_counter())):
        meter.stop("stopped by the watchdog: the client missed its cut")
        os._exit(0)
    time.sleep(TEARDOWN_CAP)
    os._exit(0)


def main() -> None:
    job = Job.from_json(sys.argv[1])
    _raise_fd_limit()
    threading.Thread(target=_watchdog, args=(job,), daemon=True).start()
    try:
        outcome = run(job)
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        outcome = Outcome("error", detail=_describe(exc)[:300])
    publish(outcome)


if __name__ == "__main__":
    main()
