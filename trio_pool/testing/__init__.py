"""A local HTTP/1.1 test server on trio and h11, with fault injection.

Use it from async tests (pytest-trio)::

    from trio_pool.testing import Response, open_server

    async def test_something():
        async with open_server() as server:
            @server.route("/hello")
            async def hello(request):
                return Response.text("hi")

            ...  # make requests to server.url + "/hello"
            assert server.requests[-1].method == "GET"

Every response carries ``X-Connection-Id`` (the connection's number, from 1)
and ``X-Request-Number`` (the request's 1-based position on its connection), so
a client test can see whether connections were reused. Responses to ``HEAD``
never carry a body (but keep the headers, Content-Length included), nor do 204
and 304 responses. An exception in a handler is recorded in ``server.errors``
and answered with ``500`` (the connection stays usable); a parameter that does
not parse is answered with ``400``; an unknown path with ``404``.

Routes
------

Paths match exactly, without the query string; routes added with
``server.route()``/``server.add_route()`` take precedence over these. Query
parameters are optional unless stated. ``pattern(n)`` is :func:`pattern`: the
bytes ``0..255`` repeated.

``/echo``
    Any method. ``200`` with a JSON object: ``method``, ``target``, ``path``,
    ``query`` (``{name: [values]}``), ``headers`` (``[[name, value], ...]`` in
    wire order), ``body`` (decoded as Latin-1), ``connection_id``,
    ``request_number``, ``http_version``.
``/bytes/<n>``
    ``pattern(n)`` with ``Content-Length``, streamed without building it in
    memory. ``?chunked=1`` sends it with chunked encoding, in chunks of
    ``?chunk_size=`` bytes (default 65536).
``/status/<code>``
    That status (200-599). ``?retry_after=V`` adds ``Retry-After: V``;
    ``?body=text`` sets the body (default empty).
``/redirect/<code>``
    A 3xx status with ``Location: ?to=`` (default ``/echo``).
``/redirect-loop``
    ``302`` with ``Location: /redirect-loop``.
``/encoded/<codings>``
    ``pattern(?n=)`` (default 1024 bytes) compressed by each comma-separated
    coding in turn (``gzip``, ``deflate`` = zlib, ``deflate-raw`` = raw
    deflate labelled ``deflate``, ``br``, ``zstd``) with the matching
    ``Content-Encoding`` list, e.g. ``/encoded/gzip,br`` gives
    ``Content-Encoding: gzip, br``.
``/headers?Name=value&...``
    ``200``, body ``ok``, with each query pair as a response header, in order.
``/fail/<n>?key=K&mode=M``
    The first ``n`` requests with key ``K`` (default: empty) fail, then the
    route answers like ``/echo``. Modes: ``reset`` (default; TCP reset before
    any response byte), ``close`` (clean close without a response), ``503``
    (status 503, with ``Retry-After`` from ``?retry_after=`` if given). The
    counters are in ``server.fail_counts`` and live as long as the server.

Fault routes. Where a body is promised, ``?n=`` is the Content-Length (default
1024) and ``?sent=`` how much of ``pattern(n)`` is actually sent (default
``n // 2``):

``/fault/stall``
    Reads the request, never answers; holds the connection until the client
    closes it or the server stops.
``/fault/stall-body``
    Headers, ``sent`` bytes of the body, then stalls like ``/fault/stall``.
``/fault/drip?n=&delay=``
    Headers at once, then the ``n`` (default 10) body bytes one at a time,
    each after a ``delay`` (default 0.05 s).
``/fault/close-mid-body``, ``/fault/wrong-length``
    ``sent`` bytes of the body, then a clean close (FIN; TLS close_notify).
``/fault/reset``
    A TCP reset (RST), without a single response byte.
``/fault/reset-mid-body``
    ``sent`` bytes of the body, then a TCP reset.
``/fault/malformed-status``
    ``HTTP/1.1 abc Nope`` and an empty line, then a close.
``/fault/bad-chunk``
    A chunked response whose second chunk-size line (``zz``) is not hex, then
    a close.
``/fault/truncated-chunked``
    A chunked body that stops (clean close) before the final zero chunk.
``/fault/huge-header?size=``
    A response header ``X-Huge`` with a value of ``size`` bytes (default
    128 KiB).
``/fault/early-response?status=``
    Answers at once (default ``413``) with ``Connection: close``, without
    reading the request body; then half-closes (plain TCP), reads and drops
    whatever the client still sends for up to 1 s or until it closes, and
    closes. A client uploading a body sees the response, not a reset.
``/fault/garbage-after-body``
    A complete ``200 ok`` response followed by stray bytes; the connection
    stays open.
``/fault/close-after-response``
    A normal response with ``Connection: close``, then a clean close.

Custom fault routes
-------------------

A *raw* route gets the connection itself (a :class:`RawConnection`) and answers
on its own; the server closes the connection afterwards unless the exchange
was completed as valid keep-alive HTTP::

    @server.raw_route("/half-then-reset")
    async def half_then_reset(request, conn):
        await conn.start_response(200, [("Content-Length", "100")])
        await conn.send(b"x" * 50)
        await conn.reset()

Pass ``read_body=False`` to get control before the request body is read.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._connection import BadRequest, Handler, RawConnection, RawHandler
from ._messages import Request, Response, pattern
from ._server import Server, open_server

if TYPE_CHECKING:
    from ._h2connection import H2RawHandler, H2ServerConnection, H2Stream
    from ._h2faults import H2Faults
    from ._h2record import H2ConnectionRecord, H2GoAway
    from ._h2server import H2Server, open_h2_server

# The HTTP/2 server needs h2 (the optional ``http2`` extra): imported on first use.
_H2_NAMES = {
    "H2ConnectionRecord": "._h2record",
    "H2Faults": "._h2faults",
    "H2GoAway": "._h2record",
    "H2RawHandler": "._h2connection",
    "H2Server": "._h2server",
    "H2ServerConnection": "._h2connection",
    "H2Stream": "._h2connection",
    "open_h2_server": "._h2server",
}


def __getattr__(name: str) -> object:
    module = _H2_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)


__all__ = [
    "BadRequest",
    "H2ConnectionRecord",
    "H2Faults",
    "H2GoAway",
    "H2RawHandler",
    "H2Server",
    "H2ServerConnection",
    "H2Stream",
    "Handler",
    "RawConnection",
    "RawHandler",
    "Request",
    "Response",
    "Server",
    "open_h2_server",
    "open_server",
    "pattern",
]
