"""The HTTP/2 engine's two shortcuts, each checked against the slow path it
replaces: TLS records drained in one reader pass, and header blocks that
decode the same every time remembered (trio_pool/_http2.py)."""

from __future__ import annotations

import ssl
from typing import Any

import hpack
import pytest
import trio
import trio.testing
import trustme

from trio_pool._http2 import _RepeatingDecoder, _RepeatingEncoder, _tls_drain


async def _tls_pair(
    ca: trustme.CA,
) -> tuple[trio.SSLStream[Any], trio.SSLStream[Any]]:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    left, right = trio.testing.memory_stream_pair()
    client = trio.SSLStream(left, client_ctx, server_hostname="localhost")
    server = trio.SSLStream(right, server_ctx, server_side=True)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.do_handshake)
        nursery.start_soon(server.do_handshake)
    return client, server


async def test_drain_takes_every_record_already_received() -> None:
    client, server = await _tls_pair(trustme.CA())
    drain = _tls_drain(client)
    # If trio renames what the drain reads, this fails instead of the
    # engine silently paying a run-loop pass per record again.
    assert drain is not None
    pieces = [bytes([n]) * (100 + n) for n in range(8)]
    for piece in pieces:  # one TLS record each
        await server.send_all(piece)
    first = await client.receive_some(65536)
    assert first == pieces[0]  # trio returns one record per call...
    assert drain(first) == b"".join(pieces)  # ...the drain takes the rest
    # The stream is still in step: later data, then the end, as usual.
    await server.send_all(b"later")
    assert drain(await client.receive_some(65536)) == b"later"
    await server.aclose()
    assert await client.receive_some(65536) == b""


async def test_drain_stops_at_close_notify_and_leaves_it_to_trio() -> None:
    client, server = await _tls_pair(trustme.CA())
    drain = _tls_drain(client)
    assert drain is not None
    await server.send_all(b"one")
    await server.send_all(b"two")
    await server.aclose()  # close_notify right behind the two records
    assert drain(await client.receive_some(65536)) == b"onetwo"
    assert await client.receive_some(65536) == b""


async def test_no_drain_without_tls() -> None:
    left, _ = trio.testing.memory_stream_pair()
    assert _tls_drain(left) is None


def _blocks(
    encoder: hpack.Encoder, header_sets: list[list[tuple[bytes, bytes]]]
) -> list[bytes]:
    return [encoder.encode(headers) for headers in header_sets]


RESPONSE = [(b":status", b"200"), (b"server", b"nginx"), (b"content-length", b"10")]
OTHER = [(b":status", b"404"), (b"x-thing", b"a value")]


def test_empty_table_blocks_are_remembered_and_decode_the_same() -> None:
    encoder = hpack.Encoder()
    encoder.header_table_size = 0  # as nginx: the first block says so
    blocks = _blocks(encoder, [RESPONSE, RESPONSE, OTHER, RESPONSE, OTHER])
    stock, mine = hpack.Decoder(), _RepeatingDecoder()
    for block in blocks:
        assert list(mine.decode(block, raw=True)) == list(stock.decode(block, raw=True))
    # The first block changed the table size: not remembered. The others
    # left the (empty) table as it was: two distinct blocks remembered.
    assert len(mine._seen) == 2
    assert mine.header_table.maxsize == stock.header_table.maxsize == 0


def test_blocks_that_use_the_dynamic_table_are_always_decoded() -> None:
    encoder = hpack.Encoder()  # indexes what it sends
    a, b = [(b"x-a", b"1")], [(b"x-b", b"2")]
    # x-a added, x-a by index 62, x-b added (now entry 62), x-b by index 62.
    blocks = _blocks(encoder, [a, a, b, b])
    assert blocks[1] == blocks[3]  # the same bytes, meaning different headers
    stock, mine = hpack.Decoder(), _RepeatingDecoder()
    for block, expected in zip(blocks, [a, a, b, b], strict=True):
        assert list(stock.decode(block, raw=True)) == expected
        assert list(mine.decode(block, raw=True)) == expected
    assert not mine._seen


