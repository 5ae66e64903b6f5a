"""Writing bodies to stdout in command-line order, and the terminal status line.

Theory of operation
-------------------

``get`` fetches several URLs at once but must write them in the order they
were given. :class:`OrderedOutput` gives each URL a slot. The slot whose turn
it is writes straight through to stdout; the others write into a spool (a
``SpooledTemporaryFile``: memory up to 1 MiB, then a temporary file), so
memory stays flat however large the bodies are. When the current slot
finishes, the next one's spool is copied out and that slot switches to writing
straight through; a slot that finished meanwhile is copied whole and the turn
moves on. Everything runs in one trio thread, so the only places where the
state can change under us are the awaits in :meth:`OrderedOutput._advance`,
which re-checks the spool after each one.

stdout is written from a worker thread (``trio.to_thread``) so that a slow
reader on the other end of a pipe does not stall the event loop. A reader that
goes away (``trio-pool get URL | head``) is a normal way to stop: the first
``BrokenPipeError`` cancels the command's scope and later writes are dropped.
"""

from __future__ import annotations

import os
import tempfile
from typing import BinaryIO, TextIO

import trio

__all__ = ["OrderedOutput", "StatusLine", "Stdout", "silence"]

_SPOOL_MEMORY = 2**20
_COPY_PIECE = 2**16


class Stdout:
    """An async writer of bytes to a binary file (normally ``sys.stdout.buffer``).

    Args:
        file: where to write.
        on_close: cancelled when the reader has gone away (a broken pipe).
    """

    def __init__(self, file: BinaryIO, on_close: trio.CancelScope) -> None:
        self._file = file
        self._on_close = on_close
        self.broken = False

    async def write(self, data: bytes) -> None:
        """Write and flush ``data``; nothing happens once the pipe is broken."""
        if self.broken or not data:
            return
        try:
            await trio.to_thread.run_sync(self._write, data)
        except BrokenPipeError:
            self.broken = True
            self._on_close.cancel()
            silence(self._file)

    def _write(self, data: bytes) -> None:
        self._file.write(data)
        self._file.flush()


def silence(file: BinaryIO | TextIO) -> None:
    """Point ``file``'s descriptor at /dev/null after its reader went away.

    Python flushes stdout once more at exit; without this, that flush fails
    too and prints a warning after we meant to exit quietly.
    """
    try:
        fd = file.fileno()
    except (AttributeError, ValueError, OSError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


class _Slot:
    __slots__ = ("direct", "done", "read_at", "spool")

    def __init__(self, direct: bool) -> None:
        self.direct = direct
        self.done = False
        self.read_at = 0
        self.spool: tempfile.SpooledTemporaryFile[bytes] | None = None


class OrderedOutput:
    """Bytes from ``count`` concurrent writers, written out in slot order."""

    def __init__(self, out: Stdout, count: int) -> None:
        self._out = out
        self._slots = [_Slot(direct=i == 0) for i in range(count)]
        self._turn = 0

    async def write(self, index: int, data: bytes) -> None:
        """Write ``data`` for slot ``index`` (now, or when its turn comes)."""
        slot = self._slots[index]
        if slot.direct:
            await self._out.write(data)
            return
        if slot.spool is None:
            # Closed by _drain or close(): its life spans many calls.
            slot.spool = tempfile.SpooledTemporaryFile(_SPOOL_MEMORY)  # noqa: SIM115
        slot.spool.seek(0, 2)
        slot.spool.write(data)

    async def finish(self, index: int) -> None:
        """Slot ``index`` has written everything; later slots may go on."""
        slot = self._slots[index]
        slot.done = True
        if slot.direct:
            # Only the slot whose turn it is is direct; if its spool is being
            # copied out right now, the copier moves the turn on instead.
            await self._advance()

    def close(self) -> None:
        """Drop whatever is still spooled (after an interruption)."""
        for slot in self._slots:
            if slot.spool is not None:
                slot.spool.close()
                slot.spool = None

    async def _advance(self) -> None:
        while self._turn + 1 < len(self._slots):
            self._turn += 1
            slot = self._slots[self._turn]
            await self._drain(slot)
            if not slot.done:
                slot.direct = True
                return

    async def _drain(self, slot: _Slot) -> None:
        while slot.spool is not None:
            slot.spool.seek(slot.read_at)
            piece = slot.spool.read(_COPY_PIECE)
            if not piece:
                # No await since the read: nothing can have been added.
                slot.spool.close()
                slot.spool = None
                return
            slot.read_at += len(piece)
            await self._out.write(piece)


class StatusLine:
    """A one-line progress display on stderr, only when stderr is a terminal.

    Messages printed through :meth:`message` erase the line first, so progress
    and errors never mix on one line.

    Args:
        stream: stderr.
        unless: no display either if this file (stdout) is a terminal.
    """

    def __init__(self, stream: TextIO, *, unless: BinaryIO | None = None) -> None:
        self._stream = stream
        # With ``unless`` (stdout) on the terminal too, bodies and the status
        # line would garble each other: then there is none.
        self.enabled = _isatty(stream) and not (unless is not None and _isatty(unless))
        self._shown = False

    def show(self, text: str) -> None:
        """Replace the status line with ``text`` (no-op off a terminal)."""
        if self.enabled:
            self._stream.write("\r\x1b[K" + text)
            self._stream.flush()
            self._shown = True

    def clear(self) -> None:
        """Erase the status line, if one is shown."""
        if self._shown:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._shown = False

    def message(self, text: str) -> None:
        """Print ``text`` as a line of its own."""
        self.clear()
        print(text, file=self._stream, flush=True)


def _isatty(stream: TextIO | BinaryIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
