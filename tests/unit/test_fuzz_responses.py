"""Fuzzing what a server sends: the client answers or fails cleanly, always.

Theory of operation
-------------------
A :class:`ScriptedPool` is an ``HTTPConnectionPool`` whose connections are trio
memory streams to a scripted fake server. A request for ``/fuzz...`` is
answered with the script's payload, byte for byte (optionally in pieces, with a
pause between them), after which the server closes the connection, stalls on
it, or keeps it and answers what comes next. Any other request gets a normal
response whose body names its own target (``ok:/check-3``), so bytes left over
from a fuzzed response cannot pass for the next response unnoticed.

Every example runs in its own ``trio.run`` under an autojump ``MockClock`` with
``Timeout(read=READ_TIMEOUT)``: a stalled server costs virtual seconds, not
real ones, and ``trio.fail_after`` (virtual) turns a hang into a failure. A
real-time watchdog (``SIGALRM``) catches what virtual time cannot: a busy loop
that never reaches a checkpoint.

Each example checks that

* the request returns a response or raises a ``trio_pool.HTTPError`` subclass,
  never anything else (the ``except HTTPError`` below is the whole contract);
* no streamed piece is longer than the ``amt`` asked for;
* afterwards the pool is settled (nothing leased, every token free, no waiter)
  and serves an ordinary request correctly.

``EXAMPLES_RUN`` counts examples; the count is printed at the end of the
module ("fuzz examples run: ..."). ``TRIO_POOL_FUZZ_SCALE`` multiplies the
number of examples (e.g. ``=20`` for a long local run) and
``TRIO_POOL_FUZZ_RANDOM=1`` explores new examples instead of the fixed,
derandomized sequence used by default.
"""

from __future__ import annotations

import contextlib
import gzip
import itertools
import math
import os
import re
import signal
import sys
import threading
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Literal, TypeVar

import brotli
import h11
import outcome
import pytest
import trio
import trio.testing
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_pool import (
    DecodeError,
    HTTPConnectionPool,
    HTTPError,
    HTTPHeaderDict,
    HTTPResponse,
    IncompleteRead,
    ProtocolError,
    ReadTimeoutError,
    Retry,
    Timeout,
)
from trio_pool._connection import ConnState

T = TypeVar("T")

#: Virtual seconds the fake server may stay silent before the client gives up.
READ_TIMEOUT = 5.0
#: Virtual seconds one example may take at most (Retry-After waits included).
EXAMPLE_DEADLINE = 100_000.0
#: Real seconds one example may take before the watchdog calls it a hang.
WATCHDOG_SECONDS = 30.0
#: Virtual pause between the pieces of a payload sent in pieces.
PIECE_PAUSE = 0.01

EXAMPLES_RUN: Counter[str] = Counter()

_SCALE = float(os.environ.get("TRIO_POOL_FUZZ_SCALE", "1"))
_DERANDOMIZE = os.environ.get("TRIO_POOL_FUZZ_RANDOM", "") in ("", "0")


