"""RFC 9113 §5.1/§6/§8 on the accepting side: what is reset, what is a connection error, what gRPC answers.

Each case is one request (or frame) fed to a server connection over a fake
transport; the test reads back the frames it wrote.
"""

from __future__ import annotations

import asyncio

import pytest

from grpcmesh.sidecar.h2 import frames as f
from grpcmesh.sidecar.h2.frames import ErrorCode, Flag, FrameType
from grpcmesh.sidecar.h2.hpack_in import HeaderDecoder
from grpcmesh.sidecar.h2.hpack_out import HeaderEncoder
from grpcmesh.sidecar.h2.server import ServerConnection
from grpcmesh.sidecar.h2.validate import check_response, check_trailers
from tests.support.h2wire import GRPC_REQUEST, Frame, goaway_code
from tests.unit.dataplane.test_h2_guards import connect, headers

OK = GRPC_REQUEST


def _without(name: str) -> list[tuple[str, str]]:
    return [(k, v) for k, v in OK if k != name]


async def _written(conn: ServerConnection, data: bytes) -> list[Frame]:
    transport = conn.transport
    conn.data_received(data)
    await asyncio.sleep(0)
    return transport.frames()  # type: ignore[union-attr, no-any-return]


def _resets(frames: list[Frame]) -> list[tuple[int, int]]:
    return [(sid, f.u32(p)) for kind, _, sid, p in frames if kind == FrameType.RST_STREAM]


@pytest.mark.parametrize(
    "fields",
    [
        [*OK, ("X-Upper", "1")],  # uppercase name
        [*OK, ("x-bad value", "1")],  # a space in a name
        [*OK, ("x-nl", "a\nb")],  # a newline in a value
        [(":foo", "bar"), *OK],  # an unknown pseudo-header
        [(":status", "200"), *OK],  # a response pseudo-header in a request
        [*OK, (":path", "/late")],  # a pseudo-header after a regular field
        [(":method", "POST"), *OK],  # :method twice
        [*_without(":scheme")],
        [*_without(":path")],
        [(":path", ""), *_without(":path")],
        [*OK, ("connection", "keep-alive")],
        [*OK, ("transfer-encoding", "chunked")],
        [*_without("te"), ("te", "gzip")],
        [*OK, ("content-length", "x")],
    ],
    ids=lambda fields: next((f"{k}={v}"[:30] for k, v in fields if (k, v) not in OK), "missing"),
)
async def test_malformed_requests_are_reset_before_any_handler(fields: list[tuple[str, str]]) -> None:
    conn, _ = connect()
    written = await _written(conn, headers(1, block=HeaderEncoder().encode(fields)))
    assert _resets(written) == [(1, ErrorCode.PROTOCOL_ERROR)]
    assert not conn.closed
    assert not conn.streams


async def test_malformed_field_from_the_dynamic_table_is_still_caught() -> None:
    conn, _ = connect()
    block = HeaderEncoder().encode(OK) + b"\x40\x05X-Bad\x01v"  # literal, incremental indexing
    written = await _written(conn, headers(1, block=block))
    written = await _written(conn, headers(3, block=HeaderEncoder().encode(OK) + b"\xbe"))  # index 62
    assert _resets(written) == [(1, ErrorCode.PROTOCOL_ERROR), (3, ErrorCode.PROTOCOL_ERROR)]


@pytest.mark.parametrize(
    ("fields", "status", "grpc_status"),
    [
        ([*_without("content-type")], "415", "3"),
        ([*_without("content-type"), ("content-type", "application/json")], "415", "3"),
        ([(":method", "GET"), *_without(":method")], "405", "13"),
    ],
)
async def test_requests_grpc_does_not_serve_get_grpc_gos_answer(
    fields: list[tuple[str, str]], status: str, grpc_status: str
) -> None:
    conn, _ = connect()
    written = await _written(conn, headers(1, end_stream=True, block=HeaderEncoder().encode(fields)))
    blocks = [p for kind, _, sid, p in written if kind == FrameType.HEADERS and sid == 1]
    answer = dict(HeaderDecoder().decode(blocks[0]))
    assert (answer[":status"], answer["grpc-status"]) == (status, grpc_status)
    body = [(p, fl) for kind, fl, sid, p in written if kind == FrameType.DATA and sid == 1]
    assert body
    assert body[-1][1] & Flag.END_STREAM
    assert not conn.streams  # answered and closed


