"""HTTP/2 frame layout (RFC 9113 §4, §6): types, flags, error codes, settings, builders.

Only what a gRPC proxy needs to read and write frames itself (HPACK is in
hpack_in / hpack_out). Builders return ready-to-write ``bytes`` so a
connection can gather a whole batch and hand the transport one buffer.
"""

from __future__ import annotations

import struct
from typing import Final

__all__ = [
    "CONNECTION_WINDOW",
    "DEFAULT_WINDOW",
    "HEADER",
    "MAX_FRAME",
    "PREFACE",
    "ErrorCode",
    "Flag",
    "FrameType",
    "H2Error",
    "Setting",
    "StreamError",
    "data_frames",
    "frame",
    "goaway",
    "header_frames",
    "parse_settings",
    "rst_stream",
    "settings",
    "u32",
    "window_update",
]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADER = struct.Struct(">BHBBL")  # length (24 bit as 8+16), type, flags, R+stream id
_U32 = struct.Struct(">L")
_SETTING = struct.Struct(">HL")

DEFAULT_WINDOW = 65_535
MAX_FRAME = 16_384  # the default SETTINGS_MAX_FRAME_SIZE, which we never raise for receiving
CONNECTION_WINDOW = 16 << 20  # what we grant a peer per connection (credited as data is forwarded)


class FrameType:
    DATA: Final = 0x0
    HEADERS: Final = 0x1
    PRIORITY: Final = 0x2
    RST_STREAM: Final = 0x3
    SETTINGS: Final = 0x4
    PUSH_PROMISE: Final = 0x5
    PING: Final = 0x6
    GOAWAY: Final = 0x7
    WINDOW_UPDATE: Final = 0x8
    CONTINUATION: Final = 0x9


class Flag:
    END_STREAM: Final = 0x1
    ACK: Final = 0x1
    END_HEADERS: Final = 0x4
    PADDED: Final = 0x8
    PRIORITY: Final = 0x20


class ErrorCode:
    NO_ERROR: Final = 0x0
    PROTOCOL_ERROR: Final = 0x1
    INTERNAL_ERROR: Final = 0x2
    FLOW_CONTROL_ERROR: Final = 0x3
    SETTINGS_TIMEOUT: Final = 0x4
    STREAM_CLOSED: Final = 0x5
    FRAME_SIZE_ERROR: Final = 0x6
    REFUSED_STREAM: Final = 0x7
    CANCEL: Final = 0x8
    COMPRESSION_ERROR: Final = 0x9
    CONNECT_ERROR: Final = 0xA
    ENHANCE_YOUR_CALM: Final = 0xB


class Setting:
    HEADER_TABLE_SIZE: Final = 0x1
    ENABLE_PUSH: Final = 0x2
    MAX_CONCURRENT_STREAMS: Final = 0x3
    INITIAL_WINDOW_SIZE: Final = 0x4
    MAX_FRAME_SIZE: Final = 0x5
    MAX_HEADER_LIST_SIZE: Final = 0x6


class H2Error(Exception):
    """A connection error: the connection is answered with GOAWAY(code) and closed."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class StreamError(Exception):
    """A stream error (RFC 9113 §5.4.2): RST_STREAM(code) on that stream; the connection lives on."""

    def __init__(self, stream_id: int, code: int, message: str) -> None:
        super().__init__(message)
        self.stream_id = stream_id
        self.code = code


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    n = len(payload)
    return HEADER.pack(n >> 16, n & 0xFFFF, kind, flags, stream_id) + payload


def data_frames(stream_id: int, payload: bytes, end_stream: bool, max_frame: int) -> bytes:
    """DATA frame(s) for ``payload``, split at the peer's max frame size."""
    flags = Flag.END_STREAM if end_stream else 0
    n = len(payload)
    if n <= max_frame:
        return HEADER.pack(n >> 16, n & 0xFFFF, FrameType.DATA, flags, stream_id) + payload
    parts = []
    for at in range(0, n, max_frame):
        chunk = payload[at : at + max_frame]
        last = at + max_frame >= n
        parts.append(frame(FrameType.DATA, flags if last else 0, stream_id, chunk))
    return b"".join(parts)


def header_frames(stream_id: int, block: bytes, end_stream: bool, max_frame: int) -> bytes:
    """HEADERS (+ CONTINUATION when the block exceeds the peer's max frame size)."""
    flags = Flag.END_STREAM if end_stream else 0
    if len(block) <= max_frame:
        return frame(FrameType.HEADERS, flags | Flag.END_HEADERS, stream_id, block)
    chunks = [block[i : i + max_frame] for i in range(0, len(block), max_frame)]
    out = [frame(FrameType.HEADERS, flags, stream_id, chunks[0])]
    for i, chunk in enumerate(chunks[1:], 2):
        out.append(
            frame(FrameType.CONTINUATION, Flag.END_HEADERS if i == len(chunks) else 0, stream_id, chunk)
        )
    return b"".join(out)


def settings(values: dict[int, int]) -> bytes:
    return frame(FrameType.SETTINGS, 0, 0, b"".join(_SETTING.pack(k, v) for k, v in values.items()))


def parse_settings(payload: bytes) -> list[tuple[int, int]]:
    if len(payload) % 6:
        raise H2Error(ErrorCode.FRAME_SIZE_ERROR, "SETTINGS payload not a multiple of 6")
    return [_SETTING.unpack_from(payload, i) for i in range(0, len(payload), 6)]


def window_update(stream_id: int, increment: int) -> bytes:
    return frame(FrameType.WINDOW_UPDATE, 0, stream_id, _U32.pack(increment))


def rst_stream(stream_id: int, code: int) -> bytes:
    return frame(FrameType.RST_STREAM, 0, stream_id, _U32.pack(code))


def goaway(last_stream_id: int, code: int, debug: bytes = b"") -> bytes:
    return frame(FrameType.GOAWAY, 0, 0, _U32.pack(last_stream_id) + _U32.pack(code) + debug)


def u32(payload: bytes, at: int = 0) -> int:
    value: int = _U32.unpack_from(payload, at)[0]
    return value
