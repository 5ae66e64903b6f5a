"""HTTPResponse: the response head, and its body read from a leased connection.

A response that is still streaming holds a *lease*: the connection and the
pool's limiter token. The lease is given back exactly once — when the body
has been read to its end (the connection is reused if h11 says it may be),
or when the response is released, closed, fails, or is cancelled mid-read
(the connection is then closed, never reused). Giving it back is
synchronous, so it happens even on the way out of a cancelled task.
"""

from __future__ import annotations

import json as _json
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Literal, Protocol

import trio

from ._decoders import ContentDecoder, get_decoder
from ._exceptions import DecodeError, HTTPError, IncompleteRead, ProtocolError
from ._headers import HTTPHeaderDict

if TYPE_CHECKING:
    from ._protocol import ProtocolConnection
    from ._retry import Retry

__all__ = ["REDIRECT_STATUSES", "HTTPResponse"]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_NO_BODY_STATUSES = frozenset({204, 304})


class Lease(Protocol):
    """What a response needs of the pool's checkout: a connection to read
    from, and a way to give it back (exactly once)."""

    @property
    def http(self) -> ProtocolConnection: ...

    def release(self, reuse: bool) -> None: ...


class HTTPResponse:
    """A response from the server: status, headers, and the body.

    Created by the pools; users get one from ``urlopen()``/``request()``. With
    ``preload_content=True`` (the default) the body has been read and is in
    :attr:`data`. Otherwise read it with :meth:`read`, :meth:`stream` or
    ``async for``, and release the connection (reading to the end does that;
    so does leaving ``async with response:``).
    """

    def __init__(
        self,
        *,
        status: int,
        reason: str = "",
        version: int = 11,
        headers: HTTPHeaderDict | None = None,
        body: bytes | None = None,
        lease: Lease | None = None,
        request_method: str = "GET",
        request_url: str | None = None,
        decode_content: bool = True,
        retries: Retry | None = None,
        enforce_content_length: bool = True,
    ) -> None:
        self.status = status
        self.reason = reason
        self.version = version
        self.headers = headers if headers is not None else HTTPHeaderDict()
        self.url = request_url
        self.retries = retries
        self.decode_content = decode_content
        self._request_method = request_method
        self._body = body
        self._lease = lease
        self._buffer = _ChunkBuffer()
        self._raw_read = 0
        self._decoder: ContentDecoder | None = None
        self._decoder_made = False
        self._flushed = False
        self._closed = False
        self._failed = False
        # A short body's IncompleteRead, held while the bytes before it are
        # returned; the next read raises it.
        self._held_error: IncompleteRead | None = None
        self._returned_any = False
        self._enforce_length = enforce_content_length
        #: Trailer fields the server sent after the body (chunked HTTP/1.1,
        #: or HTTP/2), available once the body has been read to its end.
        self.trailers: HTTPHeaderDict | None = None
        # The body's framing, read from the headers when first asked.
        self._framing: tuple[bool, int | None] | None = None

    def __repr__(self) -> str:
        return f"<HTTPResponse [{self.status}] {self.url}>"

    # -- head ----------------------------------------------------------------

    @property
    def version_string(self) -> str:
        """The protocol as the status line names it, e.g. ``HTTP/1.1``."""
        version = self.version
        return "HTTP/2" if version == 20 else f"HTTP/{version // 10}.{version % 10}"

    @property
    def _chunked(self) -> bool:
        return self._body_framing()[0]

    @property
    def _expected(self) -> int | None:
        return self._body_framing()[1]

    def _body_framing(self) -> tuple[bool, int | None]:
        """Whether the body is chunked, and its length (None if unknown)."""
        if self._framing is None:
            coding = self.headers.get("Transfer-Encoding")
            chunked = coding is not None and "chunked" in coding.lower()
            self._framing = chunked, self._expected_length(chunked)
        return self._framing

    def _expected_length(self, chunked: bool) -> int | None:
        if (
            self._request_method == "HEAD"
            or self.status in _NO_BODY_STATUSES
            or 100 <= self.status < 200
        ):
            return 0
        value = self.headers.get("Content-Length")
        if value is None or chunked:
            return None
        try:
            return int(value.split(",")[0])
        except ValueError:
            return None

    def get_redirect_location(self) -> str | Literal[False] | None:
        """The Location of a redirect; False if this is not a redirect status,
        None if it is one without a Location."""
        if self.status in REDIRECT_STATUSES:
            return self.headers.get("Location")
        return False

    def geturl(self) -> str | None:
        """The URL this response came from (after redirects)."""
        return self.url

    @property
    def length_remaining(self) -> int | None:
        """Body bytes (as sent, before decoding) not read yet; None if unknown."""
        if self._expected is None:
            return None
        return max(self._expected - self._raw_read, 0)

    def tell(self) -> int:
        """Body bytes (as sent, before decoding) read so far."""
        return self._raw_read

    @property
    def closed(self) -> bool:
        """True once the body is read to its end, or the response closed."""
        return self._closed or (self._lease is None and not self._buffer)

    @property
    def data(self) -> bytes:
        """The whole body, once it has been read (preloaded or ``read()``).

        Raises:
            RuntimeError: if the body has not been read yet; this property
                cannot read from the network (use ``await response.read()``).
        """
        if self._body is not None:
            return self._body
        raise RuntimeError(
            "The response body has not been read: pass preload_content=True, "
            "or call `await response.read()` first"
        )

    def json(self) -> Any:
        """The body (already read) parsed as UTF-8 JSON."""
        return _json.loads(self.data.decode("utf-8"))

    # -- reading -------------------------------------------------------------

    async def read(
        self, amt: int | None = None, decode_content: bool | None = None
    ) -> bytes:
        """Read up to ``amt`` bytes of the (decoded) body; all of it if None.

        Returns fewer than ``amt`` bytes only at the end of the body, or
        when the body ends short of its Content-Length: then the bytes that
        did arrive come first and the next read raises ``IncompleteRead``
        (as in urllib3); ``b""`` once the body is exhausted. A decoder never
        inflates more than the bytes asked for. Reading the whole body makes
        it available as :attr:`data` too.

        If cancelled (or if the read fails), the connection is closed and
        given back to the pool; reading again raises.

        Raises:
            ProtocolError: the connection broke, or the body was malformed.
            IncompleteRead: the body ended before its Content-Length.
            ReadTimeoutError: the server was silent for ``Timeout.read``.
            DecodeError: the body does not decode with its Content-Encoding.
        """
        self._check_open()
        decode = self.decode_content if decode_content is None else decode_content
        if amt is None or amt < 0:
            data = await self._read_all(decode)
            if not self._returned_any and self._body is None:
                self._body = data
        else:
            data = await self._read_some(amt, decode)
        self._returned_any = self._returned_any or bool(data)
        return data

    async def _read_all(self, decode: bool) -> bytes:
        buffer = self._buffer
        parts = [buffer.take(buffer.size)] if buffer.size else []
        decoder = self._get_decoder() if decode else None
        while raw := await self._read_raw():
            if decoder is not None:
                raw = self._guard(decoder.decompress, raw, -1)
            parts.append(raw)
        if decoder is not None:
            parts.append(self._flush(decode))
        # A body that came in one piece is returned without a copy.
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def _read_some(self, amt: int, decode: bool) -> bytes:
        buffer = self._buffer
        while buffer.size < amt:
            room = amt - buffer.size
            decoder = self._get_decoder() if decode else None
            if decoder is not None and not decoder.needs_input:
                buffer.append(self._guard(decoder.decompress, b"", room))
                continue
            try:
                raw = await self._read_raw()
            except IncompleteRead as exc:
                if not buffer.size:
                    raise
                self._held_error = exc
                break
            if not raw:
                buffer.append(self._flush(decode))
                break
            buffer.append(self._decode(raw, decode, room))
        return buffer.take(amt)

    async def _read_raw(self) -> bytes:
        """The next raw body piece; ``b""`` at the end, after releasing."""
        lease = self._lease
        if lease is None:
            return b""
        try:
            data = await lease.http.receive_data()
        except IncompleteRead:
            if self._enforce_length:
                self._failed = True
                self._give_back(reuse=False)
                raise
            # enforce_content_length=False: a short body just ends early.
            self._give_back(reuse=False)
            return b""
        except BaseException:
            self._failed = True
            self._give_back(reuse=False)
            raise
        if data:
            self._raw_read += len(data)
        else:
            self.trailers = lease.http.trailers
            self._give_back(reuse=lease.http.finish_cycle())
        return data

    def _get_decoder(self) -> ContentDecoder | None:
        if not self._decoder_made:
            self._decoder_made = True
            coding = self.headers.get("Content-Encoding", "")
            self._decoder = get_decoder(coding) if coding else None
        return self._decoder

    def _decode(self, raw: bytes, decode: bool, room: int) -> bytes:
        decoder = self._get_decoder() if decode else None
        if decoder is None:
            return raw
        return self._guard(decoder.decompress, raw, room)

    def _flush(self, decode: bool) -> bytes:
        decoder = self._get_decoder() if decode else None
        if decoder is None or self._flushed:
            return b""
        self._flushed = True
        return self._guard(decoder.flush)

    def _guard(self, fn: Any, *args: Any) -> bytes:
        try:
            result: bytes = fn(*args)
        except DecodeError:
            self._failed = True
            self._give_back(reuse=False)
            raise
        return result

    async def _read_piece(self, amt: int, decode: bool) -> bytes:
        """Up to ``amt`` bytes of what has arrived; waits only while none has.

        How a chunked body streams (as in urllib3): each piece is yielded as
        it comes, never held back to fill ``amt``.
        """
        self._check_open()
        buffer = self._buffer
        while not buffer:
            decoder = self._get_decoder() if decode else None
            if decoder is not None and not decoder.needs_input:
                buffer.append(self._guard(decoder.decompress, b"", amt))
                continue
            raw = await self._read_raw()
            if not raw:
                buffer.append(self._flush(decode))
                break
            buffer.append(self._decode(raw, decode, amt))
        data = buffer.take(amt)
        self._returned_any = self._returned_any or bool(data)
        return data

    def stream(
        self, amt: int = 2**16, decode_content: bool | None = None
    ) -> AsyncIterator[bytes]:
        """Iterate over the body in pieces of at most ``amt`` bytes.

        A chunked body is yielded piece by piece as it arrives (split to at
        most ``amt``), as urllib3 does, so server-sent events and log tails
        arrive at once; any other body in pieces of ``amt`` (the last one
        shorter), like :meth:`read`. Cancelling the iteration behaves like
        cancelling :meth:`read`.
        """
        return _BodyIterator(self, amt, decode_content)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.stream()

    # -- giving the connection back ------------------------------------------

    def _give_back(self, reuse: bool) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            lease.release(reuse)

    def _check_open(self) -> None:
        if self._closed:
            raise HTTPError("The response is closed; its body can no longer be read")
        held, self._held_error = self._held_error, None
        if held is not None:
            raise held
        if self._failed:
            # Returning b"" here would make a cut-off body look complete.
            raise ProtocolError(
                "An earlier read of this response failed or was cancelled; "
                "the rest of the body is lost"
            )

    async def release_conn(self) -> None:
        """Give the connection back to the pool now.

        A connection whose body was not read to the end cannot carry another
        request, so it is closed rather than reused (use :meth:`drain_conn`
        to keep it). Never raises for I/O; a checkpoint.
        """
        self._give_back(reuse=False)
        await trio.lowlevel.checkpoint()

    async def drain_conn(self) -> None:
        """Read and discard the rest of the body, so the connection is reused.

        Errors while draining are not raised: the connection is closed
        instead. If cancelled, the connection is closed.
        """
        try:
            while await self._read_raw():
                pass
        except HTTPError:
            pass
        self._buffer.clear()

    async def aclose(self) -> None:
        """Close the response; its connection is closed, not reused."""
        self._closed = True
        self._buffer.clear()
        self._give_back(reuse=False)
        await trio.lowlevel.checkpoint()

    async def __aenter__(self) -> HTTPResponse:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.release_conn()


