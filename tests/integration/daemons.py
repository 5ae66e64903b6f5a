"""Helpers for the real servers the interop tests start (nginx, squid, SOCKS)."""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path

LOOPBACK = "127.0.0.1"
#: Seconds a daemon gets to exit after SIGTERM before SIGKILL.
STOP_TIMEOUT = 10.0


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
