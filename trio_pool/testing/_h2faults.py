"""Connection-level fault settings of the HTTP/2 test server, and raw frames.

:class:`H2Faults` is chosen per connection (``open_h2_server(faults=...)`` takes
one value or a function of the connection number). Path-level faults are routes
(``_h2routes.py``). The frame builders here produce bytes that h2 itself refuses
to send: a PUSH_PROMISE to a client that disabled push, a GOAWAY that does not
close h2's own state machine, arbitrary frames for custom faults.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import hpack
from h2.errors import ErrorCodes
from hyperframe.frame import (
    ContinuationFrame,
    GoAwayFrame,
    HeadersFrame,
    PushPromiseFrame,
)

__all__ = [
    "H2Faults",
    "continuation_flood",
    "error_code",
    "goaway_frame",
    "push_promise_frame",
]


@dataclass(frozen=True, slots=True)
class H2Faults:
    """How the HTTP/2 test server misbehaves on one connection.

    Every field defaults to well-behaved. Settings take effect as HTTP/2
    requires: ``max_concurrent_streams`` and ``settings`` go out in the
    server's first SETTINGS frame; ``initial_window_size`` in a second SETTINGS
    frame right behind it, so that h2 applies it to the client's DATA only once
    the client has acknowledged it (a client may use the default 65,535-byte
    window until then).

    Attributes:
        max_concurrent_streams: SETTINGS_MAX_CONCURRENT_STREAMS to advertise.
            A client that opens more streams than this gets
            GOAWAY(PROTOCOL_ERROR) (h2's ``TooManyStreamsError``).
        initial_window_size: SETTINGS_INITIAL_WINDOW_SIZE for the client's
            uploads, e.g. ``0`` (no request body until a WINDOW_UPDATE) or
            ``1024`` (tiny windows, reopened as the body is read).
        window_update_delay: With a window of ``0``: seconds after a stream
            opens before the server opens its window with a WINDOW_UPDATE of
            ``window_update_size``; ``None`` never opens it.
        window_update_size: The increment sent after ``window_update_delay``.
        settings: Any other SETTINGS to advertise first, ``{code: value}``
            (``h2.settings.SettingCodes`` or plain integers).
        max_requests: After this many streams on the connection, send
            GOAWAY(NO_ERROR, last_stream_id=the last stream) *before* answering
            it, as nginx's ``keepalive_requests`` does, answer the streams up
            to it, ignore later ones, and close once they are done.
        preface: Bytes to send instead of the server's connection preface
            (its SETTINGS frame), after which the connection is closed; e.g.
            ``b"HTTP/1.1 400 Bad Request\\r\\n\\r\\n"``.
    """

    max_concurrent_streams: int | None = None
    initial_window_size: int | None = None
    window_update_delay: float | None = None
    window_update_size: int = 65535
    settings: Mapping[int, int] = field(default_factory=dict)
    max_requests: int | None = None
    preface: bytes | None = None


def error_code(text: str | int) -> int:
    """Parse an HTTP/2 error code given as a name (``"CANCEL"``) or number.

    Raises:
        ValueError: If ``text`` names no error code.
    """
    if isinstance(text, int):
        return text
    name = text.strip().upper()
    if name in ErrorCodes.__members__:
        return ErrorCodes[name]
    try:
        return int(name, 0)
    except ValueError:
        raise ValueError(f"unknown HTTP/2 error code {text!r}") from None


def goaway_frame(last_stream_id: int, code: int = 0, debug: bytes = b"") -> bytes:
    """Serialise a GOAWAY frame (which h2 would follow by refusing all sends)."""
    frame = GoAwayFrame(0)
    frame.last_stream_id = last_stream_id
    frame.error_code = code
    frame.additional_data = debug
    return bytes(frame.serialize())


def _literal_block(headers: Sequence[tuple[bytes, bytes]]) -> bytes:
    """An HPACK block that leaves the peer's dynamic table as it was."""
    encoder = hpack.Encoder()
    literals = [hpack.NeverIndexedHeaderTuple(name, value) for name, value in headers]
    return bytes(encoder.encode(literals, huffman=False))


def continuation_flood(stream_id: int, status: int, frames: int) -> bytes:
    """Serialise response HEADERS followed by ``frames`` CONTINUATION frames.

    The header block is spread one byte per frame (padded out with an
    ``x-flood`` header when short) and only the last frame ends it, as in
    the "CONTINUATION flood" attacks of 2024.
    """
    headers = [(b":status", str(status).encode()), (b"x-flood", b"f" * frames)]
    block = _literal_block(headers)
    first = HeadersFrame(stream_id)
    first.data = block[:1]
    pieces = [first.serialize()]
    for offset in range(1, len(block)):
        frame = ContinuationFrame(stream_id)
        frame.data = block[offset : offset + 1]
        if offset == len(block) - 1:
            frame.flags.add("END_HEADERS")
        pieces.append(frame.serialize())
    return b"".join(pieces)


def push_promise_frame(
    stream_id: int, promised_stream_id: int, headers: Sequence[tuple[bytes, bytes]]
) -> bytes:
    """Serialise a PUSH_PROMISE frame, whatever the client's ENABLE_PUSH says.

    The header block is encoded with a fresh HPACK encoder using literals that
    are never indexed, so it leaves the client's dynamic table as it was.
    """
    frame = PushPromiseFrame(stream_id)
    frame.promised_stream_id = promised_stream_id
    frame.data = _literal_block(headers)
    frame.flags.add("END_HEADERS")
    return bytes(frame.serialize())
