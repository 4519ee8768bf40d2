"""gRPC over HTTP/2 as a proxy sees it: timeouts, statuses, message framing, reset codes.

From the gRPC wire spec (PROTOCOL-HTTP2.md): ``grpc-timeout`` units, the
percent-encoded ``grpc-message``, trailers-only responses, the 5-byte message
prefix (used only to enforce the size limit, never to decode), and how an
HTTP/2 RST_STREAM code reads as a gRPC status.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

import grpc

from grpcmesh.sidecar.h2.frames import ErrorCode
from grpcmesh.sidecar.h2.stream import CONNECTION_LOST, Headers

__all__ = [
    "MessageLimit",
    "format_timeout",
    "parse_timeout",
    "reset_status",
    "status_code",
    "status_trailers",
    "trailers_only",
]

_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
_CODES: dict[int, grpc.StatusCode] = {c.value[0]: c for c in grpc.StatusCode}
_UNKNOWN = grpc.StatusCode.UNKNOWN
_MESSAGE_SAFE = " !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~"  # printable ASCII but '%' stays as is


def parse_timeout(value: str) -> float | None:
    """``grpc-timeout`` (``"100m"``, ``"5S"``) in seconds; None when malformed."""
    unit = _UNITS.get(value[-1:])
    digits = value[:-1]
    if unit is None or not digits.isdigit() or len(digits) > 8:
        return None
    return int(digits) * unit


def format_timeout(seconds: float) -> str:
    """Seconds as ``grpc-timeout``: microseconds while they fit in 8 digits, else coarser."""
    us = max(int(seconds * 1e6), 1)
    if us < 100_000_000:
        return f"{us}u"
    ms = int(seconds * 1e3)
    if ms < 100_000_000:
        return f"{ms}m"
    return f"{min(int(seconds), 99_999_999)}S"


def status_code(value: str | None) -> grpc.StatusCode:
    if value is None:
        return _UNKNOWN
    try:
        return _CODES.get(int(value), _UNKNOWN)
    except ValueError:
        return _UNKNOWN


def trailers_only(code: grpc.StatusCode, message: str, extra: Headers | None = None) -> Headers:
    """The single HEADERS block of a response that fails before any message."""
    headers: Headers = [
        (":status", "200"),
        ("content-type", "application/grpc"),
        *status_trailers(code, message),
    ]
    if extra:
        headers.extend(extra)
    return headers


def status_trailers(code: grpc.StatusCode, message: str) -> Headers:
    """``grpc-status`` and the percent-encoded ``grpc-message``."""
    headers: Headers = [("grpc-status", str(code.value[0]))]
    if message:
        headers.append(("grpc-message", quote(message, safe=_MESSAGE_SAFE)))
    return headers


def decode_message(value: str) -> str:
    return unquote(value)


def reset_status(code: int) -> tuple[grpc.StatusCode, str]:
    """How a gRPC client reads an RST_STREAM (or a lost connection) as a status."""
    if code == CONNECTION_LOST:
        return grpc.StatusCode.UNAVAILABLE, "connection to upstream lost"
    if code == ErrorCode.REFUSED_STREAM:
        return grpc.StatusCode.UNAVAILABLE, "upstream refused the stream"
    if code == ErrorCode.CANCEL:
        return grpc.StatusCode.CANCELLED, "upstream cancelled the stream"
    if code == ErrorCode.ENHANCE_YOUR_CALM:
        return grpc.StatusCode.RESOURCE_EXHAUSTED, "upstream reset the stream: ENHANCE_YOUR_CALM"
    return grpc.StatusCode.INTERNAL, f"upstream reset the stream (HTTP/2 error {code})"


class MessageLimit:
    """Follows the 5-byte message prefixes in a DATA byte stream to enforce a size limit."""

    __slots__ = ("_head", "_left", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._left = 0  # bytes of the current message body still to come
        self._head = b""  # a prefix split across frames

    def feed(self, data: bytes) -> int:
        """Consumes ``data``; returns the size of the first message over the limit, else 0."""
        at, n = 0, len(data)
        while at < n:
            if self._left:
                step = min(self._left, n - at)
                self._left -= step
                at += step
                continue
            need = 5 - len(self._head)
            self._head += data[at : at + need]
            at += need
            if len(self._head) < 5:
                return 0
            size = int.from_bytes(self._head[1:5], "big")
            self._head = b""
            if size > self.limit:
                return size
            self._left = size
        return 0

    def missing(self) -> int:
        """Bytes still owed by an unfinished message (0 on a message boundary)."""
        return self._left + (5 - len(self._head) if self._head else 0)