def fuzz_settings(examples: int) -> settings:
    """Hypothesis settings for one fuzz test: sized for a loaded 2-core CI."""
    return settings(
        max_examples=max(1, int(examples * _SCALE)),
        deadline=None,
        derandomize=_DERANDOMIZE,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.fixture(scope="module", autouse=True)
def report_examples_run(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print how many examples each fuzz test ran, once the module is done."""
    yield
    total = sum(EXAMPLES_RUN.values())
    detail = ", ".join(f"{name}={n}" for name, n in sorted(EXAMPLES_RUN.items()))
    write_to_terminal(request.config, [f"fuzz examples run: {total} ({detail})"])


def write_to_terminal(config: pytest.Config, lines: list[str]) -> None:
    """Write past pytest's output capture, so the lines show in any mode."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:  # pragma: no cover - plugins off
        print(*lines, sep="\n")
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        for line in lines:
            reporter.write_line(line)


# -- the scripted server ---------------------------------------------------------

After = Literal["close", "stall", "keep"]


@dataclass
class Script:
    """What the fake server answers to ``/fuzz``, and what it does next.

    Attributes:
        payload: the bytes sent, exactly, as the "response".
        after: ``close`` the connection, ``stall`` (read and drop whatever the
            client sends until it closes), or ``keep`` serving requests on it.
        cuts: offsets at which the payload is split into separately sent
            pieces, with a pause of ``PIECE_PAUSE`` between them.
        early: answer as soon as the request head is in, before reading the
            body (then, if kept, read the rest of it).
        served: how many times the payload was sent.
    """

    payload: bytes
    after: After = "close"
    cuts: tuple[int, ...] = ()
    early: bool = False
    served: int = 0

    def pieces(self) -> list[bytes]:
        bounds = [0, *sorted({c for c in self.cuts if 0 < c < len(self.payload)})]
        bounds.append(len(self.payload))
        return [self.payload[a:b] for a, b in itertools.pairwise(bounds)]


async def _next_request(
    stream: trio.abc.Stream, conn: h11.Connection, early: bool = False
) -> bytes | None:
    """The target of the next request, once it is complete (with ``early``,
    a ``/fuzz`` request as soon as its head is in); None when the client is
    gone."""
    target: bytes | None = None
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(bytes(await stream.receive_some(65536)))
        elif isinstance(event, h11.Request):
            target = bytes(event.target)
            if early and target.startswith(b"/fuzz"):
                return target
        elif isinstance(event, h11.EndOfMessage):
            return target
        elif not isinstance(event, h11.Data):
            return None


async def _rest_of_body(stream: trio.abc.Stream, conn: h11.Connection) -> bool:
    """Read the rest of the request body; False if the client went away."""
    while conn.their_state is h11.SEND_BODY:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(bytes(await stream.receive_some(65536)))
        elif not isinstance(event, h11.Data | h11.EndOfMessage):
            return False
    return True


def _ok(conn: h11.Connection, target: bytes) -> bytes:
    body = b"ok:" + target
    head = h11.Response(status_code=200, headers=[("Content-Length", str(len(body)))])
    out = [
        conn.send(head),
        conn.send(h11.Data(data=body)),
        conn.send(h11.EndOfMessage()),
    ]
    return b"".join(part for part in out if part)


async def _serve(stream: trio.abc.Stream, script: Script) -> None:
    try:
        conn = h11.Connection(h11.SERVER)
        while True:
            target = await _next_request(stream, conn, script.early)
            if target is None:
                return
            if not target.startswith(b"/fuzz"):
                await stream.send_all(_ok(conn, target))
                conn.start_next_cycle()
                continue
            script.served += 1
            for index, piece in enumerate(script.pieces()):
                if index:
                    await trio.sleep(PIECE_PAUSE)
                await stream.send_all(piece)
            if script.after == "close":
                return
            if script.after == "stall":
                while await stream.receive_some(65536):
                    pass
                return
            # "keep": read what is left of this request (after an early
            # answer); whatever the client sends next is a new exchange.
            if not await _rest_of_body(stream, conn):
                return
            conn = h11.Connection(h11.SERVER)
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
        return
    finally:
        await trio.aclose_forcefully(stream)


class ScriptedPool(HTTPConnectionPool):
    """A pool whose every connection is a memory stream to the scripted server."""

    def __init__(self, servers: trio.Nursery, script: Script, **kw: object) -> None:
        kw.setdefault("timeout", Timeout(read=READ_TIMEOUT))
        super().__init__("fuzz.test", dial=self._dial, **kw)  # type: ignore[arg-type]
        self.script = script
        self.opened = 0
        self.checks = 0
        self._servers = servers

    async def _dial(self, host: str, port: int) -> trio.abc.Stream:
        await trio.lowlevel.checkpoint()
        client, server = trio.testing.memory_stream_pair()
        self.opened += 1
        self._servers.start_soon(_serve, server, self.script)
        return client


# -- the client side -------------------------------------------------------------

Read = Literal["preload", "read-all", "stream", "read-amt", "partial"]
READS: tuple[Read, ...] = ("preload", "read-all", "stream", "read-amt", "partial")


@dataclass
class Outcome:
    """How one request ended: a response (status, body read) or an error."""

    status: int | None = None
    data: bytes | None = None
    error: HTTPError | None = None
    pieces: list[int] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.error is not None

    def describe(self) -> str:
        if self.error is not None:
            return f"{type(self.error).__name__}: {self.error}"
        return f"{self.status} {self.data!r}"


_BODIES: dict[str, bytes | list[bytes]] = {
    "POST": b"posted",
    "PUT": [b"pu", b"t"],
    "POST-large": b"p" * 100_000,
    "PUT-large": [b"q" * 32_768] * 4,
}


async def fetch(
    pool: HTTPConnectionPool,
    read: Read = "preload",
    amt: int = 7,
    retries: Retry | bool | int | None = False,
    path: str = "/fuzz",
    method: str = "GET",
) -> Outcome:
    """One request, its body read the way ``read`` says; trio_pool errors
    caught. POST and PUT send a small body (PUT's chunked); ``POST-large``
    and ``PUT-large`` one big enough to be watched for an early answer."""
    got = Outcome()
    body = _BODIES.get(method)
    method = method.removesuffix("-large")
    try:
        response = await pool.request(
            method,
            path,
            body=body,
            retries=retries,
            preload_content=read == "preload",
        )
        async with response:
            got.status = response.status
            assert 200 <= response.status <= 999, response.status
            assert isinstance(response.headers, HTTPHeaderDict)
            if method == "HEAD":
                assert await response.read() == b""
            if read == "preload":
                got.data = response.data
            elif read == "read-all":
                got.data = await response.read()
            elif read == "partial":
                got.data = await response.read(amt)
                assert len(got.data) <= amt
            else:
                got.data = await _read_in_pieces(response, read, amt, got)
    except HTTPError as exc:
        got.error = exc
    return got


async def _read_in_pieces(
    response: HTTPResponse, read: Read, amt: int, got: Outcome
) -> bytes:
    parts: list[bytes] = []
    if read == "stream":
        async for piece in response.stream(amt):
            assert 0 < len(piece) <= amt, (len(piece), amt)
            parts.append(piece)
            got.pieces.append(len(piece))
    else:
        while piece := await response.read(amt):
            assert len(piece) <= amt, (len(piece), amt)
            parts.append(piece)
            got.pieces.append(len(piece))
    return b"".join(parts)


def assert_settled(pool: HTTPConnectionPool) -> None:
    """Nothing leased, every token free, nobody waiting, idle really idle."""
    stats = pool.statistics()
    assert (stats.in_use, stats.waiting, stats.tokens_free) == (0, 0, pool.maxsize), (
        stats
    )
    assert all(conn.state is ConnState.IDLE for conn in pool._idle), pool._idle


async def assert_pool_recovers(pool: ScriptedPool) -> None:
    """The pool is settled and serves an ordinary request, correctly."""
    await trio.testing.wait_all_tasks_blocked()
    assert_settled(pool)
    pool.checks += 1
    path = f"/check-{pool.checks}"
    # A stalled server may still hold an idle connection: one retry covers it.
    check = await fetch(pool, "preload", retries=Retry(2), path=path)
    assert (check.status, check.data) == (200, b"ok:" + path.encode()), check.describe()
    await trio.testing.wait_all_tasks_blocked()
    assert_settled(pool)


class Hung(Exception):
    """Raised by the watchdog: an example ran too long in real time."""


@contextlib.contextmanager
def watchdog(seconds: float = WATCHDOG_SECONDS) -> Iterator[None]:
    """Raise ``Hung`` if the block runs longer than ``seconds`` of real time."""
    if sys.platform == "win32" or threading.current_thread() is not (
        threading.main_thread()
    ):  # pragma: no cover - signals are for the main thread, and not on Windows
        yield
        return

    def alarm(signum: int, frame: FrameType | None) -> None:
        raise Hung(f"no progress for {seconds} s of real time (a busy loop?)")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_in_pool(
    kind: str | None,
    script: Script,
    body: Callable[[ScriptedPool], Awaitable[T]],
    **pool_kw: object,
) -> T:
    """Run ``body(pool)`` in a fresh trio run on the mock clock, then check
    that the pool recovers; counted as one example of ``kind`` (if given)."""
    if kind is not None:
        EXAMPLES_RUN[kind] += 1

    async def in_pool(servers: trio.Nursery) -> T:
        async with ScriptedPool(servers, script, **pool_kw) as pool:
            with trio.fail_after(EXAMPLE_DEADLINE):
                result = await body(pool)
                await assert_pool_recovers(pool)
        return result

    async def main() -> T:
        async with trio.open_nursery() as servers:
            # Captured so that a failure is reported as itself, not wrapped
            # in the servers' nursery's ExceptionGroup.
            result = await outcome.acapture(in_pool, servers)
            servers.cancel_scope.cancel()
        return result.unwrap()

    with watchdog():
        return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def run_example(
    kind: str,
    script: Script,
    read: Read = "preload",
    amt: int = 7,
    retries: Retry | bool | int | None = False,
    method: str = "GET",
    cancel_after: float | None = None,
) -> Outcome:
    """One fuzzed request (and the recovery check), cancelled by the caller's
    scope after ``cancel_after`` virtual seconds if that comes first."""

    async def body(pool: ScriptedPool) -> Outcome:
        with trio.move_on_after(math.inf if cancel_after is None else cancel_after):
            return await fetch(pool, read, amt, retries, method=method)
        return Outcome()  # cancelled

    return run_in_pool(kind, script, body)


# -- generating responses ----------------------------------------------------------

Framing = Literal["length", "chunked", "close"]

_ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": lambda data: gzip.compress(data, mtime=0),
    "x-gzip": lambda data: gzip.compress(data, mtime=0),
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
}


@dataclass(frozen=True)
class Spec:
    """A valid HTTP/1.1 response, before rendering to bytes."""

    version: bytes = b"HTTP/1.1"
    status: int = 200
    reason: bytes = b"OK"
    interim: tuple[int, ...] = ()
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes = b""
    framing: Framing = "length"
    chunk_cuts: tuple[int, ...] = ()
    chunk_ext: bytes = b""
    trailers: tuple[tuple[bytes, bytes], ...] = ()
    coding: str | None = None

    @property
    def bodiless(self) -> bool:
        return self.status in (204, 304)

    @property
    def wire_body(self) -> bytes:
        if self.bodiless:
            return b""
        encode = _ENCODERS.get(self.coding or "")
        return self.body if encode is None else encode(self.body)

    @property
    def expected(self) -> bytes:
        """The body a client that decodes content should return."""
        return b"" if self.bodiless else self.body

    def render(self) -> bytes:
        out = bytearray()
        for code in self.interim:
            out += b"HTTP/1.1 %d Hold On\r\n\r\n" % code
        out += b"%s %d %s\r\n" % (self.version, self.status, self.reason)
        headers = list(self.headers)
        if self.coding is not None:
            headers.append((b"Content-Encoding", self.coding.encode()))
        wire = self.wire_body
        if self.framing == "length":
            headers.append((b"Content-Length", b"%d" % len(wire)))
        elif self.framing == "chunked":
            headers.append((b"Transfer-Encoding", b"chunked"))
        for name, value in headers:
            out += name + b": " + value + b"\r\n"
        out += b"\r\n"
        if self.bodiless:
            return bytes(out)
        if self.framing != "chunked":
            return bytes(out + wire)
        bounds = [0, *sorted({c for c in self.chunk_cuts if 0 < c < len(wire)})]
        bounds.append(len(wire))
        for a, b in itertools.pairwise(bounds):
            if b > a:
                out += b"%x%s\r\n%s\r\n" % (b - a, self.chunk_ext, wire[a:b])
        out += b"0\r\n"
        for name, value in self.trailers:
            out += name + b": " + value + b"\r\n"
        return bytes(out + b"\r\n")


_TOKEN = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~",
    min_size=1,
    max_size=12,
).map(str.encode)
_VALUE = st.binary(max_size=24).map(
    lambda v: bytes(b for b in v if 0x21 <= b <= 0x7E or b >= 0x80)
)
_HEADER = st.tuples(
    st.sampled_from(
        [b"X-Test", b"Content-Type", b"Server", b"Set-Cookie", b"Date", b"Vary"]
    )
    | _TOKEN.map(lambda t: b"X-" + t),
    _VALUE,
)
_BODY = st.binary(max_size=300) | st.builds(
    lambda unit, n: unit * n, st.binary(min_size=1, max_size=16), st.integers(1, 200)
)


