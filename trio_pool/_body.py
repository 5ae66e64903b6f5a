"""Request bodies: what can be sent, how it is framed, and rewinding for retries.

A :class:`RequestBody` wraps whatever the caller passed as ``body=`` and can
produce its bytes once per attempt. Bytes and re-iterable collections replay
for free; files are rewound to where they started (``body_pos``, or their
position when the request began — a file is never re-sent empty after a
307/308); one-shot iterators and async iterators can be sent only once.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any

from ._exceptions import UnrewindableBodyError

__all__ = ["RequestBody"]

_BLOCK = 64 * 1024


def _as_bytes(chunk: Any) -> bytes:
    if isinstance(chunk, str):
        return chunk.encode("utf-8")
    if isinstance(chunk, (bytes, bytearray, memoryview)):
        return bytes(chunk)
    raise TypeError(
        f"A request body chunk must be bytes or str, not {type(chunk).__name__}"
    )


class RequestBody:
    """A request body that can be sent once per attempt.

    Args:
        body: None, bytes-like, str (sent as UTF-8), a file object (sync or
            async ``read``), an iterable or an async iterable of bytes/str.
        body_pos: where a file body starts; by default its position now.

    Raises:
        TypeError: for anything else.
    """

    __slots__ = ("_body", "_kind", "_pos", "_started", "length")

    def __init__(self, body: Any, body_pos: int | None = None) -> None:
        self._body = body
        self._started = False
        self._pos: int | None = None
        self.length: int | None = None
        if body is None:
            self._kind = "none"
            self.length = 0
        elif isinstance(body, (bytes, bytearray, memoryview, str)):
            self._kind = "bytes"
            self._body = _as_bytes(body)
            self.length = len(self._body)
        elif hasattr(body, "read"):
            self._kind = "file"
            self._pos = body_pos if body_pos is not None else _tell(body)
        elif isinstance(body, AsyncIterable):
            self._kind = "once"
        elif isinstance(body, Iterable):
            self._kind = "once" if iter(body) is body else "iterable"
        else:
            raise TypeError(
                "body must be bytes, str, a file object, or an (async) iterable "
                f"of bytes; got {type(body).__name__}"
            )

    @property
    def is_empty(self) -> bool:
        """True when there is no body at all (not even an empty one)."""
        return self._kind == "none"

    def chunks(self) -> AsyncIterable[bytes] | None:
        """The body's bytes for one attempt; None when there is no body."""
        if self._kind == "none":
            return None
        self._started = True
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        body = self._body
        if self._kind == "bytes":
            yield body
        elif self._kind == "file":
            read = body.read
            is_async = inspect.iscoroutinefunction(read)
            while True:
                block = await read(_BLOCK) if is_async else read(_BLOCK)
                if not block:
                    return
                yield _as_bytes(block)
        elif isinstance(body, AsyncIterable):
            async for chunk in body:
                yield _as_bytes(chunk)
        else:
            for chunk in body:
                yield _as_bytes(chunk)

    async def rewind(self) -> None:
        """Get ready to send the body again, for a retry or a redirect.

        Raises:
            UnrewindableBodyError: a one-shot iterator was already (partly)
                sent, or a file cannot seek back.
        """
        if not self._started:
            return
        if self._kind == "once":
            raise UnrewindableBodyError(
                "The request body is an iterator that was already sent; it "
                "cannot be sent again for a retry or redirect. Pass bytes, a "
                "list or a seekable file to allow that."
            )
        if self._kind == "file":
            try:
                if self._pos is None:
                    raise OSError("the file's position was unknown")
                seek = self._body.seek
                if inspect.iscoroutinefunction(seek):
                    await seek(self._pos)
                else:
                    seek(self._pos)
            except (OSError, AttributeError, ValueError) as exc:
                raise UnrewindableBodyError(
                    f"The file request body cannot be rewound for a retry: {exc}"
                ) from exc
        self._started = False


def _tell(body: Any) -> int | None:
    if inspect.iscoroutinefunction(getattr(body, "tell", None)):
        # An async file: its start is taken as 0 unless body_pos says.
        return 0
    try:
        pos = body.tell()
    except (OSError, AttributeError, ValueError):
        return None
    return pos if isinstance(pos, int) else None
