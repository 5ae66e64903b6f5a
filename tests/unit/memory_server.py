"""A pool whose connections are trio memory streams served by a tiny h11 server.

Unit tests use it to drive the pool without sockets, under trio's MockClock.
The handler decides each response; it may also sleep (stall), raise
``CloseConnection`` (drop the connection without answering), or write raw
bytes through ``Exchange.stream``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import h11
import trio
import trio.testing

from trio_pool import HTTPConnectionPool


class CloseConnection(Exception):
    """Raised by a handler: close the connection without answering."""


@dataclass
class Exchange:
    """One request as the memory server saw it."""

    request: h11.Request
    body: bytes
    stream: trio.abc.Stream
    connection_number: int


@dataclass
class Reply:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


Handler = Callable[[Exchange], Awaitable[Reply]]


async def ok(exchange: Exchange) -> Reply:
    return Reply(body=b"hello")


async def serve(stream: trio.abc.Stream, handler: Handler, number: int) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            request: h11.Request | None = None
            body = b""
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await stream.receive_some(65536)
                    conn.receive_data(bytes(data))
                    continue
                if isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    body += bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    break
                else:
                    return
            assert request is not None
            try:
                reply = await handler(Exchange(request, body, stream, number))
            except CloseConnection:
                return
            headers = list(reply.headers)
            if not any(
                k.lower() in ("content-length", "transfer-encoding") for k, _ in headers
            ):
                headers.append(("Content-Length", str(len(reply.body))))
            out = [conn.send(h11.Response(status_code=reply.status, headers=headers))]
            if reply.body:
                out.append(conn.send(h11.Data(data=reply.body)))
            out.append(conn.send(h11.EndOfMessage()))
            await stream.send_all(b"".join(x for x in out if x))
            if conn.our_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
    except (
        trio.BrokenResourceError,
        trio.ClosedResourceError,
        h11.RemoteProtocolError,
    ):
        return
    finally:
        await trio.aclose_forcefully(stream)


class MemoryPool(HTTPConnectionPool):
    """An HTTPConnectionPool whose transport is a memory stream pair."""

    def __init__(
        self,
        server_nursery: trio.Nursery,
        handler: Handler = ok,
        *,
        lockstep: bool = False,
        **kw: object,
    ) -> None:
        super().__init__("example.test", dial=self._dial, **kw)  # type: ignore[arg-type]
        self.server_nursery = server_nursery
        self.handler = handler
        self.lockstep = lockstep
        self.opened = 0
        self.server_streams: list[trio.abc.Stream] = []

    async def _dial(self, host: str, port: int) -> trio.abc.Stream:
        await trio.lowlevel.checkpoint()
        pair = (
            trio.testing.lockstep_stream_pair
            if self.lockstep
            else trio.testing.memory_stream_pair
        )
        client, server = pair()
        self.opened += 1
        self.server_streams.append(server)
        self.server_nursery.start_soon(serve, server, self.handler, self.opened)
        return client