@st.composite
def specs(draw: st.DrawFn, *, for_mutation: bool = False) -> Spec:
    """Valid responses. ``for_mutation`` adds redirects, Retry-After,
    Connection headers: things that make the client act on what it reads."""
    framing: Framing = draw(st.sampled_from(["length", "chunked", "close"]))
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]))
    statuses = [200, 200, 201, 203, 204, 206, 304, 400, 404, 410, 500]
    if for_mutation:
        statuses += [301, 302, 303, 307, 308, 413, 429, 503, 599, 999]
    headers = draw(st.lists(_HEADER, max_size=3))
    if for_mutation:
        headers += draw(
            st.lists(
                st.sampled_from(
                    [
                        (b"Location", b"/check-redirected"),
                        (b"Location", b"/fuzz-again"),
                        (b"Location", b"http://fuzz.test/check-absolute"),
                        (b"Location", b"http://elsewhere.test/"),
                        (b"Retry-After", b"1"),
                        (b"Retry-After", b"120"),
                        (b"Retry-After", b"Wed, 21 Oct 2015 07:28:00 GMT"),
                        (b"Connection", b"close"),
                        (b"Connection", b"keep-alive"),
                        (b"Content-Encoding", b"gzip"),
                    ]
                ),
                max_size=3,
            )
        )
    return Spec(
        version=version,
        status=draw(st.sampled_from(statuses)),
        reason=draw(st.sampled_from([b"OK", b"", b"Some Reason", b"\xe9t\xe9"])),
        interim=tuple(draw(st.lists(st.sampled_from([100, 102, 103]), max_size=2))),
        headers=tuple(headers),
        body=draw(_BODY),
        framing=framing,
        chunk_cuts=tuple(draw(st.lists(st.integers(1, 400), max_size=4))),
        chunk_ext=draw(st.sampled_from([b"", b";name=value", b";x"])),
        trailers=tuple(draw(st.lists(_HEADER, max_size=2))),
        coding=draw(
            st.sampled_from([None, "gzip", "deflate", "br", "zstd", "identity", "x-y"])
        ),
    )


