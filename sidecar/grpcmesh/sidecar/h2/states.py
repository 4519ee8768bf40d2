"""The HTTP/2 stream state machine of RFC 9113 §5.1, as a table of transitions.

Why a table: every frame sent or received on a stream is one (state, event)
lookup, so what each state allows is written down once, in the RFC's terms,
and checked the same way for the accepting and the dialling side. Server push
is disabled (SETTINGS_ENABLE_PUSH 0, PUSH_PROMISE a connection error), so the
reserved states exist only to complete the picture and are never entered.

``RECEIVE`` says which received frame types each state accepts and, when it
does not, whether that is a stream error or a connection error and with which
code (§5.1: "half-closed (remote)" answers STREAM_CLOSED; "idle" a connection
PROTOCOL_ERROR). Frames on streams the connection no longer tracks are
classified by :func:`closed_stream_error`.
"""

from __future__ import annotations

from typing import Final

from grpcmesh.sidecar.h2.frames import ErrorCode, FrameType

__all__ = [
    "CONNECTION",
    "NEXT",
    "RECEIVE",
    "STREAM",
    "TRANSITIONS",
    "ClosedBy",
    "Event",
    "State",
    "closed_stream_error",
    "next_state",
]


class State:
    """Stream states (plain ints: the hot path compares and hashes them, an IntEnum hashes in Python)."""

    IDLE: Final = 0
    RESERVED_LOCAL: Final = 1
    RESERVED_REMOTE: Final = 2
    OPEN: Final = 3
    HALF_CLOSED_LOCAL: Final = 4
    HALF_CLOSED_REMOTE: Final = 5
    CLOSED: Final = 6
    NAMES: Final = (
        "idle",
        "reserved (local)",
        "reserved (remote)",
        "open",
        "half-closed (local)",
        "half-closed (remote)",
        "closed",
    )


class Event:
    """What happens to a stream: frames sent and received that change its state."""

    SEND_HEADERS: Final = 0
    SEND_END_STREAM: Final = 1
    SEND_RST_STREAM: Final = 2
    RECV_HEADERS: Final = 3
    RECV_END_STREAM: Final = 4
    RECV_RST_STREAM: Final = 5
    NAMES: Final = (
        "send HEADERS",
        "send END_STREAM",
        "send RST_STREAM",
        "receive HEADERS",
        "receive END_STREAM",
        "receive RST_STREAM",
    )


class ClosedBy:
    """How a stream the connection has forgotten was closed (decides what late frames mean)."""

    END_STREAM: Final = 0  # the peer's END_STREAM was received: more frames are a STREAM_CLOSED error
    PEER_RESET: Final = 1  # the peer reset it: more frames are a STREAM_CLOSED stream error
    RESET: Final = 2  # we reset it: the peer may not know yet, so late frames are ignored


S, E = State, Event
# (state, event) -> next state; anything missing is a protocol violation (RFC 9113 §5.1 figure 2).
TRANSITIONS: dict[tuple[int, int], int] = {
    (S.IDLE, E.SEND_HEADERS): S.OPEN,
    (S.IDLE, E.RECV_HEADERS): S.OPEN,
    (S.OPEN, E.SEND_HEADERS): S.OPEN,
    (S.OPEN, E.RECV_HEADERS): S.OPEN,
    (S.OPEN, E.SEND_END_STREAM): S.HALF_CLOSED_LOCAL,
    (S.OPEN, E.RECV_END_STREAM): S.HALF_CLOSED_REMOTE,
    (S.OPEN, E.SEND_RST_STREAM): S.CLOSED,
    (S.OPEN, E.RECV_RST_STREAM): S.CLOSED,
    (S.HALF_CLOSED_LOCAL, E.RECV_HEADERS): S.HALF_CLOSED_LOCAL,
    (S.HALF_CLOSED_LOCAL, E.RECV_END_STREAM): S.CLOSED,
    (S.HALF_CLOSED_LOCAL, E.SEND_RST_STREAM): S.CLOSED,
    (S.HALF_CLOSED_LOCAL, E.RECV_RST_STREAM): S.CLOSED,
    (S.HALF_CLOSED_REMOTE, E.SEND_HEADERS): S.HALF_CLOSED_REMOTE,
    (S.HALF_CLOSED_REMOTE, E.SEND_END_STREAM): S.CLOSED,
    (S.HALF_CLOSED_REMOTE, E.SEND_RST_STREAM): S.CLOSED,
    (S.HALF_CLOSED_REMOTE, E.RECV_RST_STREAM): S.CLOSED,
    (S.CLOSED, E.SEND_RST_STREAM): S.CLOSED,  # resetting twice is harmless (never sent twice)
}
_STATES, _EVENTS = range(len(State.NAMES)), range(len(Event.NAMES))
# The same table as tuples indexed by state then event (what the hot path reads).
NEXT: tuple[tuple[int, ...], ...] = tuple(
    tuple(TRANSITIONS.get((s, e), -1) for e in _EVENTS) for s in _STATES
)

STREAM, CONNECTION = 0, 1  # the scope of an error a received frame causes
_F = FrameType
_ANY = (_F.DATA, _F.HEADERS, _F.PRIORITY, _F.RST_STREAM, _F.WINDOW_UPDATE, _F.CONTINUATION)
_IDLE_ERROR = (CONNECTION, ErrorCode.PROTOCOL_ERROR)
_HALF_CLOSED_ERROR = (STREAM, ErrorCode.STREAM_CLOSED)
# state -> {stream-level frame type: None (accepted) or (scope, error code)}; §5.1 state by state.
RECEIVE: dict[int, dict[int, tuple[int, int] | None]] = {
    S.IDLE: {
        **{k: _IDLE_ERROR for k in _ANY},
        _F.HEADERS: None,
        _F.PRIORITY: None,
    },
    S.RESERVED_LOCAL: {
        **{k: _IDLE_ERROR for k in _ANY},
        _F.PRIORITY: None,
        _F.RST_STREAM: None,
        _F.WINDOW_UPDATE: None,
    },
    S.RESERVED_REMOTE: {
        **{k: _IDLE_ERROR for k in _ANY},
        _F.HEADERS: None,
        _F.PRIORITY: None,
        _F.RST_STREAM: None,
    },
    S.OPEN: dict.fromkeys(_ANY),
    S.HALF_CLOSED_LOCAL: dict.fromkeys(_ANY),
    S.HALF_CLOSED_REMOTE: {
        **{k: _HALF_CLOSED_ERROR for k in _ANY},
        _F.PRIORITY: None,
        _F.RST_STREAM: None,
        _F.WINDOW_UPDATE: None,
    },
    S.CLOSED: {
        **{k: (STREAM, ErrorCode.STREAM_CLOSED) for k in _ANY},
        _F.PRIORITY: None,
        _F.RST_STREAM: None,
        _F.WINDOW_UPDATE: None,
    },
}


def next_state(state: int, event: int) -> int:
    """The state after ``event``, or -1 when the RFC does not allow it in ``state``."""
    return NEXT[state][event]


def closed_stream_error(closed_by: int, kind: int) -> tuple[int, int] | None:
    """What a frame of ``kind`` on a remembered closed stream means (None: ignore it)."""
    if kind in (_F.PRIORITY, _F.RST_STREAM, _F.WINDOW_UPDATE) or closed_by == ClosedBy.RESET:
        return None
    if closed_by == ClosedBy.END_STREAM:
        return (CONNECTION, ErrorCode.STREAM_CLOSED)  # §5.1 "closed", after END_STREAM
    return (STREAM, ErrorCode.STREAM_CLOSED)  # §5.1 "closed", after RST_STREAM
