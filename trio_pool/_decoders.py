"""Incremental Content-Encoding decoders that never inflate more than asked.

Every decoder implements :class:`ContentDecoder`::

    decompress(data, max_length=-1) -> bytes
        Append ``data`` to the decoder's pending input and return at most
        ``max_length`` decoded bytes (``-1``: everything that can be decoded
        now). Input that could not be decoded yet, and output beyond
        ``max_length``, stay inside the decoder for the next call.
    needs_input -> bool
        ``True`` when no more output can come without more input. While it is
        ``False``, call ``decompress(b"", n)`` to get the rest.
    flush() -> bytes
        End of body: return whatever is left (unbounded, so drain with
        ``decompress(b"", n)`` until ``needs_input`` first) and raise
        ``DecodeError`` if the stream is truncated or invalid.

A body of zero bytes decodes to nothing without error, whatever its coding:
responses to HEAD and 304s carry a Content-Encoding but no body.

How the bound is kept: each engine is handed at most ``_INPUT_STEP`` bytes of
compressed input per step and asked for at most the room left; an engine that
may overshoot (brotli's output buffer grows in blocks; ``zstandard``, which
cannot cap its output, is fed one block at a time and emits whole blocks)
has its excess kept in a spill buffer, so memory stays within ``max_length``
plus one engine step (at most 128 KiB) whatever the compression ratio.
Stacked codings (``gzip, br``) pull from each other in ``_CHAIN_STEP``
pieces, so the bound holds for the whole chain.

Codings: ``gzip``/``x-gzip`` (concatenated members; zero padding and junk
after a complete member ignored, as urllib3 does), ``deflate`` (zlib-wrapped,
or raw deflate, told apart by the first two bytes), ``br`` (the ``brotli``
package, 1.2 or later), ``zstd`` (``compression.zstd`` on Python 3.14+, else
``backports.zstd``, else ``zstandard``; concatenated and skippable frames).
Like urllib3, a body whose Content-Encoding names a coding we do not know is
passed through undecoded. A missing optional module is reported, as
``DecodeError``, only when a body in that coding arrives. Every zlib, brotli
or zstd error becomes a ``DecodeError`` chained with ``from``; after one, the
decoder is unusable.
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Callable
from typing import Any, ClassVar, Protocol, cast

from ._exceptions import DecodeError

__all__ = ["ContentDecoder", "get_decoder"]

#: Most compressed bytes handed to an engine in one step.
_INPUT_STEP = 16 * 1024
#: Most bytes an outer decoder of a stack produces for its inner one per pull.
_CHAIN_STEP = 16 * 1024
#: Asking brotli for this little keeps each step to one ~32 KiB output block.
_BROTLI_STEP = 16 * 1024
#: Largest block a zstd frame may hold (RFC 8878 section 3.1.1.2.3).
_ZSTD_BLOCK_MAX = 128 * 1024
#: Like urllib3: a longer chain of codings is an attack, not a real response.
_MAX_CODINGS = 5

_ZSTD_MAGIC = 0xFD2FB528
_ZSTD_SKIPPABLE_MAGIC = 0x184D2A50  # low four bits are free


class ContentDecoder(Protocol):
    """An incremental decoder for one Content-Encoding (see the module doc)."""

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        """Add ``data``; return at most ``max_length`` decoded bytes."""
        ...

    @property
    def needs_input(self) -> bool:
        """Whether more output needs more input first."""
        ...

    def flush(self) -> bytes:
        """Return what is left at the end of the body; check it was complete."""
        ...


class _Buffer:
    """Bytes appended at the end and taken from the front, in amortised O(n)."""

    __slots__ = ("_data", "_start")

    def __init__(self) -> None:
        self._data = bytearray()
        self._start = 0

    def __len__(self) -> int:
        return len(self._data) - self._start

    def append(self, data: bytes) -> None:
        if self._start and self._start * 2 >= len(self._data):
            del self._data[: self._start]
            self._start = 0
        self._data += data

    def peek(self, n: int) -> bytes:
        """Up to ``n`` bytes from the front (all of them if ``n < 0``)."""
        end = len(self._data) if n < 0 else self._start + n
        return bytes(self._data[self._start : end])

    def skip(self, n: int) -> None:
        self._start += n
        if self._start >= len(self._data):
            self._data.clear()
            self._start = 0

    def take(self, n: int) -> bytes:
        data = self.peek(n)
        self.skip(len(data))
        return data


class _IdentityDecoder:
    """No coding: hands the bytes back, still honouring ``max_length``."""

    def __init__(self) -> None:
        self._pending = _Buffer()

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        """Return up to ``max_length`` of the bytes given so far."""
        if not self._pending and (max_length < 0 or len(data) <= max_length):
            return data  # the common case: no copy
        self._pending.append(data)
        return self._pending.take(max_length)

    @property
    def needs_input(self) -> bool:
        """Whether every byte given has been returned."""
        return not self._pending

    def flush(self) -> bytes:
        """Return the bytes not yet returned."""
        return self._pending.take(-1)


class _StreamDecoder:
    """Drives one decompression engine within the output bound.

    Subclasses implement :meth:`_step` (run the engine once on a piece of
    input) and :meth:`_finish` (check the stream ended properly).
    """

    coding: ClassVar[str]

    def __init__(self) -> None:
        self._input = _Buffer()
        self._spill = _Buffer()
        self._stalled = True
        self._seen_input = False

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        """Add ``data``; return at most ``max_length`` decoded bytes."""
        if data:
            self._input.append(data)
            self._seen_input = True
            self._stalled = False
        if max_length == 0:
            return b""
        parts = [self._spill.take(max_length)]
        size = len(parts[0])
        while max_length < 0 or size < max_length:
            room = -1 if max_length < 0 else max_length - size
            produced, used = self._step(self._input.peek(_INPUT_STEP), room)
            self._input.skip(used)
            if not produced and not used:
                self._stalled = True
                break
            if 0 <= room < len(produced):
                self._spill.append(produced[room:])
                produced = produced[:room]
            parts.append(produced)
            size += len(produced)
        else:
            # Stopped because the caller's room is full: more may be inside.
            self._stalled = False
        return b"".join(parts)

    @property
    def needs_input(self) -> bool:
        """Whether more output needs more input first."""
        return self._stalled and not self._spill

    def flush(self) -> bytes:
        """Return what is left; raise ``DecodeError`` if the body is cut short."""
        rest = self.decompress(b"", -1)
        if self._seen_input:
            if self._input:
                raise DecodeError(f"The {self.coding} body ended in the middle")
            self._finish()
        return rest

    def _step(self, chunk: bytes, room: int) -> tuple[bytes, int]:
        """Run the engine on ``chunk`` (possibly empty) once.

        Args:
            chunk: the front of the pending input.
            room: how many bytes the caller can still take (``-1``: any). An
                engine may return more; the excess is spilled.

        Returns:
            The bytes produced and how many bytes of ``chunk`` were used.
            ``(b"", 0)`` means no progress is possible without more input.
        """
        raise NotImplementedError

    def _finish(self) -> None:
        """Raise ``DecodeError`` unless the stream ended where it should."""
        raise NotImplementedError

    def _error(self, exc: Exception) -> DecodeError:
        return DecodeError(f"Failed to decode the {self.coding} body: {exc}")


def _zlib_used(obj: Any, chunk: bytes) -> int:
    """How many bytes of ``chunk`` the zlib object ``obj`` has used."""
    # Once the stream ends, what follows it is in unused_data (and, stale, in
    # unconsumed_tail too); before that, output-limited input is in the tail.
    left = obj.unused_data if obj.eof else obj.unconsumed_tail
    return len(chunk) - len(left)


_GZIP_MAGIC = b"\x1f\x8b"


class _GzipDecoder(_StreamDecoder):
    """``gzip``: one or more members, as ``gzip -c a b`` writes them."""

    coding = "gzip"
    _WBITS = 16 + zlib.MAX_WBITS

    def __init__(self) -> None:
        super().__init__()
        self._member: Any = zlib.decompressobj(self._WBITS)  # None: between members
        self._ignoring = False

    def _step(self, chunk: bytes, room: int) -> tuple[bytes, int]:
        if self._ignoring:
            return b"", len(chunk)
        if self._member is None:
            # Tools pad gzip files with zero bytes; skip them like gzip(1).
            padding = len(chunk) - len(chunk.lstrip(b"\0"))
            if padding or len(chunk) < 2:
                return b"", padding
            if chunk[:2] != _GZIP_MAGIC:
                # Not another member: trailing junk after a complete member is
                # ignored (as urllib3 and browsers do). Deciding by the magic
                # bytes, not by where zlib fails, keeps the answer the same
                # however the body is sliced and however much is read at once.
                self._ignoring = True
                return b"", len(chunk)
            self._member = zlib.decompressobj(self._WBITS)
        member = self._member
        try:
            out = member.decompress(chunk, max(room, 0))
        except zlib.error as exc:
            raise self._error(exc) from exc
        used = _zlib_used(member, chunk)
        if member.eof:
            self._member = None
        return out, used

    def _finish(self) -> None:
        if self._member is not None and not self._ignoring:
            raise DecodeError("The gzip body ended in the middle of a member")


def _is_zlib_header(cmf: int, flg: int) -> bool:
    """Whether two bytes start a zlib stream (RFC 1950 section 2.2)."""
    return (
        cmf & 0x0F == 8  # deflate
        and cmf >> 4 <= 7  # window of at most 32 KiB
        and (cmf << 8 | flg) % 31 == 0
        and not flg & 0x20  # no preset dictionary
    )


class _DeflateDecoder(_StreamDecoder):
    """``deflate``: RFC 9110 means zlib-wrapped; many servers send it raw."""

    coding = "deflate"

    def __init__(self) -> None:
        super().__init__()
        self._obj: Any = None

    def _step(self, chunk: bytes, room: int) -> tuple[bytes, int]:
        if self._obj is None:
            if len(chunk) < 2:
                return b"", 0
            zlib_wrapped = _is_zlib_header(chunk[0], chunk[1])
            self._obj = zlib.decompressobj(zlib.MAX_WBITS if zlib_wrapped else -15)
        obj = self._obj
        if obj.eof:
            return b"", len(chunk)  # zlib itself ignores what follows the end
        try:
            out = obj.decompress(chunk, max(room, 0))
        except zlib.error as exc:
            raise self._error(exc) from exc
        return out, _zlib_used(obj, chunk)

    def _finish(self) -> None:
        if not self._obj.eof:
            raise DecodeError("The deflate body ended in the middle")


class _BrotliDecoder(_StreamDecoder):
    """``br``, with the ``brotli`` package's output-limited ``process()``."""

    coding = "br"

    def __init__(self, brotli: Any) -> None:
        super().__init__()
        self._obj = brotli.Decompressor()
        self._errors: type[Exception] = brotli.error

    def _step(self, chunk: bytes, room: int) -> tuple[bytes, int]:
        obj = self._obj
        # While output is pending, brotli must be given no new input.
        feed = chunk if obj.can_accept_more_data() else b""
        if feed and obj.is_finished():
            raise DecodeError("The br body has data after the end of its stream")
        try:
            if room < 0:
                out = obj.process(feed)
            else:
                out = obj.process(feed, output_buffer_limit=min(room, _BROTLI_STEP))
        except self._errors as exc:
            raise self._error(exc) from exc
        return cast(bytes, out), len(feed)

    def _finish(self) -> None:
        if not self._obj.is_finished():
            raise DecodeError("The br body ended in the middle")


