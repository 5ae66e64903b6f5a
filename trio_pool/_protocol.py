"""The seam between the pools and the protocol engines (HTTP/1.1 now, HTTP/2 next).

A pool speaks to a connection only through :class:`ProtocolConnection`: it
hands over a :class:`RequestHead` (trio_pool's own description of a request,
built by ``_request``) and a body, and gets back a :class:`ResponseHead` and
then the body piece by piece. What goes on the wire, and how the protocol
library's errors become trio_pool's, is the engine's business alone; no
module but the engine imports its protocol library.

One exchange at a time is what a connection offers here. An engine that
multiplexes (HTTP/2) implements the same methods per stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import TYPE_CHECKING, NamedTuple, Protocol

from ._headers import HTTPHeaderDict

if TYPE_CHECKING:
    import trio

__all__ = ["ProtocolConnection", "RequestHead", "ResponseHead"]


class RequestHead(NamedTuple):
    """What to send, before any protocol has seen it. (This and
    :class:`ResponseHead` are named tuples: one of each is made per
    request, and a frozen dataclass pays a call per field to be made.)

    Attributes:
        method: the method, as given (checked by the engine).
        target: the request target: a path and query, or an absolute URL
            for a forwarding proxy.
        headers: the header lines in order, defaults included, as bytes.
        body_length: the body's length; None when unknown (streamed), 0 when
            there is no body.
        has_body: whether a body (possibly empty) follows the head.
        chunked: the caller asked for chunked framing.
        url: the request's URL, for error messages.
    """

    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body_length: int | None
    has_body: bool
    chunked: bool
    url: str


class ResponseHead(NamedTuple):
    """A final response's status line and headers, protocol-neutral.

    Attributes:
        status: the status code.
        reason: the reason phrase ("" where the protocol has none).
        version: 10, 11 or 20.
        headers: the response headers.
    """

    status: int
    reason: str
    version: int
    headers: HTTPHeaderDict


class ProtocolConnection(Protocol):
    """One connection's protocol engine, as a pool and a response use it.

    An exchange is: :meth:`send_request` (which may return an early answer),
    :meth:`receive_response` unless it did, :meth:`receive_data` until it
    returns ``b""``, and :meth:`finish_cycle` to learn whether the connection
    can carry another request. A failed or cancelled exchange is abandoned:
    the pool then closes :attr:`stream`.
    """

    @property
    def stream(self) -> trio.abc.Stream:
        """The transport under the protocol, closed by the connection's task."""
        ...

    async def send_request(
        self,
        head: RequestHead,
        body: AsyncIterable[bytes] | None,
        read_timeout: float | None,
        *,
        watch_for_answer: bool = False,
    ) -> ResponseHead | None:
        """Start an exchange: send the head and the body.

        Returns a response head only when the server answered before the
        body was through (an early answer); None otherwise. With
        ``watch_for_answer`` (large or streamed bodies), the engine listens
        for such an answer while it sends.
        """
        ...

    async def receive_response(self) -> ResponseHead:
        """The final response head (interim 1xx responses skipped)."""
        ...

    async def receive_data(self) -> bytes:
        """The next piece of the body as it arrived; ``b""`` at its end."""
        ...

    @property
    def trailers(self) -> HTTPHeaderDict | None:
        """Trailer fields sent after the body (once it has ended), if any."""
        ...

    def finish_cycle(self) -> bool:
        """After the body's end: True if the connection may be reused."""
        ...