# -- mutations ----------------------------------------------------------------------

#: Bytes that matter to an HTTP/1.1 parser.
_INTERESTING = [
    b"\r",
    b"\n",
    b"\r\n",
    b" ",
    b"\t",
    b":",
    b"0",
    b"-",
    b"\x00",
    b",",
    b";",
]
#: Replacements for a number on the wire (status code, length, chunk size).
_NUMBERS = [
    b"",
    b"0",
    b"-1",
    b"+5",
    b" 5",
    b"5 ",
    b"0x10",
    b"1e3",
    b"abc",
    b"zz",
    b"5, 6",
    b"5, 5",
    b"00000000000000000000005",
    b"99999999999999999999",
    b"999999999999999999999",
    b"18446744073709551616",
    b"ffffffffffffffffffff",
    b"1" * 5000,
]
_NUMBER_RE = re.compile(rb"[0-9A-Fa-f]+")

Mutation = tuple[str, int, bytes]

_MUTATIONS: st.SearchStrategy[Mutation] = st.one_of(
    st.tuples(
        st.just("flip"),
        st.integers(0, 2**16),
        st.integers(1, 255).map(lambda b: bytes([b])),
    ),
    st.tuples(
        st.just("insert"),
        st.integers(0, 2**16),
        st.sampled_from(_INTERESTING) | st.binary(min_size=1, max_size=4),
    ),
    st.tuples(
        st.just("delete"),
        st.integers(0, 2**16),
        st.integers(1, 8).map(lambda n: bytes(n)),
    ),
    st.tuples(st.just("truncate"), st.integers(0, 2**16), st.just(b"")),
    st.tuples(st.just("number"), st.integers(0, 2**16), st.sampled_from(_NUMBERS)),
    st.tuples(st.just("dup-line"), st.integers(0, 2**16), st.sampled_from(_NUMBERS)),
)