class _ZstdFrame(Protocol):
    """``zstandard``'s one-frame decompressobj: no cap on its output."""

    eof: bool

    def decompress(self, data: bytes) -> bytes: ...


class _BoundedZstdFrame(Protocol):
    """The ``ZstdDecompressor`` of ``compression.zstd`` and ``backports.zstd``."""

    eof: bool
    needs_input: bool
    unused_data: bytes

    def decompress(self, data: bytes, max_length: int = -1) -> bytes: ...


def _zstd_magic_ok(data: bytes) -> bool:
    """Whether ``data`` (4 bytes or more) starts a zstd or skippable frame."""
    magic = int.from_bytes(data[:4], "little")
    return magic == _ZSTD_MAGIC or magic & ~0xF == _ZSTD_SKIPPABLE_MAGIC


class _ZstdDecoder(_StreamDecoder):
    """``zstd`` with ``compression.zstd`` (3.14+) or ``backports.zstd``.

    Their decompressor takes ``max_length``, so the library keeps the bound.
    One decompressor decodes one frame (a skippable frame counts as one);
    what follows its end, ``unused_data``, starts the next. That data was
    already counted as used, so it is kept here (``_carry``: never more than
    one input step) and fed to the next frame before any new input.
    """

    coding = "zstd"

    def __init__(self, module: Any) -> None:
        super().__init__()
        self._new_frame: Callable[[], _BoundedZstdFrame] = module.ZstdDecompressor
        self._errors: type[Exception] = module.ZstdError
        self._frame: _BoundedZstdFrame | None = None
        self._carry = b""

    def _step(self, chunk: bytes, room: int) -> tuple[bytes, int]:
        used = 0
        while True:
            frame = self._frame
            if frame is not None and not frame.needs_input:
                data = b""  # output is pending: take it before adding input
            elif self._carry:
                data, self._carry = self._carry, b""
            elif chunk and not used:
                data, used = chunk, len(chunk)
            else:
                return b"", used
            if frame is None:
                frame = self._frame = self._start_frame(data)
            try:
                out = frame.decompress(data, room)
            except self._errors as exc:
                raise self._error(exc) from exc
            if frame.eof:
                self._frame, self._carry = None, frame.unused_data
            elif not (out or data or frame.needs_input):
                return b"", used  # the library made no progress: do not spin
            # An empty answer to b"" is normal: a call that filled max_length
            # cannot tell whether more is pending, and the next one finds out.
            if out:
                return out, used

    def _start_frame(self, data: bytes) -> _BoundedZstdFrame:
        # Checked here for a clear message; shorter input is left to the
        # library, which fails on a bad magic number once it has four bytes.
        if len(data) >= 4 and not _zstd_magic_ok(data):
            raise DecodeError("The zstd body holds data that is not a zstd frame")
        return self._new_frame()

    def _finish(self) -> None:
        if self._frame is not None or self._carry:
            raise DecodeError("The zstd body ended in the middle of a frame")


