"""Raw HTTP/2 for tests that play a hostile peer: frames built and parsed by hand, two ways to send.

``FakeTransport`` lets a unit test feed a :class:`ServerConnection` one frame at
a time (and count the frames until it gives up); ``RawClient`` is a blocking
socket peer for integration tests against a real sidecar process.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from typing import Any

from grpcmesh.sidecar.h2 import frames as f
from grpcmesh.sidecar.h2.hpack_out import HeaderEncoder

__all__ = ["FakeTransport", "Frame", "RawClient", "parse_frames", "request_block", "rss_bytes"]

Frame = tuple[int, int, int, bytes]  # type, flags, stream id, payload
_PING = f.FrameType.PING
GRPC_REQUEST = [
    (":method", "POST"),
    (":scheme", "http"),
    (":path", "/echo.v1.Echo/Ping"),
    (":authority", "echo"),
    ("content-type", "application/grpc"),
    ("te", "trailers"),
]


def request_block(
    extra: list[tuple[str, str]] | None = None, base: list[tuple[str, str]] | None = None
) -> bytes:
    """An HPACK block (no dynamic table) for a gRPC request, plus ``extra`` fields."""
    return HeaderEncoder().encode([*(GRPC_REQUEST if base is None else base), *(extra or [])])


def grpc_message(payload: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(payload)) + payload


def parse_frames(buf: bytes) -> Iterator[Frame]:
    at = 0
    while len(buf) - at >= 9:
        hi, lo, kind, flags, sid = f.HEADER.unpack_from(buf, at)
        length = (hi << 16) | lo
        if len(buf) - at - 9 < length:
            return
        yield kind, flags, sid & 0x7FFFFFFF, bytes(buf[at + 9 : at + 9 + length])
        at += 9 + length


def goaway_code(frames: list[Frame]) -> int | None:
    for kind, _, _, payload in frames:
        if kind == f.FrameType.GOAWAY:
            return f.u32(payload, 4)
    return None


class FakeTransport:
    """Collects what a connection writes; ``close`` marks it closed."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def frames(self) -> list[Frame]:
        return list(parse_frames(bytes(self.written)))


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (Linux /proc)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class RawClient:
    """A blocking HTTP/2 client socket that sends whatever frames a test builds."""

    def __init__(self, port: int, settings: dict[int, int] | None = None, timeout: float = 20.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.received = bytearray()
        self.sock.sendall(f.PREFACE + f.settings(settings or {}))

    def send(self, *frames: bytes) -> bool:
        """False once the sidecar has closed the connection (the rest is not sent)."""
        try:
            self.sock.sendall(b"".join(frames))
        except OSError:
            return False
        return True

    def read_until_closed(self, answer_pings: bool = False) -> list[Frame]:
        """Every frame until the peer closes (bounded by the socket timeout)."""
        answered = 0
        while True:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            self.received += chunk
            if answer_pings:
                pings = [p for k, fl, _, p in parse_frames(bytes(self.received)) if k == _PING and not fl & 1]
                for payload in pings[answered:]:
                    self.send(f.frame(_PING, f.Flag.ACK, 0, payload))
                answered = len(pings)
        return list(parse_frames(bytes(self.received)))

    def close(self) -> None:
        self.sock.close()
