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
    def started(self) -> bool:
        """Whether :meth:`chunks` was called: the body must be rewound
        before it is sent again."""
        return self._started

    @property
    def is_empty(self) -> bool:
        """True when there is no body at all (not even an empty one)."""
        return self._kind == "none"

    def chunks(self) -> AsyncIterator[bytes] | None:
        """The body's bytes for one attempt; None when there is no body."""
        if self._kind == "none":
            return None
        self._started = True
        return _Chunks(self._kind, self._body)

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


class _Chunks:
    """One pass over a body's bytes.

    A plain async iterator rather than an async generator: abandoning it
    part-way (a cancelled upload) leaves nothing for the garbage collector
    to finalize.
    """

    __slots__ = ("_body", "_done", "_is_async", "_it", "_kind")

    def __init__(self, kind: str, body: Any) -> None:
        self._kind = kind
        self._body = body
        self._done = False
        self._it: Any = None
        self._is_async = False
        if kind == "file":
            self._is_async = inspect.iscoroutinefunction(body.read)
        elif kind != "bytes":
            self._is_async = isinstance(body, AsyncIterable)
            self._it = aiter(body) if self._is_async else iter(body)

    def __aiter__(self) -> _Chunks:
        return self

    async def aclose(self) -> None:
        """Stop early: close the caller's async generator, if it is one."""
        self._done = True
        close = getattr(self._it, "aclose", None)
        if close is not None:
            await close()

    async def __anext__(self) -> bytes:
        if self._done:
            raise StopAsyncIteration
        if self._kind == "bytes":
            self._done = True
            return self._body  # type: ignore[no-any-return]
        if self._kind == "file":
            read = self._body.read
            block = await read(_BLOCK) if self._is_async else read(_BLOCK)
            if not block:
                self._done = True
                raise StopAsyncIteration
            return _as_bytes(block)
        if self._is_async:
            return _as_bytes(await anext(self._it))
        try:
            return _as_bytes(next(self._it))
        except StopIteration:
            self._done = True
            raise StopAsyncIteration from None
