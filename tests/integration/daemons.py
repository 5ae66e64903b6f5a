"""Helpers for the real servers the interop tests start (nginx, squid, SOCKS)."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

LOOPBACK = "127.0.0.1"
#: Seconds a daemon gets to exit after SIGTERM before SIGKILL.
STOP_TIMEOUT = 10.0
#: Seconds a daemon gets to accept connections on its ports.
START_TIMEOUT = 10.0


def free_port() -> int:
    """A loopback port that was free a moment ago.

    Another process may take it before our daemon binds it; the daemons are
    started with a few attempts for that reason.
    """
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def accepts(port: int) -> bool:
    """Whether something accepts TCP connections on the loopback port."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5):
            return True
    except OSError:
        return False


def tail(path: Path) -> str:
    """The end of a log file, for error messages ("" if unreadable)."""
    try:
        return path.read_text(errors="replace")[-4000:]
    except OSError:
        return ""


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, a grace period, then SIGKILL; always reaped."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def launch(
    argv: Sequence[str], directory: Path, ports: Sequence[int], output: str
) -> subprocess.Popen[bytes]:
    """Start a daemon, its output in ``directory/output``; wait until each
    port accepts. If it exits or is not ready in time, it is stopped and a
    RuntimeError shows the end of its output and of ``error.log``."""
    with (directory / output).open("wb") as sink:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink
        )
    waiting = list(ports)
    deadline = time.monotonic() + START_TIMEOUT
    while waiting:
        if process.poll() is not None or time.monotonic() > deadline:
            stop_process(process)
            logs = "".join(
                f"--- {name}:\n{tail(directory / name)}\n"
                for name in (output, "error.log")
            )
            raise RuntimeError(f"{Path(argv[0]).name} did not start:\n{logs}")
        if accepts(waiting[0]):
            waiting.pop(0)
        else:
            time.sleep(0.02)
    return process