def _empty_table_block() -> tuple[bytes, _RepeatingDecoder]:
    """RESPONSE's block from an encoder whose table is held at size 0 (as
    nginx's), and a decoder set the same way."""
    encoder = hpack.Encoder()
    encoder.header_table_size = 0
    encoder.encode(RESPONSE)
    block = encoder.encode(RESPONSE)
    decoder = _RepeatingDecoder()
    decoder.header_table_size = 0
    return block, decoder


def test_remembered_blocks_still_obey_the_limits_and_errors_repeat() -> None:
    block, decoder = _empty_table_block()
    assert list(decoder.decode(block, raw=True)) == RESPONSE
    assert list(decoder.decode(block, raw=True)) == RESPONSE
    decoder.max_header_list_size = 10
    with pytest.raises(hpack.OversizedHeaderListError):
        decoder.decode(block, raw=True)
    bad = b"\xff\xff\xff\xff"  # an index far beyond both tables
    for _ in range(2):
        with pytest.raises(hpack.HPACKError):
            decoder.decode(bad, raw=True)


def test_callers_cannot_change_what_is_remembered() -> None:
    block, decoder = _empty_table_block()
    first = decoder.decode(block, raw=True)
    first.clear()
    assert list(decoder.decode(block, raw=True)) == RESPONSE


REQUEST = [(b":method", b"GET"), (b":path", b"/"), (b"user-agent", b"trio-pool")]


def test_encoder_gives_hpacks_bytes_for_every_block() -> None:
    secret = hpack.NeverIndexedHeaderTuple(b"authorization", b"Basic eA==")
    plain = hpack.HeaderTuple(b"authorization", b"Basic eA==")
    steps: list[list[tuple[bytes, bytes]] | int] = [
        REQUEST,
        REQUEST,  # all indexed now: remembered
        REQUEST,
        [*REQUEST, (b"x-new", b"1")],  # adds to the table: the others shift
        REQUEST,
        [*REQUEST, secret],
        [*REQUEST, plain],  # equal as tuples, but may be indexed
        [*REQUEST, secret],
        100,  # the server shrinks the table: a size update, entries evicted
        REQUEST,
        REQUEST,
    ]
    stock, mine = hpack.Encoder(), _RepeatingEncoder()
    decoder = hpack.Decoder()
    for step in steps:
        if isinstance(step, int):
            stock.header_table_size = mine.header_table_size = step
            continue
        block = mine.encode(step)
        assert block == stock.encode(step)
        assert list(decoder.decode(block, raw=True)) == [tuple(h) for h in step]
    assert mine._seen  # the repeated lists were answered from memory


def test_encoder_remembers_only_blocks_that_left_the_table_alone() -> None:
    encoder = _RepeatingEncoder()
    encoder.encode(REQUEST)  # adds the entries: not remembered
    assert not encoder._seen
    first = encoder.encode(REQUEST)
    assert len(encoder._seen) == 1 and encoder.encode(REQUEST) == first
    encoder.encode([(b"x-other", b"2")])  # a change: what was kept is stale
    assert encoder.encode(REQUEST) != first  # the indexes moved by one


def test_large_blocks_and_header_lists_are_not_kept() -> None:
    big = [(b":status", b"200"), (b"x-big", b"v" * 2000)]
    encoder = hpack.Encoder()
    encoder.header_table_size = 0
    encoder.encode(big)
    block = encoder.encode(big)
    assert len(block) > _RepeatingDecoder._LARGEST
    decoder = _RepeatingDecoder()
    decoder.header_table_size = 0
    for _ in range(2):
        assert list(decoder.decode(block, raw=True)) == big
    assert not decoder._seen
    mine = _RepeatingEncoder()
    secret = [hpack.NeverIndexedHeaderTuple(b"authorization", b"x" * 3000)]
    for _ in range(2):  # never indexed: the table stays as it was
        mine.encode(secret)
    assert not mine._seen