def mutate(payload: bytes, mutations: list[Mutation]) -> bytes:
    """Apply ``mutations`` in turn; positions are taken modulo the length."""
    data = bytearray(payload)
    for op, position, arg in mutations:
        if op == "number":
            matches = list(_NUMBER_RE.finditer(data))
            if matches:
                m = matches[position % len(matches)]
                data[m.start() : m.end()] = arg
            continue
        if op == "dup-line":
            lines = bytes(data).split(b"\r\n")
            i = position % len(lines)
            # Repeat one line, with its numbers (if any) replaced by ``arg``.
            lines.insert(i, _NUMBER_RE.sub(arg, lines[i], count=1))
            data = bytearray(b"\r\n".join(lines))
            continue
        if not data:
            data += arg
            continue
        i = position % (len(data) + (op == "insert"))
        if op == "flip":
            data[i] ^= arg[0]
        elif op == "insert":
            data[i:i] = arg
        elif op == "delete":
            del data[i : i + len(arg)]
        else:
            del data[i:]
    return bytes(data)


_AFTERS: st.SearchStrategy[After] = st.sampled_from(["close", "stall", "keep"])
_READS: st.SearchStrategy[Read] = st.sampled_from(READS)
_AMTS = st.sampled_from([1, 2, 3, 7, 64, 1024]) | st.integers(1, 100)
_RETRIES: st.SearchStrategy[Retry | bool] = st.sampled_from(
    [False, Retry(1), Retry(2, redirect=2)]
)


# -- the fuzz tests -----------------------------------------------------------------


@fuzz_settings(examples=150)
@given(
    spec=specs(),
    after=st.sampled_from(["close", "keep"]),
    read=_READS,
    amt=_AMTS,
    cuts=st.lists(st.integers(1, 600), max_size=3),
)
def test_valid_responses_are_read_exactly(
    spec: Spec, after: After, read: Read, amt: int, cuts: list[int]
) -> None:
    """Unmutated responses: the body comes back exactly, in every read mode."""
    if spec.framing == "close" or spec.version == b"HTTP/1.0":
        after = "close"  # the body (or the exchange) ends with the connection
    script = Script(spec.render(), after, tuple(cuts))
    outcome = run_example("valid", script, read, amt)
    assert outcome.error is None, outcome.describe()
    assert outcome.status == spec.status
    expected = spec.expected
    if spec.coding == "x-y":
        expected = spec.wire_body  # an unknown coding passes through
    if read == "partial":
        expected = expected[:amt]
    assert outcome.data == expected


@fuzz_settings(examples=330)
@given(
    spec=specs(for_mutation=True),
    mutations=st.lists(_MUTATIONS, min_size=1, max_size=3),
    after=_AFTERS,
    read=_READS,
    amt=_AMTS,
    retries=_RETRIES,
    cuts=st.lists(st.integers(1, 600), max_size=2),
    method=st.sampled_from(
        ["GET", "GET", "HEAD", "POST", "PUT", "POST-large", "PUT-large"]
    ),
    early=st.booleans(),
    cancel_after=st.none() | st.floats(0, 12),
)
def test_mutated_responses(
    spec: Spec,
    mutations: list[Mutation],
    after: After,
    read: Read,
    amt: int,
    retries: Retry | bool,
    cuts: list[int],
    method: str,
    early: bool,
    cancel_after: float | None,
) -> None:
    """Flipped, inserted, deleted bytes; numbers replaced; lines duplicated;
    truncations: a response or an HTTPError, and a pool that still works;
    also when the caller cancels part-way (in virtual time: pieces arrive
    0.01 s apart, a stall lasts 5 s)."""
    payload = mutate(spec.render(), mutations)
    script = Script(payload, after, tuple(cuts), early)
    run_example("mutated", script, read, amt, retries, method, cancel_after)


_CONTENT_LENGTHS = [*_NUMBERS[:17], b"5, 5, 5", b"5,", b",5"]
_TRANSFER_ENCODINGS = [
    b"chunked",
    b"Chunked",
    b"CHUNKED",
    b"gzip, chunked",
    b"chunked, chunked",
    b"chunked, gzip",
    b"identity",
    b"identity, chunked",
    b"gzip",
    b"chunked;q=1",
    b"",
    b" chunked",
]
_CHUNK_SIZES = [b"zz", b"-1", b"ffffffffffffffffffff", b"5;ext=1", b" 5", b"5 ", b"0x5"]
_CHUNK_SIZES += [b"", b"5\x00", b"+5", b"05", b"5;", b"5\t"]


