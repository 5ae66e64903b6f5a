"""Timeout, request bodies and the error translation boundary, without I/O."""

from __future__ import annotations

import errno
import io
import socket
import ssl
from collections.abc import AsyncIterator, Iterator

import pytest
import trio

from trio_pool import (
    DEFAULT_TIMEOUT,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    SSLError,
    Timeout,
    UnrewindableBodyError,
)
from trio_pool._body import RequestBody
from trio_pool._pool import _total_scope
from trio_pool._translate import translate_errors

# -- Timeout ------------------------------------------------------------------


def test_timeout_defaults_mean_no_limit() -> None:
    assert DEFAULT_TIMEOUT.connect_timeout is None
    assert DEFAULT_TIMEOUT.read_timeout is None
    assert "DEFAULT_TIMEOUT" in repr(DEFAULT_TIMEOUT)


def test_timeout_total_caps_the_parts() -> None:
    t = Timeout(total=3, connect=5, read=1)
    assert (t.connect_timeout, t.read_timeout) == (3, 1)
    assert Timeout(total=2).read_timeout == 2
    assert Timeout.from_float(4) == Timeout(connect=4, read=4)


def test_timeout_is_frozen_and_validated() -> None:
    t = Timeout(read=1)
    with pytest.raises(AttributeError):
        t.read = 2  # type: ignore[misc]
    for bad in (-1, 0, float("nan"), "1", True):
        with pytest.raises(ValueError, match="Timeout"):
            Timeout(read=bad)  # type: ignore[arg-type]


def test_timeout_resolve() -> None:
    default = Timeout(read=9)
    assert Timeout.resolve(Timeout.DEFAULT_TIMEOUT, default) is default
    assert Timeout.resolve(2.5, default) == Timeout(connect=2.5, read=2.5)
    assert Timeout.resolve(None, default) == Timeout(connect=None, read=None)
    mine = Timeout(total=1)
    assert Timeout.resolve(mine, default) is mine


async def test_total_scope_deadline() -> None:
    with _total_scope(Timeout().total) as unlimited:
        await trio.lowlevel.checkpoint()
    assert not unlimited.cancelled_caught
    now = trio.current_time()
    scope = _total_scope(Timeout(total=5).total)
    assert isinstance(scope, trio.CancelScope)
    assert scope.deadline == pytest.approx(now + 5, abs=0.1)


# -- request bodies -------------------------------------------------------------


async def collect(body: RequestBody) -> bytes:
    chunks = body.chunks()
    assert chunks is not None
    return b"".join([c async for c in chunks])


async def test_bodies_and_lengths() -> None:
    assert RequestBody(None).chunks() is None
    assert RequestBody(None).is_empty
    assert RequestBody("é").length == 2
    assert await collect(RequestBody(bytearray(b"ab"))) == b"ab"
    assert await collect(RequestBody(["a", b"b"])) == b"ab"
    with pytest.raises(TypeError):
        RequestBody(42)
    with pytest.raises(TypeError):
        await collect(RequestBody([1]))


async def test_file_body_rewinds_to_its_start() -> None:
    file = io.BytesIO(b"skip:payload")
    file.seek(5)
    body = RequestBody(file)
    assert body.length is None
    assert await collect(body) == b"payload"
    await body.rewind()
    assert await collect(body) == b"payload"
    explicit = RequestBody(io.BytesIO(b"0123"), body_pos=2)
    await collect(explicit)
    await explicit.rewind()
    assert await collect(explicit) == b"23"


async def test_async_file_body() -> None:
    wrapped = trio.wrap_file(io.BytesIO(b"async file"))
    body = RequestBody(wrapped)
    assert await collect(body) == b"async file"
    await body.rewind()
    assert await collect(body) == b"async file"


async def test_one_shot_bodies_cannot_rewind() -> None:
    def gen() -> Iterator[bytes]:
        yield b"x"

    async def agen() -> AsyncIterator[bytes]:
        yield b"y"

    for one_shot in (gen(), agen()):
        body = RequestBody(one_shot)
        await body.rewind()  # not started yet: fine
        await collect(body)
        with pytest.raises(UnrewindableBodyError):
            await body.rewind()


async def test_unseekable_file_cannot_rewind() -> None:
    class Pipe:
        def read(self, n: int) -> bytes:
            return b""

    body = RequestBody(Pipe())
    await collect(body)
    with pytest.raises(UnrewindableBodyError):
        await body.rewind()


# -- the translation boundary ----------------------------------------------------


@pytest.mark.parametrize(
    ("phase", "error", "expected"),
    [
        ("connect", socket.gaierror(socket.EAI_NONAME, "no name"), NameResolutionError),
        (
            "connect",
            ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
            NewConnectionError,
        ),
        ("receive", ConnectionResetError(errno.ECONNRESET, "reset"), ProtocolError),
        ("receive", OSError(errno.EIO, "io"), ProtocolError),
        ("receive", trio.BrokenResourceError("gone"), ProtocolError),
        ("connect", trio.BrokenResourceError("gone"), NewConnectionError),
        ("connect", ssl.SSLError(1, "handshake"), SSLError),
    ],
)
def test_foreign_errors_become_ours(
    phase: str, error: Exception, expected: type[Exception]
) -> None:
    with pytest.raises(expected) as info, translate_errors(phase, host="h"):
        raise error
    assert info.value.__cause__ is error


def test_broken_resource_caused_by_ssl_is_ssl_error() -> None:
    cause = ssl.SSLCertVerificationError("certificate verify failed")
    cause.verify_message = "unable to get local issuer certificate"
    broken = trio.BrokenResourceError("tls")
    broken.__cause__ = cause
    with pytest.raises(SSLError, match="local issuer"), translate_errors("connect"):
        raise broken


async def test_cancelled_passes_through_untouched() -> None:
    with trio.CancelScope() as scope:
        scope.cancel()
        with translate_errors("receive"):
            await trio.sleep(1)
    assert scope.cancelled_caught