class _ChunkBuffer:
    """Decoded bytes not yet returned by ``read(amt)``, kept as the chunks
    they arrived in: a read that asks for what one chunk holds gets that
    chunk without a copy, and any read copies its bytes at most once."""

    __slots__ = ("_chunks", "_offset", "size")

    def __init__(self) -> None:
        self._chunks: deque[bytes] = deque()
        self._offset = 0  # bytes of _chunks[0] already taken
        self.size = 0

    def __bool__(self) -> bool:
        return self.size > 0

    def append(self, data: bytes) -> None:
        if data:
            self._chunks.append(data)
            self.size += len(data)

    def take(self, amt: int) -> bytes:
        """Up to ``amt`` bytes from the front."""
        chunks = self._chunks
        parts: list[bytes] = []
        need = min(amt, self.size)
        while need:
            first, start = chunks[0], self._offset
            available = len(first) - start
            if available <= need:
                parts.append(first[start:] if start else first)
                chunks.popleft()
                self._offset = 0
                need -= available
            else:
                parts.append(first[start : start + need])
                self._offset = start + need
                need = 0
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self.size -= len(data)
        return data

    def clear(self) -> None:
        self._chunks.clear()
        self._offset = 0
        self.size = 0


class _BodyIterator:
    """``response.stream()``: a plain async iterator, not an async generator,
    so abandoning it mid-way needs no finalizer."""

    __slots__ = ("_amt", "_decode", "_response")

    def __init__(self, response: HTTPResponse, amt: int, decode: bool | None) -> None:
        if amt <= 0:
            raise ValueError("stream(amt) needs amt > 0")
        self._response = response
        self._amt = amt
        self._decode = decode

    def __aiter__(self) -> _BodyIterator:
        return self

    async def __anext__(self) -> bytes:
        response = self._response
        if response._chunked:
            decode = response.decode_content if self._decode is None else self._decode
            chunk = await response._read_piece(self._amt, decode)
        else:
            chunk = await response.read(self._amt, self._decode)
        if not chunk:
            raise StopAsyncIteration
        return chunk
