"""A server connection fed one frame at a time: each flood ends it within a bounded number of frames.

No socket: a fake transport collects what the connection writes, so the tests
count exactly how many attacker frames were handled before GOAWAY.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from grpcmesh.sidecar.h2 import frames as f
from grpcmesh.sidecar.h2.connection import Headers, Stream
from grpcmesh.sidecar.h2.frames import ErrorCode, Flag, FrameType
from grpcmesh.sidecar.h2.hpack_out import encode_int
from grpcmesh.sidecar.h2.limits import H2Limits
from grpcmesh.sidecar.h2.server import H2Server, ServerConnection
from tests.support.h2wire import FakeTransport, goaway_code, request_block

LIMITS = H2Limits(refill_per_s=0.0)  # budgets exactly as configured: no refill while the test runs


class Sink:
    """A stream owner that keeps nothing (the relay's place)."""

    def on_headers(self, stream: Stream, headers: Headers, end_stream: bool) -> None:
        pass

    def on_data(self, stream: Stream, data: bytes, end_stream: bool) -> None:
        stream.consumed(len(data))

    def on_reset(self, stream: Stream, code: int) -> None:
        pass


def accept(stream: Stream, headers: Headers, end_stream: bool) -> None:
    stream.owner = Sink()


def connect(limits: H2Limits = LIMITS) -> tuple[ServerConnection, FakeTransport]:
    conn = ServerConnection(accept, H2Server(accept, limits))
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    conn.data_received(f.PREFACE + f.settings({}))
    return conn, transport


def frames_until_closed(conn: ServerConnection, make: Callable[[int], bytes], most: int) -> int:
    """Feeds ``make(i)`` for i = 0.. until the connection closes; returns how many were fed."""
    for i in range(most):
        conn.data_received(make(i))
        if conn.closed:
            return i + 1
    raise AssertionError(f"still open after {most} frames")


def headers(sid: int, end_stream: bool = False, block: bytes | None = None) -> bytes:
    flags = Flag.END_HEADERS | (Flag.END_STREAM if end_stream else 0)
    return f.frame(FrameType.HEADERS, flags, sid, request_block() if block is None else block)


async def test_rapid_reset_ends_the_connection_after_the_reset_budget() -> None:
    conn, transport = connect()
    fed = frames_until_closed(
        conn,
        lambda i: headers(2 * i + 1) + f.rst_stream(2 * i + 1, ErrorCode.CANCEL),
        10 * LIMITS.reset_burst,
    )
    assert fed == LIMITS.reset_burst + 1
    assert goaway_code(transport.frames()) == ErrorCode.ENHANCE_YOUR_CALM


async def test_completed_streams_refund_the_reset_budget() -> None:
    """Half the streams cancelled (hedging), half completed: never cut off."""
    conn, _ = connect()
    for i in range(3 * LIMITS.reset_burst):
        sid = 2 * i + 1
        if i % 2:
            conn.data_received(headers(sid) + f.rst_stream(sid, ErrorCode.CANCEL))
        else:
            conn.data_received(headers(sid, end_stream=True))
            conn.streams[sid].send_headers([(":status", "200"), ("grpc-status", "0")], True)
    assert not conn.closed


@pytest.mark.parametrize(
    ("make", "burst"),
    [
        (lambda i: f.frame(FrameType.PING, 0, 0, i.to_bytes(8, "big")), LIMITS.ping_burst),
        (lambda i: f.settings({f.Setting.ENABLE_PUSH: 0}), LIMITS.settings_burst),
        (lambda i: f.window_update(0, 1), LIMITS.idle_frame_burst),
        (lambda i: f.frame(FrameType.PRIORITY, 0, 1, b"\x00\x00\x00\x00\x10"), LIMITS.idle_frame_burst),
        (lambda i: f.frame(0x42, 0, 0, b"x"), LIMITS.idle_frame_burst),
    ],
    ids=["ping", "settings", "window_update", "priority", "unknown"],
)
async def test_control_frame_floods_end_the_connection(make: Callable[[int], bytes], burst: int) -> None:
    conn, transport = connect()
    assert (
        burst <= frames_until_closed(conn, make, 10 * burst) <= burst + 1
    )  # (the preface's SETTINGS counts)
    assert goaway_code(transport.frames()) == ErrorCode.ENHANCE_YOUR_CALM


async def test_empty_data_flood_ends_the_connection() -> None:
    conn, transport = connect()
    conn.data_received(headers(1))
    fed = frames_until_closed(conn, lambda i: f.frame(FrameType.DATA, 0, 1), 10 * LIMITS.idle_frame_burst)
    assert fed == LIMITS.idle_frame_burst + 1
    assert goaway_code(transport.frames()) == ErrorCode.ENHANCE_YOUR_CALM


async def test_continuation_flood_is_cut_by_frame_count() -> None:
    conn, transport = connect()
    conn.data_received(f.frame(FrameType.HEADERS, 0, 1, request_block()))
    fed = frames_until_closed(conn, lambda i: f.frame(FrameType.CONTINUATION, 0, 1, b"\x00"), 100_000)
    assert fed <= LIMITS.max_header_list_bytes // f.MAX_FRAME + 16
    assert goaway_code(transport.frames()) == ErrorCode.ENHANCE_YOUR_CALM


async def test_continuation_flood_is_cut_by_bytes() -> None:
    limits = H2Limits(max_header_list_bytes=64 * 1024, max_header_bytes_per_connection=64 * 1024)
    conn, transport = connect(limits)
    conn.data_received(f.frame(FrameType.HEADERS, 0, 1, request_block()))
    chunk = b"\x00" * f.MAX_FRAME
    fed = frames_until_closed(conn, lambda i: f.frame(FrameType.CONTINUATION, 0, 1, chunk), 1000)
    assert fed <= 64 * 1024 // f.MAX_FRAME + 1
    assert goaway_code(transport.frames()) == ErrorCode.ENHANCE_YOUR_CALM


async def test_hpack_bomb_is_cut_while_decoding() -> None:
    """One 4 KiB table entry referenced over and over: cut at the list limit, not after."""
    conn, transport = connect(
        H2Limits(max_header_list_bytes=1 << 20, max_header_bytes_per_connection=1 << 20)
    )
    value = b"v" * 4000
    literal = b"\x40\x05x-big" + encode_int(len(value), 7, 0) + value  # literal, incremental indexing
    bomb = literal + b"\xbe" * 3000  # index 62 (the new entry) 3000 times: 12 MB decoded
    conn.data_received(headers(1, block=request_block() + bomb))
    assert conn.closed
    assert goaway_code(transport.frames()) == ErrorCode.ENHANCE_YOUR_CALM


async def test_streams_over_the_limit_are_refused() -> None:
    conn, transport = connect(H2Limits(max_concurrent_streams=3))
    for sid in (1, 3, 5, 7):
        conn.data_received(headers(sid))
    await asyncio.sleep(0)  # the connection writes once per loop iteration
    resets = [(sid, f.u32(p)) for kind, _, sid, p in transport.frames() if kind == FrameType.RST_STREAM]
    assert resets == [(7, ErrorCode.REFUSED_STREAM)]
    assert sorted(conn.streams) == [1, 3, 5]
    conn.data_received(f.rst_stream(1, ErrorCode.CANCEL) + headers(9))
    assert sorted(conn.streams) == [3, 5, 9]  # a slot freed is a slot to use
    assert not conn.closed


async def test_header_bytes_per_connection_are_bounded() -> None:
    limits = H2Limits(max_header_list_bytes=16 * 1024, max_header_bytes_per_connection=40 * 1024)
    conn, transport = connect(limits)
    big = request_block([("x-big", "v" * 12_000)])
    for sid in (1, 3, 5, 7):
        conn.data_received(headers(sid, block=big))
    await asyncio.sleep(0)  # the connection writes once per loop iteration
    resets = [(sid, f.u32(p)) for kind, _, sid, p in transport.frames() if kind == FrameType.RST_STREAM]
    assert resets == [(7, ErrorCode.ENHANCE_YOUR_CALM)]
    conn.data_received(f.rst_stream(1, ErrorCode.CANCEL))
    conn.data_received(headers(9, block=big))
    assert sorted(conn.streams) == [3, 5, 9]