@st.composite
def lying_framings(draw: st.DrawFn) -> bytes:
    """A response whose framing headers and chunk-size lines may be lies."""
    body = draw(st.binary(max_size=40))
    headers: list[tuple[bytes, bytes]] = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["cl", "cl-near", "te"]))
        if kind == "cl":
            headers.append((b"Content-Length", draw(st.sampled_from(_CONTENT_LENGTHS))))
        elif kind == "cl-near":
            near = len(body) + draw(st.integers(-3, 3))
            headers.append((b"Content-Length", b"%d" % near))
        else:
            headers.append(
                (b"Transfer-Encoding", draw(st.sampled_from(_TRANSFER_ENCODINGS)))
            )
    head = b"HTTP/1.1 200 OK\r\n" + b"".join(
        n + b": " + v + b"\r\n" for n, v in headers
    )
    if not draw(st.booleans()):
        return head + b"\r\n" + body
    chunks = bytearray()
    for piece in (body[:10], body[10:]):
        size = b"%x" % len(piece)
        if draw(st.booleans()):
            size = draw(st.sampled_from(_CHUNK_SIZES))
        chunks += size + b"\r\n" + piece + b"\r\n"
    last = draw(
        st.sampled_from([b"0\r\n\r\n", b"0\r\n", b"", b"00\r\n\r\n", b"0;x\r\n\r\n"])
    )
    return head + b"\r\n" + bytes(chunks) + last