async def test_content_length_must_match_the_data() -> None:
    conn, _ = connect()
    block = HeaderEncoder().encode([*OK, ("content-length", "3")])
    written = await _written(
        conn, headers(1, block=block) + f.frame(FrameType.DATA, Flag.END_STREAM, 1, b"ab")
    )
    assert _resets(written) == [(1, ErrorCode.PROTOCOL_ERROR)]


async def test_trailers_must_end_the_stream_and_carry_no_pseudo_headers() -> None:
    conn, _ = connect()
    second = f.frame(FrameType.HEADERS, Flag.END_HEADERS, 1, HeaderEncoder().encode([("x-t", "1")]))
    pseudo = f.frame(
        FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 3, HeaderEncoder().encode([(":path", "/x")])
    )
    written = await _written(conn, headers(1) + second + headers(3) + pseudo)
    assert _resets(written) == [(1, ErrorCode.PROTOCOL_ERROR), (3, ErrorCode.PROTOCOL_ERROR)]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (f.frame(FrameType.PRIORITY, 0, 0, b"\x00" * 5), ErrorCode.PROTOCOL_ERROR),
        (f.frame(FrameType.RST_STREAM, 0, 0, b"\x00" * 4), ErrorCode.PROTOCOL_ERROR),
        (f.frame(FrameType.RST_STREAM, 0, 1, b"\x00" * 3), ErrorCode.FRAME_SIZE_ERROR),
        (f.frame(FrameType.SETTINGS, Flag.ACK, 0, b"\x00" * 6), ErrorCode.FRAME_SIZE_ERROR),
        (f.window_update(0, 0), ErrorCode.PROTOCOL_ERROR),
        (f.frame(FrameType.PING, 0, 1, b"\x00" * 8), ErrorCode.PROTOCOL_ERROR),
        (f.frame(FrameType.DATA, 0, 1, b"x"), ErrorCode.PROTOCOL_ERROR),  # idle stream
        (headers(3) + headers(1), ErrorCode.PROTOCOL_ERROR),  # a lower stream id than before
        (headers(2), ErrorCode.PROTOCOL_ERROR),  # an even stream id from a client
        (
            headers(1, block=HeaderEncoder().encode(OK) + b"\x20"),
            ErrorCode.COMPRESSION_ERROR,
        ),  # late size update
    ],
    ids=[
        "priority-0",
        "rst-0",
        "rst-length",
        "settings-ack-payload",
        "window-update-0",
        "ping-stream",
        "data-idle",
        "lower-id",
        "even-id",
        "size-update-at-end",
    ],
)
async def test_connection_errors_get_goaway_with_the_rfc_code(data: bytes, code: int) -> None:
    conn, transport = connect()
    conn.data_received(data)
    assert conn.closed
    assert goaway_code(transport.frames()) == code


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (headers(1) + f.frame(FrameType.PRIORITY, 0, 1, b"\x00" * 4), ErrorCode.FRAME_SIZE_ERROR),
        (headers(1) + f.window_update(1, 0), ErrorCode.PROTOCOL_ERROR),
        (headers(1, end_stream=True) + f.frame(FrameType.DATA, 0, 1, b"x"), ErrorCode.STREAM_CLOSED),
        (headers(1, end_stream=True) + headers(1, end_stream=True), ErrorCode.STREAM_CLOSED),
    ],
    ids=[
        "priority-length",
        "window-update-0-stream",
        "data-half-closed-remote",
        "headers-half-closed-remote",
    ],
)
async def test_stream_errors_reset_only_the_stream(data: bytes, code: int) -> None:
    conn, transport = connect()
    conn.data_received(data)
    await asyncio.sleep(0)
    assert _resets(transport.frames())[-1] == (1, code)
    assert not conn.closed


def test_connection_specific_fields_are_refused_in_trailers_too() -> None:
    """RFC 9113 §8.2.2 holds for every field block, so the relay never has to strip them itself."""
    assert check_trailers([("grpc-status", "0")]) is None
    assert check_trailers([("grpc-status", "0"), ("connection", "close")]) == (
        "connection-specific field connection in trailers"
    )
    assert check_response([(":status", "200"), ("transfer-encoding", "chunked")]) == (
        "connection-specific field transfer-encoding"
    )