# Where the zstd decoder is in the frame structure.
_FRAME_START, _BLOCK_HEADER, _BLOCK_BODY, _CHECKSUM, _SKIPPED = range(5)


def _zstd_header_size(descriptor: int) -> int:
    """Size of a frame header, magic included, from its descriptor byte."""
    single_segment = descriptor >> 5 & 1
    content_size = (single_segment, 2, 4, 8)[descriptor >> 6]
    dictionary_id = (0, 1, 2, 4)[descriptor & 3]
    return 5 + (not single_segment) + dictionary_id + content_size


class _ZstdBlockDecoder(_StreamDecoder):
    """``zstd`` with ``zstandard``: frames fed to it one block at a time.

    ``zstandard`` cannot cap the output of one call (it has no
    ``max_length``), but a block never decodes to more than 128 KiB.
    So this class follows the frame format (RFC 8878) just far enough to stop
    every feed at a block boundary, and the library does the decoding and
    the checking.
    """

    coding = "zstd"

    def __init__(
        self, new_frame: Callable[[], _ZstdFrame], errors: type[Exception]
    ) -> None:
        super().__init__()
        self._new_frame = new_frame
        self._errors = errors
        self._frame: _ZstdFrame | None = None
        self._state = _FRAME_START
        self._left = 0  # bytes left in the current block body/checksum/skip
        self._last_block = False
        self._checksum = False

    def _step(self, chunk: bytes, room: int) -> tuple[bytes, int]:
        if self._left:
            return self._pass(chunk)
        if self._state == _FRAME_START:
            return self._start_frame(chunk)
        return self._start_block(chunk)

    def _finish(self) -> None:
        if self._state != _FRAME_START:
            raise DecodeError("The zstd body ended in the middle of a frame")

    def _start_frame(self, chunk: bytes) -> tuple[bytes, int]:
        if len(chunk) < 4:
            return b"", 0
        magic = int.from_bytes(chunk[:4], "little")
        if magic & ~0xF == _ZSTD_SKIPPABLE_MAGIC:
            if len(chunk) < 8:
                return b"", 0
            self._enter(_SKIPPED, int.from_bytes(chunk[4:8], "little"))
            return b"", 8
        if magic != _ZSTD_MAGIC:
            raise DecodeError("The zstd body holds data that is not a zstd frame")
        if len(chunk) < 5:
            return b"", 0
        size = _zstd_header_size(chunk[4])
        if len(chunk) < size:
            return b"", 0
        self._checksum = bool(chunk[4] & 4)
        self._state = _BLOCK_HEADER
        return self._feed(chunk[:size]), size

    def _start_block(self, chunk: bytes) -> tuple[bytes, int]:
        if len(chunk) < 3:
            return b"", 0
        header = int.from_bytes(chunk[:3], "little")
        kind, size = header >> 1 & 3, header >> 3
        if kind == 3 or size > _ZSTD_BLOCK_MAX:
            raise DecodeError("The zstd body has an invalid block header")
        out = self._feed(chunk[:3])
        self._last_block = bool(header & 1)
        # An RLE block (kind 1) is one byte repeated `size` times.
        self._enter(_BLOCK_BODY, 1 if kind == 1 else size)
        return out, 3

    def _pass(self, chunk: bytes) -> tuple[bytes, int]:
        n = min(self._left, len(chunk))
        if not n:
            return b"", 0
        out = b"" if self._state == _SKIPPED else self._feed(chunk[:n])
        self._left -= n
        if not self._left:
            self._unit_done()
        return out, n

    def _enter(self, state: int, size: int) -> None:
        self._state, self._left = state, size
        if not size:
            self._unit_done()

    def _unit_done(self) -> None:
        state = self._state
        if state == _BLOCK_BODY and not self._last_block:
            self._state = _BLOCK_HEADER
        elif state == _BLOCK_BODY and self._checksum:
            self._enter(_CHECKSUM, 4)
        elif state == _SKIPPED:
            self._state = _FRAME_START
        else:
            self._end_frame()

    def _end_frame(self) -> None:
        frame, self._frame = self._frame, None
        if frame is None or not frame.eof:
            raise DecodeError("The zstd frame did not end where its blocks did")
        self._state = _FRAME_START

    def _feed(self, data: bytes) -> bytes:
        if self._frame is None:
            self._frame = self._new_frame()
        try:
            return self._frame.decompress(data)
        except self._errors as exc:
            raise self._error(exc) from exc