@fuzz_settings(examples=240)
@given(
    payload=lying_framings(),
    after=_AFTERS,
    read=_READS,
    amt=_AMTS,
    extra=st.sampled_from([b"", b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL"]),
)
def test_lying_framing_headers(
    payload: bytes, after: After, read: Read, amt: int, extra: bytes
) -> None:
    """Negative, huge, non-numeric, duplicated and conflicting Content-Length;
    Transfer-Encoding combinations; bogus chunk sizes; a second response
    appended (which must never be taken for the next request's answer)."""
    run_example("framing", Script(payload + extra, after), read, amt)


_PREFIXES = [
    b"",
    b"HTTP/1.1 ",
    b"HTTP/1.1 200 OK\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.0 200 OK\r\n\r\n",
]


@fuzz_settings(examples=150)
@given(
    prefix=st.sampled_from(_PREFIXES),
    noise=st.binary(max_size=200),
    after=_AFTERS,
    read=_READS,
)
def test_arbitrary_bytes(prefix: bytes, noise: bytes, after: After, read: Read) -> None:
    """Noise, alone or after a plausible beginning."""
    run_example("noise", Script(prefix + noise, after), read, amt=5)


@fuzz_settings(examples=100)
@given(
    spec=specs(for_mutation=True),
    mutations=st.lists(_MUTATIONS, max_size=2),
    after=_AFTERS,
    reads=st.lists(_READS, min_size=2, max_size=4),
    amt=_AMTS,
    block=st.booleans(),
)
def test_concurrent_requests_meeting_fuzzed_responses(
    spec: Spec,
    mutations: list[Mutation],
    after: After,
    reads: list[Read],
    amt: int,
    block: bool,
) -> None:
    """Several tasks at once on a pool of two (waiting for a token, or making
    overflow connections): whatever each one meets, the counts stay exact."""
    payload = mutate(spec.render(), mutations)

    async def together(pool: ScriptedPool) -> None:
        async with trio.open_nursery() as nursery:
            for read in reads:
                nursery.start_soon(fetch, pool, read, amt, Retry(1))

    script = Script(payload, after)
    run_in_pool("concurrent", script, together, maxsize=2, block=block)


# -- truncation at every offset --------------------------------------------------------

_TRUNCATED = {
    "length": Spec(headers=((b"X-A", b"1"),), body=b"0123456789" * 3),
    "chunked": Spec(
        framing="chunked",
        body=b"abcdefghij" * 3,
        chunk_cuts=(7, 20),
        chunk_ext=b";e=1",
        trailers=((b"X-Trailer", b"t"),),
    ),
    "gzip": Spec(body=b"zipped " * 20, coding="gzip", interim=(100,)),
    "close-delimited": Spec(version=b"HTTP/1.0", framing="close", body=b"x" * 30),
}


@pytest.mark.parametrize("after", ["close", "stall"])
@pytest.mark.parametrize("name", sorted(_TRUNCATED))
def test_truncation_at_every_offset(name: str, after: After) -> None:
    """A response cut at any byte is an error (ProtocolError when the server
    closes, ReadTimeoutError when it stalls), never a short body; only a
    close-delimited body may legitimately end early."""
    spec = _TRUNCATED[name]
    full = spec.render()
    head_end = full.index(b"\r\n\r\n", full.index(b"HTTP/1.", 5 if spec.interim else 0))
    head_end += 4

    async def every_offset(pool: ScriptedPool) -> None:
        for offset in range(len(full) + 1):
            EXAMPLES_RUN["truncation"] += 1
            pool.script.payload = full[:offset]
            outcome = await fetch(pool, "preload")
            where = f"cut at {offset}/{len(full)}: {outcome.describe()}"
            if after == "stall" and (offset < len(full) or name == "close-delimited"):
                # A close-delimited body only ends when the connection does.
                assert isinstance(outcome.error, ReadTimeoutError), where
            elif offset == len(full):
                assert outcome.data == spec.expected, where
            elif name == "close-delimited" and offset >= head_end:
                assert outcome.data == spec.expected[: offset - head_end], where
            else:
                assert isinstance(outcome.error, ProtocolError), where
                if offset > head_end and name == "length":
                    assert isinstance(outcome.error, IncompleteRead), where
            await assert_pool_recovers(pool)

    run_in_pool(None, Script(b"", after), every_offset)


# -- compressed bodies --------------------------------------------------------------


def _gzip_members(data: bytes) -> bytes:
    half = len(data) // 2
    return gzip.compress(data[:half], mtime=0) + gzip.compress(data[half:], mtime=0)


def _deflate_raw(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def _zstd_checked(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(write_checksum=True).compress(data)


def _zstd_frames(data: bytes) -> bytes:
    half = len(data) // 2
    skippable = (0x184D2A5A).to_bytes(4, "little") + (3).to_bytes(4, "little") + b"abc"
    c = zstandard.ZstdCompressor(write_content_size=False)
    return c.compress(data[:half]) + skippable + c.compress(data[half:])


def _zstd_streamed(data: bytes) -> bytes:
    compressor = zstandard.ZstdCompressor().compressobj()
    return compressor.compress(data) + compressor.flush()


#: name -> (Content-Encoding label, encoder)
_CODECS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "gzip": ("gzip", lambda data: gzip.compress(data, mtime=0)),
    "gzip-members": ("gzip", _gzip_members),
    "deflate": ("deflate", zlib.compress),
    "deflate-raw": ("deflate", _deflate_raw),
    "br": ("br", brotli.compress),
    "zstd": ("zstd", lambda data: zstandard.ZstdCompressor().compress(data)),
    "zstd-checksum": ("zstd", _zstd_checked),
    "zstd-frames": ("zstd", _zstd_frames),
    "zstd-streamed": ("zstd", _zstd_streamed),
    "gzip,br": ("gzip, br", lambda data: brotli.compress(gzip.compress(data))),
    "deflate,zstd": (
        "deflate, zstd",
        lambda data: zstandard.ZstdCompressor().compress(zlib.compress(data)),
    ),
}


def _reference_one(label: str, body: bytes) -> bytes:
    """Decode with the libraries' one-shot APIs (raises on any problem)."""
    if label == "gzip":
        return gzip.decompress(body)
    if label == "deflate":
        raw = not (len(body) >= 2 and (body[0] << 8 | body[1]) % 31 == 0)
        obj = zlib.decompressobj(-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
        out = obj.decompress(body) + obj.flush()
        if not obj.eof:
            raise ValueError("deflate stream incomplete")
        return out
    if label == "br":
        return bytes(brotli.decompress(body))
    assert label == "zstd"
    parts, rest = [], body
    while rest:
        if int.from_bytes(rest[:4], "little") & ~0xF == 0x184D2A50:
            end = 8 + int.from_bytes(rest[4:8], "little")
            if len(rest) < end:
                raise ValueError("skippable frame cut short")
            rest = rest[end:]
            continue
        frame = zstandard.ZstdDecompressor().decompressobj()
        parts.append(frame.decompress(rest))
        if not frame.eof:
            raise ValueError("zstd frame incomplete")
        rest = frame.unused_data
    return b"".join(parts)


def reference_decode(labels: str, body: bytes) -> bytes | None:
    """What the strict one-shot decoders make of ``body``; None if they fail."""
    try:
        for label in reversed([c.strip() for c in labels.split(",")]):
            body = _reference_one(label, body)
    except Exception:
        return None
    return body


_PLAIN = _BODY | st.just(b"") | st.binary(min_size=1000, max_size=4000)


@fuzz_settings(examples=180)
@given(
    codec=st.sampled_from(sorted(_CODECS)),
    plain=_PLAIN,
    mutations=st.lists(
        _MUTATIONS.filter(lambda m: m[0] not in ("number", "dup-line")), max_size=2
    ),
    chunked=st.booleans(),
    chunk_cuts=st.lists(st.integers(1, 3000), max_size=4),
    amt=st.integers(1, 64) | st.sampled_from([1, 1024, 65536]),
    amt2=st.integers(1, 16),
)
def test_mutated_compressed_bodies(
    codec: str,
    plain: bytes,
    mutations: list[Mutation],
    chunked: bool,
    chunk_cuts: list[int],
    amt: int,
    amt2: int,
) -> None:
    """Valid and mutated gzip/deflate/br/zstd (and stacked) bodies: decoded
    exactly, or DecodeError/ProtocolError; the same answer preloaded and
    streamed in small pieces; never a piece longer than asked for."""
    label, encode = _CODECS[codec]
    body = mutate(encode(plain), mutations) if mutations else encode(plain)
    spec = Spec(
        headers=((b"Content-Encoding", label.encode()),),
        body=body,
        framing="chunked" if chunked else "length",
        chunk_cuts=tuple(chunk_cuts),
    )
    # Small pieces, but not so many that one example takes long.
    floor = len(plain) // 200 + 1
    modes: list[tuple[Read, int]] = [
        ("preload", 0),
        ("stream", max(amt, floor)),
        ("read-amt", max(amt2, floor)),
    ]

    async def every_read_mode(pool: ScriptedPool) -> list[Outcome]:
        outcomes = []
        for read, n in modes:
            outcomes.append(await fetch(pool, read, n))
            await trio.testing.wait_all_tasks_blocked()
            assert_settled(pool)
        return outcomes

    outcomes = run_in_pool("compressed", Script(spec.render(), "keep"), every_read_mode)
    for got in outcomes:
        if got.error is not None:
            assert isinstance(got.error, (DecodeError, ProtocolError)), got.describe()
    preload, *others = outcomes
    for other in others:
        # Reading in pieces must not change the answer.
        assert (other.failed, other.data) == (preload.failed, preload.data), (
            preload.describe(),
            other.describe(),
        )
    if not mutations:
        assert preload.data == plain, preload.describe()
    reference = reference_decode(label, body)
    if reference is not None:
        # What the strict one-shot decoders accept, we decode the same way.
        assert preload.data == reference, preload.describe()


# -- regressions: inputs the fuzzing found, kept as plain tests ---------------------

_SECOND_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!"


@pytest.mark.parametrize(
    "leftover",
    [
        _SECOND_RESPONSE,
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"garbage\r\n",
    ],
)
@pytest.mark.parametrize("status", [200, 204])
def test_bytes_after_a_complete_response_are_never_the_next_response(
    leftover: bytes, status: int
) -> None:
    """Bytes that arrive with a complete keep-alive response (same segment)
    must not be read as the answer to the next request on that connection:
    that would hand one request's response to another (response smuggling)."""
    body = b"" if status == 204 else b"ok"
    payload = b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s" % (status, 2, body)
    outcome = run_example("regression", Script(payload + leftover, "keep"))
    # run_example's recovery check asks for /check-1 and checks its body.
    assert outcome.status == status


@pytest.mark.parametrize(
    "location",
    [b"http://[", b"http://[::1", b"http://[x]/", b"//[a]/", b"http://h:99999/"],
)
def test_redirect_to_an_unparsable_location_is_an_http_error(location: bytes) -> None:
    payload = (
        b"HTTP/1.1 302 Found\r\nLocation: "
        + location
        + b"\r\nContent-Length: 0\r\n\r\n"
    )
    outcome = run_example("regression", Script(payload, "keep"), retries=Retry(2))
    assert outcome.error is not None or outcome.status == 302


def test_retry_after_with_thousands_of_digits() -> None:
    """delay-seconds is 1*DIGIT: a long one is capped by retry_after_max, or
    rejected as InvalidHeader; it must not escape as ValueError."""
    payload = b"HTTP/1.1 503 Busy\r\nRetry-After: " + b"9" * 5000
    payload += b"\r\nContent-Length: 0\r\n\r\n"
    run_example("regression", Script(payload, "keep"), retries=Retry(2))


@pytest.mark.parametrize(
    "payload",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\n\r\n"
        b"not gzip!",
    ],
)
def test_reading_again_after_a_failed_read_raises(payload: bytes) -> None:
    """HTTPResponse.read's contract: after a failed read, "reading again
    raises" — not b"" (which would make a truncated body look complete)."""

    async def read_to_the_end(response: HTTPResponse) -> None:
        while await response.read(2):
            pass

    async def read_twice(pool: ScriptedPool) -> None:
        response = await pool.request("GET", "/fuzz", preload_content=False)
        with pytest.raises(HTTPError):
            await read_to_the_end(response)
        with pytest.raises(HTTPError):
            await response.read()

    run_in_pool("regression", Script(payload, "close"), read_twice)


@pytest.mark.parametrize("payload", [prefix + b"abc" for prefix in _PREFIXES])
def test_head_requests_never_read_a_body(payload: bytes) -> None:
    """HEAD: whatever the headers say, no body is read, and any bytes the
    server sends after the head do not poison the next request."""

    async def head(pool: ScriptedPool) -> None:
        try:
            response = await pool.request("HEAD", "/fuzz", retries=False)
        except HTTPError:
            return
        assert response.data == b""

    run_in_pool("head", Script(payload, "keep"), head)
