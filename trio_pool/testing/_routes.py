"""The built-in routes, including the fault routes.

Their behaviour is documented for users in the package docstring
(``trio_pool/testing/__init__.py``); keep the two in step.
"""

from __future__ import annotations

import gzip
import importlib
import zlib
from collections.abc import Callable, Iterator
from urllib.parse import parse_qsl, unquote

import h11
import trio

from ._connection import BadRequest, RawConnection, Route, plain
from ._messages import PATTERN_BLOCK, Request, Response, pattern

__all__ = ["BuiltinRoutes"]

_OCTETS = ("Content-Type", "application/octet-stream")


# -- parameters -----------------------------------------------------------------


def _int(text: str, what: str, low: int = 0, high: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"{what} must be an integer, not {text!r}") from None
    if value < low or (high is not None and value > high):
        raise BadRequest(f"{what} out of range: {value}")
    return value


def _int_param(
    request: Request, name: str, default: int, low: int = 0, high: int | None = None
) -> int:
    text = request.param(name)
    return default if text is None else _int(text, name, low, high)


def _float_param(request: Request, name: str, default: float) -> float:
    text = request.param(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise BadRequest(f"{name} must be a number, not {text!r}") from None
    if not value >= 0:  # also rejects NaN
        raise BadRequest(f"{name} must not be negative")
    return value


def _tail(request: Request) -> str:
    """The path segment after the route's prefix, percent-decoded."""
    return unquote(request.path.split("/", 2)[2])


def _status(text: str) -> int:
    return _int(text, "status", 200, 599)


def _length_and_sent(request: Request) -> tuple[int, int]:
    n = _int_param(request, "n", 1024)
    sent = _int_param(request, "sent", n // 2, high=n)
    return n, sent


def _pattern_pieces(n: int, size: int) -> Iterator[bytes]:
    """``pattern(n)`` in pieces of ``size`` bytes (the last may be shorter)."""
    if size == len(PATTERN_BLOCK):
        whole, rest = divmod(n, size)
        for _ in range(whole):
            yield PATTERN_BLOCK  # the same object every time: no copying
        if rest:
            yield PATTERN_BLOCK[:rest]
        return
    for offset in range(0, n, size):
        yield pattern(min(size, n - offset), offset)


# -- content codings --------------------------------------------------------------


def _deflate_raw(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def _brotli(data: bytes) -> bytes:
    return bytes(importlib.import_module("brotli").compress(data))


def _zstd(data: bytes) -> bytes:
    try:
        compressor = importlib.import_module("zstandard").ZstdCompressor()
    except ImportError:  # pragma: no cover - Python 3.14's own module instead
        compressor = importlib.import_module("compression.zstd")
    return bytes(compressor.compress(data))


# name in the URL -> (name in Content-Encoding, encoder)
_CODINGS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "gzip": ("gzip", lambda data: gzip.compress(data, mtime=0)),
    "deflate": ("deflate", zlib.compress),
    "deflate-raw": ("deflate", _deflate_raw),
    "br": ("br", _brotli),
    "zstd": ("zstd", _zstd),
}


# -- ordinary routes --------------------------------------------------------------


async def _echo(request: Request) -> Response:
    return Response.json(request.to_json())


async def _bytes(request: Request) -> Response:
    n = _int(_tail(request), "length")
    if request.param("chunked", "0") not in ("0", "", "false", "no"):
        size = _int_param(request, "chunk_size", 65536, low=1)
        return Response(200, [_OCTETS], chunks=_pattern_pieces(n, size))
    headers = [_OCTETS, ("Content-Length", str(n))]
    return Response(200, headers, chunks=_pattern_pieces(n, len(PATTERN_BLOCK)))


async def _status_route(request: Request) -> Response:
    status = _status(_tail(request))
    headers = []
    retry_after = request.param("retry_after")
    if retry_after is not None:
        headers.append(("Retry-After", retry_after))
    body = request.param("body", "")
    assert body is not None
    return Response(status, headers, body.encode())


async def _redirect(request: Request) -> Response:
    status = _int(_tail(request), "redirect status", 300, 399)
    location = request.param("to", "/echo")
    assert location is not None
    return Response.text(f"redirecting to {location}", status, [("Location", location)])


async def _redirect_loop(request: Request) -> Response:
    return Response.text("round and round", 302, [("Location", "/redirect-loop")])


async def _encoded(request: Request) -> Response:
    names = [name.strip() for name in _tail(request).split(",") if name.strip()]
    if not names:
        raise BadRequest("no content codings given")
    body = pattern(_int_param(request, "n", 1024))
    labels = []
    for name in names:
        if name not in _CODINGS:
            raise BadRequest(f"unknown content coding {name!r}")
        label, encode = _CODINGS[name]
        body = encode(body)
        labels.append(label)
    headers = [_OCTETS, ("Content-Encoding", ", ".join(labels))]
    return Response(200, headers, body)


async def _headers(request: Request) -> Response:
    query = request.target.partition("?")[2]
    return Response(200, parse_qsl(query, keep_blank_values=True), b"ok")


async def _huge_header(request: Request) -> Response:
    size = _int_param(request, "size", 128 * 1024)
    return Response(200, [("X-Huge", "h" * size)], b"ok")


async def _close_after_response(request: Request) -> Response:
    return Response.text("closing now", headers=[("Connection", "close")])


async def _not_found(request: Request) -> Response:
    return Response.text(f"no route for {request.path}", 404)


# -- raw (fault) routes -----------------------------------------------------------


async def _stall(request: Request, conn: RawConnection) -> None:
    await conn.discard_input()


async def _start_body(conn: RawConnection, n: int, sent: int) -> None:
    """Send headers promising ``n`` bytes, then the first ``sent`` of them."""
    await conn.start_response(200, [_OCTETS, ("Content-Length", str(n))])
    if sent:
        await conn.send_events(h11.Data(data=pattern(sent)))


async def _stall_body(request: Request, conn: RawConnection) -> None:
    await _start_body(conn, *_length_and_sent(request))
    await conn.discard_input()


async def _close_mid_body(request: Request, conn: RawConnection) -> None:
    await _start_body(conn, *_length_and_sent(request))
    await conn.close()


async def _reset_mid_body(request: Request, conn: RawConnection) -> None:
    await _start_body(conn, *_length_and_sent(request))
    await conn.reset()


async def _reset(request: Request, conn: RawConnection) -> None:
    await conn.reset()


async def _drip(request: Request, conn: RawConnection) -> None:
    n = _int_param(request, "n", 10)
    delay = _float_param(request, "delay", 0.05)
    # ``chunked=1``: no Content-Length, so each byte goes out as a chunk.
    chunked = request.param("chunked") == "1"
    framing = [] if chunked else [("Content-Length", str(n))]
    await conn.start_response(200, [_OCTETS, *framing])
    for offset in range(n):
        await trio.sleep(delay)
        end = [h11.EndOfMessage()] if offset == n - 1 else []
        await conn.send_events(h11.Data(data=pattern(1, offset)), *end)
    if n == 0:
        await conn.send_events(h11.EndOfMessage())


async def _malformed_status(request: Request, conn: RawConnection) -> None:
    await conn.send(b"HTTP/1.1 abc Nope\r\n\r\n")
    await conn.close()


async def _bad_chunk(request: Request, conn: RawConnection) -> None:
    await conn.start_response(200, [("Transfer-Encoding", "chunked")])
    await conn.send(b"5\r\nhello\r\nzz\r\nworld\r\n")
    await conn.close()


async def _truncated_chunked(request: Request, conn: RawConnection) -> None:
    await conn.start_response(200, [("Transfer-Encoding", "chunked")])
    await conn.send_events(h11.Data(data=b"this body "), h11.Data(data=b"never ends"))
    await conn.close()


async def _garbage_after_body(request: Request, conn: RawConnection) -> None:
    await conn.send_response(Response.text("ok"))
    await conn.send(b"GARBAGE after the response\r\n")


async def _early_response(request: Request, conn: RawConnection) -> None:
    status = _status(request.param("status") or "413")
    response = Response.text("answered early", status, [("Connection", "close")])
    await conn.send_response(response)
    await conn.send_eof()
    # Lingering close: a client still uploading gets to read the response
    # instead of a reset caused by closing with its body unread.
    with trio.move_on_after(1.0):
        await conn.discard_input()
    await conn.close()


class BuiltinRoutes:
    """Resolves paths to the built-in routes; holds the ``/fail`` counters.

    Attributes:
        fail_counts: Requests seen so far per ``/fail`` key.
    """

    def __init__(self) -> None:
        self.fail_counts: dict[str, int] = {}
        self._exact: dict[str, Route] = {
            "/echo": Route(plain(_echo)),
            "/headers": Route(plain(_headers)),
            "/redirect-loop": Route(plain(_redirect_loop)),
            "/fault/stall": Route(_stall),
            "/fault/stall-body": Route(_stall_body),
            "/fault/drip": Route(_drip),
            "/fault/close-mid-body": Route(_close_mid_body),
            "/fault/wrong-length": Route(_close_mid_body),
            "/fault/reset": Route(_reset),
            "/fault/reset-mid-body": Route(_reset_mid_body),
            "/fault/malformed-status": Route(_malformed_status),
            "/fault/bad-chunk": Route(_bad_chunk),
            "/fault/huge-header": Route(plain(_huge_header)),
            "/fault/early-response": Route(_early_response, read_body=False),
            "/fault/garbage-after-body": Route(_garbage_after_body),
            "/fault/close-after-response": Route(plain(_close_after_response)),
            "/fault/truncated-chunked": Route(_truncated_chunked),
        }
        # Keyed by the first path segment; the handler parses the rest.
        self._prefixed: dict[str, Route] = {
            "bytes": Route(plain(_bytes)),
            "status": Route(plain(_status_route)),
            "redirect": Route(plain(_redirect)),
            "encoded": Route(plain(_encoded)),
            "fail": Route(self._fail),
        }
        self._not_found = Route(plain(_not_found))

    def resolve(self, path: str) -> Route:
        """Return the built-in route for ``path`` (a 404 route if none)."""
        route = self._exact.get(path)
        if route is not None:
            return route
        parts = path.split("/", 2)
        if len(parts) == 3 and parts[0] == "" and parts[2]:
            route = self._prefixed.get(parts[1])
        return route if route is not None else self._not_found

    async def _fail(self, request: Request, conn: RawConnection) -> None:
        failures = _int(_tail(request), "failure count")
        mode = request.param("mode", "reset")
        if mode not in ("reset", "503", "close"):
            raise BadRequest(f"unknown failure mode {mode!r}")
        key = request.param("key", "")
        assert key is not None
        seen = self.fail_counts[key] = self.fail_counts.get(key, 0) + 1
        if seen > failures:
            await conn.send_response(Response.json(request.to_json()))
        elif mode == "reset":
            await conn.reset()
        elif mode == "close":
            await conn.close()
        else:
            retry_after = request.param("retry_after")
            headers = [] if retry_after is None else [("Retry-After", retry_after)]
            await conn.send_response(Response.text("failing", 503, headers))