class _Stacked:
    """Two codings applied in turn: ``outer`` is undone first."""

    def __init__(self, inner: ContentDecoder, outer: ContentDecoder) -> None:
        self._inner = inner
        self._outer = outer

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        """Add ``data``; return at most ``max_length`` fully decoded bytes."""
        self._outer.decompress(data, 0)
        parts: list[bytes] = []
        size = 0
        while max_length < 0 or size < max_length:
            part = self._inner.decompress(
                b"", max_length - size if max_length >= 0 else -1
            )
            if part:
                parts.append(part)
                size += len(part)
                continue
            fed = self._outer.decompress(b"", _CHAIN_STEP)
            if not fed:
                break
            self._inner.decompress(fed, 0)
        return b"".join(parts)

    @property
    def needs_input(self) -> bool:
        """Whether more output needs more input first."""
        return self._inner.needs_input and self._outer.needs_input

    def flush(self) -> bytes:
        """Decode the rest; check both codings ended properly."""
        head = self.decompress(b"", -1)
        self._inner.decompress(self._outer.flush(), 0)
        return head + self._inner.flush()


class _Refused:
    """Stands in for a decoder we cannot provide; fails once a body arrives."""

    def __init__(self, reason: str) -> None:
        self._reason = reason

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        """Raise ``DecodeError`` if ``data`` is not empty."""
        if data:
            raise DecodeError(self._reason)
        return b""

    @property
    def needs_input(self) -> bool:
        """Always true: this decoder never has output."""
        return True

    def flush(self) -> bytes:
        """Nothing to flush: an empty body is fine."""
        return b""


