"""Unit tests for the incremental content decoders (trio_pool._decoders)."""

from __future__ import annotations

import gzip
import importlib
import itertools
import struct
import sys
import tracemalloc
import types
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import brotli
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_pool._decoders import ContentDecoder, get_decoder
from trio_pool._exceptions import DecodeError

CODINGS = ["gzip", "deflate", "br", "zstd"]
MiB = 1 << 20

#: The zstd libraries get_decoder() takes, in its order of preference.
ZSTD_PREFERENCE = ["compression.zstd", "backports.zstd", "zstandard"]
#: Those the zstd cases run with: the one this Python's test extra provides
#: that caps its own output, and the zstandard fallback with the frame walker.
ZSTD_BACKENDS = [
    "compression.zstd" if sys.version_info >= (3, 14) else "backports.zstd",
    "zstandard",
]


@pytest.fixture
def zstd_backend(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """Make get_decoder() use one zstd library; returns its module.

    ``request.param`` names the library; without one (a case that does not
    involve zstd), nothing changes and the result is None.
    """
    name = getattr(request, "param", None)
    if name is None:
        return None
    try:
        module = importlib.import_module(name)
    except ImportError:
        pytest.skip(f"needs {name}: pip install -e '.[test]'")
    for preferred in ZSTD_PREFERENCE[: ZSTD_PREFERENCE.index(name)]:
        monkeypatch.setitem(sys.modules, preferred, None)
    return module


def each_zstd_backend(cases: list[Any]) -> list[Any]:
    """``cases`` (codings, or lists of codings) as ``(case, zstd_backend)``
    parameters: once per zstd library for a case with zstd, else once."""
    params = []
    for case in cases:
        text = ", ".join(case) if isinstance(case, list) else case
        for backend in ZSTD_BACKENDS if "zstd" in text else [None]:
            name = f"{text or '[]'}-{backend}" if backend else text or "[]"
            params.append(pytest.param(case, backend, id=name))
    return params


#: Runs a test once per zstd library, its ``zstd_backend`` set to the module.
ON_EACH_ZSTD = pytest.mark.parametrize("zstd_backend", ZSTD_BACKENDS, indirect=True)


# --------------------------------------------------------------------------
# Encoders and the pulling loop every test uses.


def gzip_members(data: bytes, cuts: int = 1, level: int = 6) -> bytes:
    """``data`` as ``cuts`` concatenated gzip members."""
    step = -(-len(data) // cuts) if data else 1
    pieces = [data[i : i + step] for i in range(0, len(data), step)] or [b""]
    return b"".join(gzip.compress(p, compresslevel=level, mtime=0) for p in pieces)


def zstd_frames(
    data: bytes, cuts: int = 1, level: int = 3, check: bool = False
) -> bytes:
    step = -(-len(data) // cuts) if data else 1
    pieces = [data[i : i + step] for i in range(0, len(data), step)] or [b""]
    compressor = zstandard.ZstdCompressor(level=level, write_checksum=check)
    return b"".join(compressor.compress(p) for p in pieces)


def raw_deflate(data: bytes, level: int = 6) -> bytes:
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def encode(coding: str, data: bytes, variant: int = 0) -> bytes:
    """Encode ``data``; ``variant`` picks levels, members, frames, wrappers."""
    if coding in ("gzip", "x-gzip"):
        return gzip_members(data, cuts=1 + variant % 3, level=variant % 10)
    if coding == "deflate":
        if variant % 2:
            return raw_deflate(data, level=variant % 10)
        return zlib.compress(data, variant % 10)
    if coding == "br":
        return bytes(brotli.compress(data, quality=variant % 12))
    assert coding == "zstd"
    return zstd_frames(data, 1 + variant % 3, 1 + variant % 7, bool(variant & 4))


def encode_chain(codings: list[str], data: bytes, variant: int = 0) -> bytes:
    for coding in codings:  # in the order they are applied
        data = encode(coding, data, variant)
    return data


def pull_all(
    decoder: ContentDecoder,
    body: bytes,
    sizes: list[int] | None = None,
    limits: list[int] | None = None,
) -> bytes:
    """Feed ``body`` in ``sizes`` pieces, pulling with ``limits``; then drain.

    Checks the bound on every call, that draining until ``needs_input``
    terminates, and that ``flush()`` then has nothing left to give.
    """
    feed_sizes = itertools.cycle(sizes or [len(body) or 1])
    max_lengths = itertools.cycle(limits or [-1])
    out: list[bytes] = []

    def pull(data: bytes, limit: int) -> bytes:
        chunk = decoder.decompress(data, limit)
        if limit >= 0:
            assert len(chunk) <= limit
        out.append(chunk)
        return chunk

    pos = 0
    while pos < len(body):
        size = next(feed_sizes)
        pull(body[pos : pos + size], next(max_lengths))
        pos += size
    while not decoder.needs_input:
        # A drain call must give at least one byte or admit it needs input.
        assert pull(b"", next(max_lengths) or 1) or decoder.needs_input
    assert decoder.flush() == b""
    return b"".join(out)


# --------------------------------------------------------------------------
# The key property: any slicing, any max_length, exact output, bound held.

plain_data = st.one_of(
    st.binary(max_size=3000),
    st.tuples(st.binary(min_size=1, max_size=40), st.integers(1, 3000)).map(
        lambda t: t[0] * t[1]
    ),
)
feed_sizes = st.lists(st.integers(1, 4000), min_size=1, max_size=8)
max_lengths = st.lists(
    st.one_of(st.integers(-1, 70000), st.integers(0, 5)), min_size=1, max_size=8
)
FAST = settings(
    max_examples=60,
    deadline=None,
    # zstd_backend is function-scoped on purpose: one library per test.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.mark.parametrize(
    ("coding", "zstd_backend"), each_zstd_backend(CODINGS), indirect=["zstd_backend"]
)
@FAST
@given(
    data=plain_data,
    variant=st.integers(0, 63),
    sizes=feed_sizes,
    limits=max_lengths,
)
def test_round_trip_any_slicing(
    coding: str,
    zstd_backend: Any,
    data: bytes,
    variant: int,
    sizes: list[int],
    limits: list[int],
) -> None:
    body = encode(coding, data, variant)
    assert pull_all(get_decoder(coding), body, sizes, limits) == data


@ON_EACH_ZSTD
@FAST
@given(
    codings=st.lists(st.sampled_from(CODINGS), min_size=2, max_size=3),
    data=plain_data,
    variant=st.integers(0, 63),
    sizes=feed_sizes,
    limits=max_lengths,
)
def test_round_trip_stacked(
    zstd_backend: Any,
    codings: list[str],
    data: bytes,
    variant: int,
    sizes: list[int],
    limits: list[int],
) -> None:
    body = encode_chain(codings, data, variant)
    decoder = get_decoder(", ".join(codings))
    assert pull_all(decoder, body, sizes, limits) == data


@pytest.mark.parametrize(
    ("coding", "zstd_backend"), each_zstd_backend(CODINGS), indirect=["zstd_backend"]
)
@pytest.mark.parametrize("limits", [[1, 9000], [1000], [65536, 0, -1]], ids=str)
def test_round_trip_large(coding: str, zstd_backend: Any, limits: list[int]) -> None:
    # Bigger than every internal step: zstd's 128 KiB blocks, the 16 KiB input
    # steps, brotli's output blocks; mixed compressible and random content.
    data = bytes(range(256)) * 2000 + b"\0" * 700_000 + zlib.compress(b"x" * 9)
    body = encode(coding, data, variant=3)
    sizes = [1, 7, 20_000, 333, 150_000]
    decoder = get_decoder(coding)
    assert pull_all(decoder, body, sizes, limits) == data


@pytest.mark.parametrize(
    ("coding", "zstd_backend"),
    each_zstd_backend([*CODINGS, "gzip, br", "zstd, deflate"]),
    indirect=["zstd_backend"],
)
def test_flush_returns_everything_left(coding: str, zstd_backend: Any) -> None:
    data = b"hello world " * 5000
    decoder = get_decoder(coding)
    body = encode_chain([c.strip() for c in coding.split(",")], data)
    first = decoder.decompress(body, 10)
    assert first == data[:10]
    assert not decoder.needs_input
    assert decoder.flush() == data[10:]


@pytest.mark.parametrize(
    ("codings", "zstd_backend"),
    each_zstd_backend([[c] for c in CODINGS] + [["gzip", "zstd"], []]),
    indirect=["zstd_backend"],
)
def test_max_length_zero_only_buffers(codings: list[str], zstd_backend: Any) -> None:
    data = b"abc" * 1000
    decoder = get_decoder(", ".join(codings))
    assert decoder.needs_input
    assert decoder.decompress(encode_chain(codings, data), 0) == b""
    assert not decoder.needs_input
    assert pull_all(decoder, b"", limits=[100]) == data


@pytest.mark.parametrize(
    ("coding", "zstd_backend"),
    each_zstd_backend([*CODINGS, "br, gzip", "unknown"]),
    indirect=["zstd_backend"],
)
def test_empty_body(coding: str, zstd_backend: Any) -> None:
    decoder = get_decoder(coding)
    assert decoder.needs_input
    assert decoder.decompress(b"", 10) == b""
    assert decoder.flush() == b""


@pytest.mark.parametrize(
    ("coding", "zstd_backend"), each_zstd_backend(CODINGS), indirect=["zstd_backend"]
)
def test_empty_content_encodes(coding: str, zstd_backend: Any) -> None:
    assert pull_all(get_decoder(coding), encode(coding, b""), [1]) == b""


# --------------------------------------------------------------------------
# Decompression bombs: bounded output per call, bounded memory.


@pytest.fixture(scope="module")
def deflated_zeros() -> tuple[bytes, int, int, int]:
    """64 MiB of zeros as raw deflate, with their CRC-32 and Adler-32."""
    zeros = bytes(MiB)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [compressor.compress(zeros) for _ in range(64)]
    crc, adler = 0, 1
    for _ in range(64):
        crc = zlib.crc32(zeros, crc)
        adler = zlib.adler32(zeros, adler)
    return b"".join([*parts, compressor.flush()]), 64 * MiB, crc, adler


def gzip_wrap(raw: bytes, size: int, crc: int) -> bytes:
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    return header + raw + struct.pack("<II", crc, size & 0xFFFFFFFF)


def brotli_zeros(size: int) -> bytes:
    compressor = brotli.Compressor(quality=5)
    zeros = bytes(MiB)
    parts = [compressor.process(zeros) for _ in range(size // MiB)]
    return b"".join([*parts, compressor.finish()])


def pull_bomb(coding: str, body: bytes, limit: int = 65536) -> tuple[int, int]:
    """Stream ``body`` like a response reader; return (decoded size, peak)."""
    decoder = get_decoder(coding)
    total = pos = 0
    tracemalloc.start()
    try:
        while True:
            if decoder.needs_input:
                piece = body[pos : pos + 16384]
                pos += len(piece)
                if not piece:
                    break
            else:
                piece = b""
            chunk = decoder.decompress(piece, limit)
            assert len(chunk) <= limit
            assert chunk.count(0) == len(chunk)
            total += len(chunk)
        total += len(decoder.flush())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return total, peak


def test_gzip_bomb_1gib(deflated_zeros: tuple[bytes, int, int, int]) -> None:
    raw, size, crc, _ = deflated_zeros
    body = gzip_wrap(raw, size, crc) * 16  # 16 members of 64 MiB: 1 GiB
    assert len(body) < 2 * MiB
    total, peak = pull_bomb("gzip", body)
    assert total == 1024 * MiB
    assert peak < MiB


@pytest.mark.parametrize(
    ("coding", "build"),
    [
        ("deflate", lambda raw, size, crc, adler: b"\x78\xda" + raw + adler),
        ("deflate", lambda raw, size, crc, adler: raw),
        ("br", lambda raw, size, crc, adler: brotli_zeros(size)),
        (
            "gzip, br",
            lambda raw, size, crc, adler: brotli.compress(gzip_wrap(raw, size, crc)),
        ),
    ],
    ids=["zlib", "raw-deflate", "br", "gzip+br"],
)
def test_bombs_other_codings(
    deflated_zeros: tuple[bytes, int, int, int],
    coding: str,
    build: Callable[[bytes, int, int, bytes], bytes],
) -> None:
    raw, size, crc, adler = deflated_zeros
    body = build(raw, size, crc, struct.pack(">I", adler))
    assert len(body) < MiB
    total, peak = pull_bomb(coding, body)
    assert total == size
    assert peak < MiB


@ON_EACH_ZSTD
@pytest.mark.parametrize("cuts", [1, 2, 64])
def test_zstd_bomb(zstd_backend: Any, cuts: int) -> None:
    # 64 MiB of zeros in one frame, two, or 64 frames of 1 MiB.
    body = zstd_frames(bytes(64 * MiB), cuts=cuts)
    assert len(body) < MiB
    total, peak = pull_bomb("zstd", body)
    assert total == 64 * MiB
    assert peak < MiB


def test_bomb_fed_at_once_is_still_pulled_in_bounds() -> None:
    decoder = get_decoder("gzip")
    body = gzip.compress(bytes(8 * MiB), compresslevel=9)
    tracemalloc.start()
    try:
        first = decoder.decompress(body, 4096)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert first == bytes(4096)
    assert peak < MiB
    assert not decoder.needs_input


# --------------------------------------------------------------------------
# gzip


def test_gzip_concatenated_members() -> None:
    body = gzip.compress(b"one ") + gzip.compress(b"two ") + gzip.compress(b"three")
    assert pull_all(get_decoder("gzip"), body, [5], [3]) == b"one two three"


@pytest.mark.parametrize("sizes", [[1], [3], [10_000]])
def test_gzip_zero_padding(sizes: list[int]) -> None:
    body = gzip.compress(b"one") + bytes(5) + gzip.compress(b"two") + bytes(700)
    assert pull_all(get_decoder("gzip"), body, sizes, [2]) == b"onetwo"


@pytest.mark.parametrize("junk", [b"junk", b"\n", b"\x1f"])
def test_gzip_junk_after_member_ignored(junk: bytes) -> None:
    body = gzip.compress(b"data") + junk + gzip.compress(b"more")
    assert pull_all(get_decoder("gzip"), body, [3]) == b"data"


@pytest.mark.parametrize("sizes", [[1], [3], [10_000]])
def test_gzip_corrupt_later_member_raises_however_sliced(sizes: list[int]) -> None:
    # Bytes that start like a member are a member: a broken one is an error,
    # whatever the slicing (ignoring it would depend on where zlib noticed).
    body = gzip.compress(b"data") + b"\x1f\x8b\x09 not gzip"
    with pytest.raises(DecodeError):
        pull_all(get_decoder("gzip"), body, sizes, [1])


def test_x_gzip_alias() -> None:
    body = gzip.compress(b"alias")
    assert pull_all(get_decoder("x-gzip"), body) == b"alias"


def test_gzip_garbage_raises_at_decompress() -> None:
    with pytest.raises(DecodeError, match="gzip") as info:
        get_decoder("gzip").decompress(b"this is not gzip at all", 100)
    assert isinstance(info.value.__cause__, zlib.error)


def test_gzip_bad_crc_raises() -> None:
    body = bytearray(gzip.compress(b"payload" * 100))
    body[-6] ^= 0xFF  # inside the CRC-32 trailer
    decoder = get_decoder("gzip")
    with pytest.raises(DecodeError) as info:
        pull_all(decoder, bytes(body))
    assert isinstance(info.value.__cause__, zlib.error)


@pytest.mark.parametrize("cut", [1, 5, 20, 8])
def test_gzip_truncated_raises_at_flush(cut: int) -> None:
    body = gzip.compress(b"payload" * 100)
    decoder = get_decoder("gzip")
    decoder.decompress(body[:-cut])
    with pytest.raises(DecodeError, match="ended in the middle"):
        decoder.flush()


def test_gzip_truncated_second_member_raises() -> None:
    second = gzip.compress(b"second")
    body = gzip.compress(b"first") + second[: len(second) // 2]
    decoder = get_decoder("gzip")
    assert decoder.decompress(body).startswith(b"first")
    with pytest.raises(DecodeError, match="middle of a member"):
        decoder.flush()


# --------------------------------------------------------------------------
# deflate


@pytest.mark.parametrize("wrap", [zlib.compress, raw_deflate], ids=["zlib", "raw"])
def test_deflate_both_shapes(wrap: Callable[[bytes], bytes]) -> None:
    body = wrap(b"deflated " * 300)
    assert pull_all(get_decoder("deflate"), body, [1], [7]) == b"deflated " * 300


def test_deflate_trailing_data_ignored() -> None:
    body = zlib.compress(b"payload") + b"trailing junk"
    assert pull_all(get_decoder("deflate"), body, [4], [3]) == b"payload"


@pytest.mark.parametrize("body", [b"\x78", zlib.compress(b"payload" * 50)[:-3]])
def test_deflate_truncated_raises_at_flush(body: bytes) -> None:
    decoder = get_decoder("deflate")
    decoder.decompress(body)
    with pytest.raises(DecodeError, match="deflate"):
        decoder.flush()


def test_deflate_corrupt_raises() -> None:
    body = bytearray(zlib.compress(b"payload" * 100))
    body[-2] ^= 0xFF  # inside the Adler-32 trailer
    with pytest.raises(DecodeError) as info:
        pull_all(get_decoder("deflate"), bytes(body))
    assert isinstance(info.value.__cause__, zlib.error)


# --------------------------------------------------------------------------
# br


def test_br_truncated_raises_at_flush() -> None:
    body = brotli.compress(bytes(range(256)) * 100)
    decoder = get_decoder("br")
    decoder.decompress(body[:-5])
    with pytest.raises(DecodeError, match="br"):
        decoder.flush()


def test_br_garbage_raises() -> None:
    with pytest.raises(DecodeError) as info:
        pull_all(get_decoder("br"), b"\xff\xff\xff\xff not brotli")
    assert isinstance(info.value.__cause__, brotli.error)


def test_br_data_after_end_raises() -> None:
    body = brotli.compress(b"payload") + b"more"
    with pytest.raises(DecodeError, match="after the end"):
        pull_all(get_decoder("br"), body, [len(body) - 4, 4])


# --------------------------------------------------------------------------
# zstd: each case with each library (the zstd_backend fixture)

ZSTD_EMPTY_FRAME = bytes.fromhex("28b52ffd2000010000")


def skippable(payload: bytes, nibble: int = 0) -> bytes:
    return struct.pack("<II", 0x184D2A50 | nibble, len(payload)) + payload


@ON_EACH_ZSTD
def test_zstd_backend_is_the_one_asked_for(zstd_backend: Any) -> None:
    # Otherwise the cases below could test one library twice.
    expected = "_ZstdBlockDecoder" if zstd_backend is zstandard else "_ZstdDecoder"
    decoder = get_decoder("zstd")
    assert type(decoder).__name__ == expected
    if expected == "_ZstdDecoder":
        assert decoder._errors is zstd_backend.ZstdError  # type: ignore[attr-defined]


@ON_EACH_ZSTD
def test_zstd_multiple_frames_with_checksums(zstd_backend: Any) -> None:
    body = zstd_frames(b"abcdefgh" * 50_000, cuts=3, check=True)
    assert pull_all(get_decoder("zstd"), body, [100], [5000]) == b"abcdefgh" * 50_000


@ON_EACH_ZSTD
@pytest.mark.parametrize("sizes", [[1], [2], [100]])
def test_zstd_skippable_frames(zstd_backend: Any, sizes: list[int]) -> None:
    frame = zstd_frames(b"payload")
    body = (
        skippable(b"meta")
        + frame
        + skippable(b"", nibble=0xF)
        + ZSTD_EMPTY_FRAME
        + skippable(b"x" * 50, nibble=3)
        + frame
    )
    assert pull_all(get_decoder("zstd"), body, sizes, [3]) == b"payloadpayload"


@ON_EACH_ZSTD
def test_zstd_fed_and_pulled_a_byte_at_a_time(zstd_backend: Any) -> None:
    # A call that fills max_length cannot tell whether more output is
    # pending; the next call may return nothing, and that is not the end of
    # the output (hypothesis found this one).
    data = bytes(10) + b"\x01" + bytes(5)
    body = zstd_frames(data, level=1)
    assert pull_all(get_decoder("zstd"), body, [1], [1]) == data


@ON_EACH_ZSTD
@pytest.mark.parametrize("limit", [1, 7, 100, 4096])
def test_zstd_many_frames_fed_at_once(zstd_backend: Any, limit: int) -> None:
    # Frames of `limit` bytes, so that many end exactly where a call's room
    # does, with the next frames already handed over: the library keeps
    # those in unused_data, which must not be lost or repeated.
    pieces = [bytes([n % 256]) * limit for n in range(40)]
    frames = [zstd_frames(p) + skippable(b"s" * (n % 3)) for n, p in enumerate(pieces)]
    body = b"".join(frames)
    assert pull_all(get_decoder("zstd"), body, [len(body)], [limit]) == b"".join(pieces)


@ON_EACH_ZSTD
@pytest.mark.parametrize("cut", [1, 2, 4, 7, 30])
def test_zstd_truncated_raises_at_flush(zstd_backend: Any, cut: int) -> None:
    body = zstd_frames(bytes(range(256)) * 40, check=True)
    decoder = get_decoder("zstd")
    decoder.decompress(body[:-cut])
    with pytest.raises(DecodeError, match="zstd"):
        decoder.flush()


@ON_EACH_ZSTD
@pytest.mark.parametrize("keep", [1, 3, 5, 6, 8])
def test_zstd_truncated_header_raises_at_flush(zstd_backend: Any, keep: int) -> None:
    body = skippable(b"abc") if keep == 8 else zstd_frames(b"x" * 100)
    decoder = get_decoder("zstd")
    assert decoder.decompress(body[:keep]) == b""
    with pytest.raises(DecodeError, match="zstd"):
        decoder.flush()


@ON_EACH_ZSTD
def test_zstd_not_a_frame(zstd_backend: Any) -> None:
    with pytest.raises(DecodeError, match="not a zstd frame"):
        get_decoder("zstd").decompress(b"PK\x03\x04 zip file")


@ON_EACH_ZSTD
def test_zstd_garbage_after_frame(zstd_backend: Any) -> None:
    with pytest.raises(DecodeError, match="not a zstd frame"):
        pull_all(get_decoder("zstd"), zstd_frames(b"ok") + b"trailing junk")


@ON_EACH_ZSTD
def test_zstd_short_garbage_after_frame(zstd_backend: Any) -> None:
    with pytest.raises(DecodeError, match="zstd"):
        pull_all(get_decoder("zstd"), zstd_frames(b"ok") + b"PK")


def block_header(last: int, kind: int, size: int) -> bytes:
    return (size << 3 | kind << 1 | last).to_bytes(3, "little")


@ON_EACH_ZSTD
@pytest.mark.parametrize(
    "header", [block_header(1, 3, 10), block_header(1, 1, 128 * 1024 + 1)]
)
def test_zstd_invalid_block_header(zstd_backend: Any, header: bytes) -> None:
    frame_header = bytes.fromhex("28b52ffd0058")  # not single segment, no size
    # The frame walker names the problem; the libraries have words of their own.
    message = "invalid block header" if zstd_backend is zstandard else "zstd body"
    with pytest.raises(DecodeError, match=message) as info:
        get_decoder("zstd").decompress(frame_header + header + b"\0" * 10)
    if zstd_backend is not zstandard:
        assert isinstance(info.value.__cause__, zstd_backend.ZstdError)


@ON_EACH_ZSTD
def test_zstd_corrupt_checksum_raises(zstd_backend: Any) -> None:
    body = bytearray(zstd_frames(b"payload" * 100, check=True))
    body[-1] ^= 0xFF
    with pytest.raises(DecodeError) as info:
        pull_all(get_decoder("zstd"), bytes(body))
    assert isinstance(info.value.__cause__, zstd_backend.ZstdError)


def test_zstd_prefers_the_stdlib_module(monkeypatch: pytest.MonkeyPatch) -> None:
    # Python 3.14's compression.zstd comes first, before backports.zstd and
    # zstandard: here it is the real library of ZSTD_BACKENDS[0] under that
    # name, counting the decompressors made.
    real = importlib.import_module(ZSTD_BACKENDS[0])
    made: list[object] = []

    def decompressor() -> object:
        made.append(real.ZstdDecompressor())
        return made[-1]

    stdlib = types.ModuleType("compression.zstd")
    stdlib.ZstdDecompressor = decompressor  # type: ignore[attr-defined]
    stdlib.ZstdError = real.ZstdError  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "compression.zstd", stdlib)
    body = zstd_frames(b"from the stdlib" * 100, cuts=2)
    assert pull_all(get_decoder("zstd"), body, [10], [100]) == b"from the stdlib" * 100
    assert len(made) == 2


class LyingFrame:
    """zstandard's decompressobj, but it never admits that the frame ended."""

    eof = False

    def __init__(self) -> None:
        self._obj = zstandard.ZstdDecompressor().decompressobj()

    def decompress(self, data: bytes) -> bytes:
        return bytes(self._obj.decompress(data))


def test_zstd_frame_that_does_not_end_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    # The frame walker checks the library agrees on where each frame ends.
    lying = types.ModuleType("zstandard")
    lying.ZstdDecompressor = lambda: types.SimpleNamespace(  # type: ignore[attr-defined]
        decompressobj=LyingFrame
    )
    lying.ZstdError = zstandard.ZstdError  # type: ignore[attr-defined]
    for name in ("compression.zstd", "backports.zstd"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "zstandard", lying)
    with pytest.raises(DecodeError, match="did not end"):
        get_decoder("zstd").decompress(zstd_frames(b"abc"))


# --------------------------------------------------------------------------
# Missing optional modules.


@pytest.fixture
def no_brotli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "brotli", None)


@pytest.fixture
def no_zstd(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ZSTD_PREFERENCE:
        monkeypatch.setitem(sys.modules, name, None)


@pytest.mark.usefixtures("no_brotli")
@pytest.mark.parametrize("coding", ["br", "gzip, br", "br, gzip"])
def test_missing_brotli(coding: str) -> None:
    decoder = get_decoder(coding)
    assert decoder.needs_input
    with pytest.raises(DecodeError, match=r"trio-pool\[brotli\]"):
        decoder.decompress(encode_chain(["br", "gzip"], b"x"), 10)


@pytest.mark.usefixtures("no_brotli")
def test_missing_brotli_empty_body_is_fine() -> None:
    decoder = get_decoder("br")
    assert decoder.decompress(b"") == b""
    assert decoder.flush() == b""


def test_old_brotli_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    old = types.ModuleType("brotli")
    old.Decompressor = type("Decompressor", (), {})  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "brotli", old)
    with pytest.raises(DecodeError, match=r"trio-pool\[brotli\]"):
        get_decoder("br").decompress(b"\x0b")


@pytest.mark.usefixtures("no_zstd")
def test_missing_zstd() -> None:
    decoder = get_decoder("zstd")
    with pytest.raises(DecodeError, match=r"trio-pool\[zstd\]"):
        decoder.decompress(ZSTD_EMPTY_FRAME)


# --------------------------------------------------------------------------
# get_decoder parsing, identity and pass-through.


@pytest.mark.parametrize(
    "header", ["GZIP", " gzip ", "gzip, identity", "identity,gzip", "x-GZip"]
)
def test_header_parsing(header: str) -> None:
    body = gzip.compress(b"case")
    assert pull_all(get_decoder(header), body) == b"case"


def test_stacked_order() -> None:
    # "gzip, br": gzip was applied first, so br is undone first.
    body = brotli.compress(gzip.compress(b"layered"))
    assert pull_all(get_decoder("gzip, br"), body, [3], [2]) == b"layered"
    with pytest.raises(DecodeError):
        pull_all(get_decoder("br, gzip"), body)


@pytest.mark.parametrize("header", ["", "identity", " , ", "compress", "gzip, foo"])
def test_unknown_or_no_coding_passes_through(header: str) -> None:
    decoder = get_decoder(header)
    body = gzip.compress(b"left alone")
    assert pull_all(decoder, body, [7], [5]) == body


def test_too_many_codings() -> None:
    decoder = get_decoder("gzip, " * 5 + "gzip")
    with pytest.raises(DecodeError, match="Too many content codings"):
        decoder.decompress(encode_chain(["gzip"] * 6, b"x"))
    five = encode_chain(["gzip"] * 5, b"five")
    assert pull_all(get_decoder(", ".join(["gzip"] * 5)), five) == b"five"


def test_identity_passes_through_without_copying() -> None:
    decoder = get_decoder("identity")
    data = b"x" * 100
    assert decoder.decompress(data) is data
    assert decoder.decompress(data, 100) is data
    assert decoder.needs_input


def test_identity_bounded() -> None:
    decoder = get_decoder("")
    assert decoder.decompress(b"abcdef", 4) == b"abcd"
    assert not decoder.needs_input
    assert decoder.decompress(b"gh", 3) == b"efg"
    assert decoder.flush() == b"h"
    assert decoder.needs_input


@pytest.mark.parametrize(
    ("coding", "zstd_backend"), each_zstd_backend(CODINGS), indirect=["zstd_backend"]
)
def test_garbage_is_a_decode_error(coding: str, zstd_backend: Any) -> None:
    body = b"\xff\xfe" * 20 + encode(coding, b"fine")
    with pytest.raises(DecodeError):
        pull_all(get_decoder(coding), body)


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_needs_input_tracks_pending_output() -> None:
    decoder = get_decoder("gzip")
    body = gzip.compress(bytes(100_000))
    outputs: list[Any] = []
    for piece in _chunks(body, 10):
        outputs.append(decoder.decompress(piece, 1000))
        while not decoder.needs_input:
            outputs.append(decoder.decompress(b"", 1000))
    assert b"".join(outputs) == bytes(100_000)
    assert max(map(len, outputs)) == 1000
    assert decoder.flush() == b""
