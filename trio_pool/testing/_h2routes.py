"""The built-in routes of the HTTP/2 test server, fault routes included.

The well-behaved routes are the HTTP/1.1 server's (``_routes.py``), served
over h2; the fault routes are HTTP/2's own. They are documented for users in
the package docstring and in ``docs/testing.md``; keep them in step.
"""

from __future__ import annotations

import trio
from h2.errors import ErrorCodes
from h2.settings import SettingCodes

from ._connection import BadRequest
from ._h2connection import H2Route, H2Stream, h2_plain
from ._h2faults import continuation_flood, error_code, push_promise_frame
from ._messages import Request, Response, pattern
from ._routes import (
    _bytes,
    _echo,
    _encoded,
    _float_param,
    _headers,
    _huge_header,
    _int,
    _int_param,
    _length_and_sent,
    _redirect,
    _redirect_loop,
    _status_route,
    _tail,
)

__all__ = ["H2BuiltinRoutes"]

_OCTETS = ("content-type", "application/octet-stream")
_GARBAGE = b"\x00\x00\x10\x00\x00\x00\x00\x00\x00" + b"not HTTP/2 data!"


def _code_param(request: Request, default: str) -> int:
    try:
        return error_code(request.param("code") or default)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


# -- well-behaved routes that HTTP/1.1 does not have -------------------------------


async def _echo_body(request: Request, stream: H2Stream) -> None:
    """Stream the request body back as it arrives (full duplex)."""
    stream.send_headers(200, [_OCTETS])
    while data := await stream.receive_some():
        await stream.send_data(data)
    stream.end()


async def _trailers(request: Request, stream: H2Stream) -> None:
    stream.send_headers(200, [("content-type", "text/plain")])
    await stream.send_data(b"ok")
    pairs = [(k, v) for k, values in request.query.items() for v in values]
    stream.send_trailers(pairs or [("x-trailer", "yes")])


async def _delay(request: Request, stream: H2Stream) -> None:
    try:
        seconds = float(_tail(request))
    except ValueError:
        raise BadRequest("delay must be a number") from None
    await trio.sleep(seconds)
    await stream.send_response(await _echo(request))


# -- stalls and drips -------------------------------------------------------------


async def _stall(request: Request, stream: H2Stream) -> None:
    await trio.sleep_forever()


async def _start_body(stream: H2Stream, n: int, sent: int) -> None:
    stream.send_headers(200, [_OCTETS, ("content-length", str(n))])
    if sent:
        await stream.send_data(pattern(sent))


async def _stall_body(request: Request, stream: H2Stream) -> None:
    await _start_body(stream, *_length_and_sent(request))
    await trio.sleep_forever()


async def _drip(request: Request, stream: H2Stream) -> None:
    n = _int_param(request, "n", 10)
    delay = _float_param(request, "delay", 0.05)
    stream.send_headers(200, [_OCTETS, ("content-length", str(n))])
    for offset in range(n):
        await trio.sleep(delay)
        await stream.send_data(pattern(1, offset), end_stream=offset == n - 1)
    if n == 0:
        stream.end()


# -- resets -----------------------------------------------------------------------


async def _reset(request: Request, stream: H2Stream) -> None:
    stream.reset(_code_param(request, "INTERNAL_ERROR"))


async def _refuse(request: Request, stream: H2Stream) -> None:
    stream.reset(ErrorCodes.REFUSED_STREAM)


async def _reset_mid_body(request: Request, stream: H2Stream) -> None:
    await _start_body(stream, *_length_and_sent(request))
    stream.reset(_code_param(request, "INTERNAL_ERROR"))


# -- connection-level faults --------------------------------------------------------


async def _goaway(request: Request, stream: H2Stream) -> None:
    conn = stream.connection
    wanted = _int_param(request, "wait_streams", 1, low=1)
    await conn.wait_for(lambda: conn.h2.open_inbound_streams >= wanted)
    last = _int_param(request, "last", stream.stream_id)
    debug = (request.param("debug") or "").encode()
    code = _code_param(request, "NO_ERROR")
    conn.send_goaway(code, last, debug)
    if code == ErrorCodes.NO_ERROR:
        await stream.send_response(await _echo(request))


async def _close_mid_body(request: Request, stream: H2Stream) -> None:
    how = request.param("how", "close")
    if how not in ("close", "reset"):
        raise BadRequest("how must be close or reset")
    await _start_body(stream, *_length_and_sent(request))
    stream.connection.close(how)
    await trio.sleep_forever()


async def _garbage(request: Request, stream: H2Stream) -> None:
    # A frame header announcing 16 bytes of DATA on stream 0, which no HTTP/2
    # peer may accept, so the client notices at once (h2 would wait for the
    # whole announced length of a frame with a random header).
    stream.connection.send_raw(_GARBAGE)
    stream.connection.close()
    await trio.sleep_forever()


async def _ping(request: Request, stream: H2Stream) -> None:
    conn = stream.connection
    count = _int_param(request, "count", 1, low=1, high=100)
    wait = _float_param(request, "wait", 5.0)
    sent = [b"ping%04d" % (len(conn.record.pings_sent) + i) for i in range(count)]
    for opaque in sent:
        conn.ping(opaque)
    with trio.move_on_after(wait):
        await conn.wait_for(lambda: all(p in conn.record.pings_acked for p in sent))
    acked = [p for p in sent if p in conn.record.pings_acked]
    await stream.send_response(Response.json({"sent": len(sent), "acked": len(acked)}))


