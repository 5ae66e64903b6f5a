"""Subprocess entry point: ``python -m benchmarks.client JOB_JSON``.

Runs one measurement and prints its :class:`~benchmarks.common.Outcome` as a
JSON line on stdout. A client that raises is reported as ``error``, never as
a rate.
"""

from __future__ import annotations

import resource
import sys
import traceback

from .clients import run
from .common import Job, Outcome


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


def main() -> None:
    job = Job.from_json(sys.argv[1])
    _raise_fd_limit()
    try:
        outcome = run(job)
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        outcome = Outcome("error", detail=_describe(exc)[:300])
    print(outcome.to_json(), flush=True)


if __name__ == "__main__":
    main()