def _missing(coding: str, extra: str) -> _Refused:
    return _Refused(
        f"The response body is {coding}-encoded, but no {coding} decoder is "
        f"installed; install trio-pool[{extra}] to decode it"
    )


def _make_brotli() -> ContentDecoder:
    try:
        brotli = importlib.import_module("brotli")
    except ImportError:
        return _missing("br", "brotli")
    if not hasattr(brotli.Decompressor, "can_accept_more_data"):
        return _missing("br", "brotli")  # brotli < 1.2 cannot bound its output
    return _BrotliDecoder(brotli)


def _make_zstd() -> ContentDecoder:
    # Python 3.14's module, or its backport, caps its own output; zstandard,
    # the fallback, needs the frame walker of _ZstdBlockDecoder for that.
    for name in ("compression.zstd", "backports.zstd"):
        try:
            return _ZstdDecoder(importlib.import_module(name))
        except ImportError:
            pass
    try:
        zstandard = importlib.import_module("zstandard")
    except ImportError:
        return _missing("zstd", "zstd")

    def new_frame() -> _ZstdFrame:
        return cast(_ZstdFrame, zstandard.ZstdDecompressor().decompressobj())

    return _ZstdBlockDecoder(new_frame, zstandard.ZstdError)


_FACTORIES: dict[str, Callable[[], ContentDecoder]] = {
    "gzip": _GzipDecoder,
    "x-gzip": _GzipDecoder,  # RFC 9110 section 8.4.1.3
    "deflate": _DeflateDecoder,
    "br": _make_brotli,
    "zstd": _make_zstd,
}


def get_decoder(content_encoding: str) -> ContentDecoder:
    """Return a decoder for a Content-Encoding header value.

    Args:
        content_encoding: the header value, e.g. ``"gzip"`` or
            ``"gzip, br"`` (codings in the order they were applied).
            Case and whitespace do not matter; ``identity`` entries are
            skipped.

    Returns:
        A fresh decoder. If any coding is unknown, an identity decoder: like
        urllib3, the body is then passed through undecoded. More than five
        codings give a decoder that raises ``DecodeError`` on the first byte.
    """
    codings = [c.strip().lower() for c in content_encoding.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if len(codings) > _MAX_CODINGS:
        return _Refused(
            f"Too many content codings in the chain: {len(codings)} > {_MAX_CODINGS}"
        )
    if not codings or any(c not in _FACTORIES for c in codings):
        return _IdentityDecoder()
    decoder = _FACTORIES[codings[-1]]()
    for coding in reversed(codings[:-1]):
        decoder = _Stacked(inner=_FACTORIES[coding](), outer=decoder)
    return decoder