def _settings_from_query(request: Request) -> dict[int, int]:
    settings: dict[int, int] = {}
    for name, values in request.query.items():
        code = SettingCodes.__members__.get(name.upper())
        if code is None:
            raise BadRequest(f"unknown setting {name!r}")
        settings[code] = _int(values[0], name)
    return settings


async def _settings(request: Request, stream: H2Stream) -> None:
    conn = stream.connection
    target = conn.update_settings(_settings_from_query(request))
    await conn.wait_for(lambda: conn.record.settings_acked >= target)
    await stream.send_response(Response.json({"acked": True}))


async def _shrink_window(request: Request, stream: H2Stream) -> None:
    """Lower INITIAL_WINDOW_SIZE in the middle of an upload, then echo it."""
    conn = stream.connection
    after = _int_param(request, "after", 16384)
    to = _int_param(request, "to", 1024)
    pause = _float_param(request, "pause", 0.05)
    await conn.wait_for(lambda: stream.buffered() >= after or stream.body_ended)
    target = conn.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: to})
    await conn.wait_for(lambda: conn.record.settings_acked >= target)
    await trio.sleep(pause)  # the client's window stays negative meanwhile
    body = await stream.receive_body()
    await stream.send_response(Response(200, [_OCTETS], body))


async def _push_promise(request: Request, stream: H2Stream) -> None:
    authority = stream.pseudo(b":authority") or b"localhost"
    pushed = [
        (b":method", b"GET"),
        (b":scheme", stream.pseudo(b":scheme") or b"https"),
        (b":authority", authority),
        (b":path", b"/pushed"),
    ]
    stream.connection.send_raw(push_promise_frame(stream.stream_id, 2, pushed))
    await stream.send_response(Response.text("pushed"))


async def _continuation_flood(request: Request, stream: H2Stream) -> None:
    frames = _int_param(request, "frames", 100, low=1, high=1_000_000)
    # Written raw, so h2 does not know the stream has an answer: close after.
    stream.connection.send_raw(continuation_flood(stream.stream_id, 200, frames))
    stream.connection.close()
    await trio.sleep_forever()


async def _early_response(request: Request, stream: H2Stream) -> None:
    status = _int_param(request, "status", 413, low=200, high=599)
    then = request.param("then", "reset")
    if then not in ("reset", "drain"):
        raise BadRequest("then must be reset or drain")
    await stream.send_response(Response.text("answered early", status))
    if then == "drain":
        await stream.receive_body()
    # Otherwise the stream is left with the upload unfinished, and the server
    # ends it with RST_STREAM(NO_ERROR) as RFC 9113 section 8.1 suggests.


async def _not_found(request: Request) -> Response:
    return Response.text(f"no route for {request.path}", 404)


class H2BuiltinRoutes:
    """Resolves paths to the h2 server's built-in routes."""

    def __init__(self) -> None:
        self._exact: dict[str, H2Route] = {
            "/echo": H2Route(h2_plain(_echo)),
            "/echo-body": H2Route(_echo_body, read_body=False),
            "/headers": H2Route(h2_plain(_headers)),
            "/trailers": H2Route(_trailers),
            "/redirect-loop": H2Route(h2_plain(_redirect_loop)),
            "/fault/stall": H2Route(_stall, read_body=False),
            "/fault/stall-body": H2Route(_stall_body),
            "/fault/drip": H2Route(_drip),
            "/fault/reset": H2Route(_reset, read_body=False),
            "/fault/refuse": H2Route(_refuse, read_body=False),
            "/fault/reset-mid-body": H2Route(_reset_mid_body),
            "/fault/goaway": H2Route(_goaway),
            "/fault/close-mid-body": H2Route(_close_mid_body),
            "/fault/garbage": H2Route(_garbage),
            "/fault/ping": H2Route(_ping),
            "/fault/settings": H2Route(_settings),
            "/fault/shrink-window": H2Route(_shrink_window, read_body=False),
            "/fault/push-promise": H2Route(_push_promise),
            "/fault/huge-header": H2Route(h2_plain(_huge_header)),
            "/fault/continuation-flood": H2Route(_continuation_flood),
            "/fault/early-response": H2Route(_early_response, read_body=False),
        }
        self._prefixed: dict[str, H2Route] = {
            "bytes": H2Route(h2_plain(_bytes)),
            "status": H2Route(h2_plain(_status_route)),
            "redirect": H2Route(h2_plain(_redirect)),
            "encoded": H2Route(h2_plain(_encoded)),
            "delay": H2Route(_delay),
        }
        self._not_found = H2Route(h2_plain(_not_found))

    def resolve(self, path: str) -> H2Route:
        """Return the built-in route for ``path`` (a 404 route if none)."""
        route = self._exact.get(path)
        if route is not None:
            return route
        parts = path.split("/", 2)
        if len(parts) == 3 and parts[0] == "" and parts[2]:
            route = self._prefixed.get(parts[1])
        return route if route is not None else self._not_found
