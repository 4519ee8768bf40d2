"""Pure wire logic of the sidecar's data plane: HPACK out, gRPC timeouts, message limits, frames."""

from __future__ import annotations

import hpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from grpcmesh.sidecar.h2 import frames as f
from grpcmesh.sidecar.h2.grpcwire import MessageLimit, format_timeout, parse_timeout, trailers_only
from grpcmesh.sidecar.h2.hpack_in import HeaderDecoder, HeaderListTooLarge, HPACKDecodeError
from grpcmesh.sidecar.h2.hpack_out import HeaderEncoder, encode_int

names = st.sampled_from(
    [":path", ":status", "content-type", "te", "x-request-id", "grpc-timeout", "user-agent", "x-custom-bin"]
) | st.text("abcdefghijklmnopqrstuvwxyz-0123456789", min_size=1, max_size=40)
values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=300)


@given(st.lists(st.tuples(names, values), max_size=30), st.integers(0, 4096))
def test_encoded_headers_decode_to_the_same_list_with_any_decoder(
    headers: list[tuple[str, str]], size: int
) -> None:
    enc = HeaderEncoder()
    dec = hpack.Decoder()
    enc.table_size(size)
    dec.header_table_size = size
    for _ in range(2):  # the second block comes from the cache and must decode the same
        assert dec.decode(enc.encode(headers), raw=False) == headers


@pytest.mark.parametrize(("value", "prefix"), [(0, 5), (30, 5), (31, 5), (1337, 5), (2**20, 7), (127, 7)])
def test_hpack_integers_follow_rfc7541_examples(value: int, prefix: int) -> None:
    raw = encode_int(value, prefix, 0)
    decoded, used = hpack.hpack.decode_integer(raw, prefix)
    assert (decoded, used) == (value, len(raw))
    if (value, prefix) == (1337, 5):
        assert raw == bytes([31, 154, 10])  # RFC 7541 C.1.2


@given(st.floats(min_value=1e-6, max_value=1e9))
def test_timeouts_round_trip_within_a_unit(seconds: float) -> None:
    text = format_timeout(seconds)
    assert len(text) <= 9  # at most 8 digits and a unit
    parsed = parse_timeout(text)
    assert parsed is not None
    assert parsed <= seconds + 1e-6
    assert parsed >= min(seconds, 99_999_999) * 0.999 - 1.0


@pytest.mark.parametrize("text", ["", "5", "S", "-1S", "123456789S", "1.5S", "10x"])
def test_malformed_timeouts_are_ignored(text: str) -> None:
    assert parse_timeout(text) is None


def message(size: int) -> bytes:
    return b"\x00" + size.to_bytes(4, "big") + b"m" * size


@given(st.lists(st.integers(0, 3000), min_size=1, max_size=8), st.integers(1, 97))
def test_message_limit_finds_the_oversized_message_however_frames_split(sizes: list[int], chunk: int) -> None:
    stream = b"".join(message(n) for n in sizes)
    limit = MessageLimit(2000)
    found = 0
    for at in range(0, len(stream), chunk):
        found = found or limit.feed(stream[at : at + chunk])
    first_big = next((n for n in sizes if n > 2000), 0)
    assert found == first_big


@given(st.lists(st.integers(0, 300), min_size=1, max_size=6), st.integers(0, 400))
def test_message_limit_knows_how_much_an_unfinished_message_still_owes(sizes: list[int], cut: int) -> None:
    stream = b"".join(message(n) for n in sizes)
    cut = min(cut, len(stream))
    limit = MessageLimit(1 << 20)
    limit.feed(stream[:cut])
    expected, start = 0, 0
    for n in sizes:
        if start < cut < start + 5:  # inside the 5-byte prefix: the rest of the prefix
            expected = start + 5 - cut
        elif start + 5 <= cut < start + 5 + n:  # inside the body: the rest of the body
            expected = start + 5 + n - cut
        start += 5 + n
    assert limit.missing() == expected


def test_trailers_only_percent_encodes_the_message() -> None:
    headers = dict(trailers_only(__import__("grpc").StatusCode.NOT_FOUND, "no such order: 100%\nid"))
    assert headers["grpc-status"] == "5"
    assert headers["grpc-message"] == "no such order: 100%25%0Aid"


