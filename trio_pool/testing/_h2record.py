"""What the HTTP/2 test server saw on one connection: :class:`H2ConnectionRecord`.

The connection's reader fills it in as h2 reports events, so a client test can
assert on the client's behaviour on the wire ("stream 3 was reset with CANCEL",
"the client acknowledged the PING", "the connection is still open") without
parsing frames itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["H2ConnectionRecord", "H2GoAway"]


@dataclass(frozen=True, slots=True)
class H2GoAway:
    """One GOAWAY frame: its error code, last stream id and debug data."""

    error_code: int
    last_stream_id: int
    additional_data: bytes = b""


@dataclass(eq=False)
class H2ConnectionRecord:
    """Everything of note that one HTTP/2 connection carried, as the server saw it.

    Error codes are ``h2.errors.ErrorCodes`` members where known (they compare
    equal to plain integers). "Received" means sent by the client.

    Attributes:
        connection_id: The connection's number, from 1 (shared with the
            HTTP/1.1 fallback's numbering).
        alpn: The protocol ALPN chose (``"h2"``, ``"http/1.1"``), ``None``
            without TLS or ALPN.
        protocol: ``"h2"`` or ``"http/1.1"`` (an ALPN fallback).
        open: Whether the server still has the connection open (``False``
            from the moment it starts closing it).
        streams_opened: Stream ids of every request received, in order.
        streams_ignored: Streams above a graceful GOAWAY's ``last_stream_id``,
            never processed.
        active_streams: Streams open as h2 (server side) counts them now.
        peak_active_streams: The most streams that were ever open at once.
        resets_received: ``(stream_id, error_code)`` of each RST_STREAM.
        resets_sent: ``(stream_id, error_code)`` of each RST_STREAM the server
            sent.
        window_updates: ``(stream_id, increment)`` of each WINDOW_UPDATE
            (stream 0 is the connection window).
        settings_received: The changes of each SETTINGS frame,
            ``{code: new_value}``.
        settings_acked: How many of the server's SETTINGS frames the client
            acknowledged.
        goaways_received: Each GOAWAY from the client.
        goaways_sent: Each GOAWAY from the server.
        pings_received: The opaque data of each PING from the client.
        pings_sent: The opaque data of each PING the server sent.
        pings_acked: The opaque data of each of the server's PINGs the client
            acknowledged.
        data_received: Flow-controlled DATA bytes received, per stream.
        protocol_errors: Messages of h2 errors on the client's input (the
            connection was then closed with GOAWAY).
    """

    connection_id: int
    alpn: str | None = None
    protocol: str = "h2"
    open: bool = True
    streams_opened: list[int] = field(default_factory=list)
    streams_ignored: list[int] = field(default_factory=list)
    peak_active_streams: int = 0
    resets_received: list[tuple[int, int]] = field(default_factory=list)
    resets_sent: list[tuple[int, int]] = field(default_factory=list)
    window_updates: list[tuple[int, int]] = field(default_factory=list)
    settings_received: list[dict[int, int]] = field(default_factory=list)
    settings_acked: int = 0
    goaways_received: list[H2GoAway] = field(default_factory=list)
    goaways_sent: list[H2GoAway] = field(default_factory=list)
    pings_received: list[bytes] = field(default_factory=list)
    pings_sent: list[bytes] = field(default_factory=list)
    pings_acked: list[bytes] = field(default_factory=list)
    data_received: dict[int, int] = field(default_factory=dict)
    protocol_errors: list[str] = field(default_factory=list)
    _count_active: Callable[[], int] = field(
        default=lambda: 0, init=False, repr=False, compare=False
    )

    @property
    def active_streams(self) -> int:
        """Streams open now, as h2 on the server side counts them."""
        return self._count_active() if self.open else 0

    def reset_code(self, stream_id: int) -> int | None:
        """The error code the client reset ``stream_id`` with, or ``None``."""
        for sid, code in self.resets_received:
            if sid == stream_id:
                return code
        return None
