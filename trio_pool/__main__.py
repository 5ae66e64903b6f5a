"""The ``trio-pool`` command (also ``python -m trio_pool``).

``trio-pool get URL...``   fetch URLs concurrently; bodies to stdout or ``-o DIR``
``trio-pool bench URL``    load-test a URL: req/s, latency percentiles, errors
``trio-pool serve``        run the bundled test server in the foreground
``trio-pool demo``         fetch from and bench the bundled server (offline)

Exit status: 0 success, 1 a fetch failed, 2 usage error, 130 interrupted
(Ctrl-C; ``serve`` exits 0 when stopped that way). The implementation lives in
the private ``trio_pool._cli`` package; the library itself never imports it.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence

import outcome
import trio

from ._cli._args import Options, parse
from ._cli._bench import run_bench
from ._cli._get import run_get
from ._cli._options import (
    BenchOptions,
    DemoOptions,
    GetOptions,
    ServeOptions,
    UsageError,
)
from ._cli._output import silence
from ._cli._serve import run_demo, run_serve

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _command(options: Options) -> Callable[[], Awaitable[int]]:
    out, err = sys.stdout, sys.stderr
    if isinstance(options, GetOptions):
        return lambda: run_get(options, out.buffer, err)
    if isinstance(options, BenchOptions):
        return lambda: run_bench(options, out, err)
    if isinstance(options, ServeOptions):
        return lambda: run_serve(options, out, err)
    assert isinstance(options, DemoOptions)
    return lambda: run_demo(options, out.buffer, out, err)


async def _run(
    command: Callable[[], Awaitable[int]], signals: list[signal.Signals]
) -> int | None:
    """Run ``command``; None if one of ``signals`` arrived and cancelled it."""
    interrupted = False

    async def watch(*, task_status: trio.TaskStatus[None]) -> None:
        nonlocal interrupted
        with trio.open_signal_receiver(*signals) as received:
            task_status.started()
            async for _ in received:
                interrupted = True
                nursery.cancel_scope.cancel()
                return

    async with trio.open_nursery() as nursery:
        await nursery.start(watch)
        # Captured here so that an error leaves the nursery as itself, not
        # wrapped in an exception group.
        result = await outcome.acapture(command)
        nursery.cancel_scope.cancel()
    return None if interrupted else result.unwrap()


def _is_interrupt(exc: BaseException) -> bool:
    """Whether ``exc`` is a KeyboardInterrupt, possibly inside exception groups."""
    grouped = getattr(exc, "exceptions", None)
    if isinstance(grouped, tuple) and grouped:
        return all(isinstance(e, BaseException) and _is_interrupt(e) for e in grouped)
    return isinstance(exc, KeyboardInterrupt)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``trio-pool`` command; returns the exit status."""
    serving = False
    try:
        options = parse(argv)
        serving = isinstance(options, ServeOptions)
        signals = [signal.SIGINT, signal.SIGTERM] if serving else [signal.SIGINT]
        code = trio.run(_run, _command(options), signals)
    except UsageError as exc:
        print(f"trio-pool: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # before or after the signal watcher ran
        code = None
    except BrokenPipeError:  # a print() to a reader that went away
        silence(sys.stdout)
        return EXIT_OK
    except Exception as exc:  # a bug: still one line, but say what it was
        if os.environ.get("TRIO_POOL_TRACEBACK"):
            raise
        print(f"trio-pool: internal error: {exc!r} (set TRIO_POOL_TRACEBACK=1 "
              "to see where)", file=sys.stderr)  # fmt: skip
        return EXIT_FAILED
    except BaseException as exc:  # e.g. an interrupt inside an exception group
        if not _is_interrupt(exc):
            raise
        code = None
    if code is None:
        if serving:
            return EXIT_OK
        print("trio-pool: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