def test_large_data_and_header_blocks_are_split_at_the_peer_max_frame() -> None:
    raw = f.data_frames(3, b"d" * 40_000, True, 16_384)
    sizes, flags, at = [], [], 0
    while at < len(raw):
        hi, lo, kind, flag, sid = f.HEADER.unpack_from(raw, at)
        n = (hi << 16) | lo
        assert (kind, sid) == (f.FrameType.DATA, 3)
        sizes.append(n)
        flags.append(flag)
        at += 9 + n
    assert sizes == [16_384, 16_384, 7_232]
    assert flags == [0, 0, f.Flag.END_STREAM]
    block = f.header_frames(5, b"h" * 20_000, False, 16_384)
    assert block[3] == f.FrameType.HEADERS
    assert block[4] == 0  # no END_HEADERS: a CONTINUATION follows
    assert block[9 + 16_384 + 3] == f.FrameType.CONTINUATION


# RFC 7541 Appendix C.4: three requests on one connection, Huffman-coded, sharing the dynamic table.
RFC_C4 = [
    (
        "828684418cf1e3c2e5f23a6ba0ab90f4ff",
        [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")],
    ),
    (
        "828684be5886a8eb10649cbf",
        [
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "www.example.com"),
            ("cache-control", "no-cache"),
        ],
    ),
    (
        "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf",
        [
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/index.html"),
            (":authority", "www.example.com"),
            ("custom-key", "custom-value"),
        ],
    ),
]


def test_decoder_follows_rfc7541_appendix_c4() -> None:
    dec = HeaderDecoder()
    for hexed, expected in RFC_C4:
        assert dec.decode(bytes.fromhex(hexed)) == expected


sensitive = st.booleans()


@given(st.lists(st.tuples(names, st.text(st.characters(max_codepoint=0xFF), max_size=200)), max_size=20))
def test_any_header_octets_pass_through_unchanged(headers: list[tuple[str, str]]) -> None:
    """Latin-1 both ways: whatever octets a peer sent are the octets sent onward."""
    assert HeaderDecoder().decode(HeaderEncoder().encode(headers)) == headers


@given(
    st.lists(st.lists(st.tuples(names, values, sensitive), max_size=12), min_size=1, max_size=12),
    st.booleans(),
    st.sampled_from([4096, 256, 64, 0]),
)
def test_decoder_reads_what_the_hpack_library_encodes_block_after_block(
    blocks: list[list[tuple[str, str, bool]]], huffman: bool, table: int
) -> None:
    """The peer's encoder indexes, evicts and resizes its table; ours must stay in step."""
    enc = hpack.Encoder()
    enc.header_table_size = table
    dec = HeaderDecoder()
    for block in blocks:
        fields = [hpack.NeverIndexedHeaderTuple(n, v) if s else (n, v) for n, v, s in block]
        assert dec.decode(enc.encode(fields, huffman=huffman)) == [(n, v) for n, v, _ in block]


@pytest.mark.parametrize(
    "raw",
    [
        b"\xbf",  # indexed field 63: the dynamic table is empty
        b"\x80",  # index 0
        b"\x3f\xe1\x7f",  # table size update far beyond 4096
        b"\x40\x85abc",  # name literal longer than the block
        b"\xff\xff\xff\xff\xff\xff\xff",  # unterminated integer
    ],
)
def test_malformed_blocks_raise_a_decode_error(raw: bytes) -> None:
    with pytest.raises(HPACKDecodeError):
        HeaderDecoder().decode(raw)


def test_header_list_limit_is_grpc_gos_by_default() -> None:
    """70 KB of metadata passes (grpc-go accepts 16 MiB); a list over the set limit does not."""
    block = HeaderEncoder().encode([("x-big", "v" * 70_000)])
    assert HeaderDecoder().decode(block) == [("x-big", "v" * 70_000)]
    with pytest.raises(HeaderListTooLarge):
        HeaderDecoder(max_header_list=64 * 1024).decode(block)
