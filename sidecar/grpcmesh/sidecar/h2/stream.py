"""One HTTP/2 stream: its RFC 9113 §5.1 state, send window, queued output and receive window.

The state moves only through :data:`~grpcmesh.sidecar.h2.states.TRANSITIONS`
(``_advance``); ``local_closed`` / ``remote_closed`` are views of it for the
relay. A stream that reaches CLOSED is handed back to its connection, which
forgets it but remembers how it closed (late frames are judged by that).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from grpcmesh.sidecar.h2 import frames as f
from grpcmesh.sidecar.h2.frames import ErrorCode
from grpcmesh.sidecar.h2.states import NEXT, ClosedBy, Event, State

if TYPE_CHECKING:
    from grpcmesh.sidecar.h2.connection import Connection

__all__ = ["CONNECTION_LOST", "STREAM_WINDOW", "Headers", "Stream", "StreamOwner", "snapshot"]

Headers = list[tuple[str, str]]
STREAM_WINDOW = 1 << 20  # what we grant per stream (SETTINGS_INITIAL_WINDOW_SIZE)
CONNECTION_LOST = -1  # pseudo error code given to owners when the TCP connection ends
MAX_WINDOW = 0x7FFFFFFF

_OPEN, _HCL, _HCR, _CLOSED = State.OPEN, State.HALF_CLOSED_LOCAL, State.HALF_CLOSED_REMOTE, State.CLOSED
_LOCAL_CLOSED = frozenset({_HCL, _CLOSED})
_REMOTE_CLOSED = frozenset({_HCR, _CLOSED})
# How a stream came to be closed, by the event that closed it (SEND_END_STREAM closes a
# stream only after the peer's END_STREAM came first).
_CLOSED_BY = (-1, ClosedBy.END_STREAM, ClosedBy.RESET, -1, ClosedBy.END_STREAM, ClosedBy.PEER_RESET)


class StreamOwner(Protocol):
    """Receives one stream's events (a relay half)."""

    def on_headers(self, stream: Stream, headers: Headers, end_stream: bool) -> None: ...

    def on_data(self, stream: Stream, data: bytes, end_stream: bool) -> None: ...

    def on_reset(self, stream: Stream, code: int) -> None: ...


class Stream:
    """One HTTP/2 stream: state, send window, queued output, received-but-not-credited bytes."""

    __slots__ = (
        "blocks_in",
        "conn",
        "content_length",
        "header_bytes",
        "id",
        "owner",
        "queue",
        "recv_window",
        "send_window",
        "state",
        "unacked",
    )

    def __init__(self, conn: Connection, stream_id: int, owner: StreamOwner | None) -> None:
        self.conn = conn
        self.id = stream_id
        self.owner = owner
        self.state: int = State.IDLE
        self.send_window = conn.peer_initial_window
        self.recv_window = STREAM_WINDOW
        self.queue: list[tuple[bytes | Headers, bool, Stream | None]] | None = None
        self.unacked = 0  # received bytes not yet credited back to the peer
        self.blocks_in = 0  # header blocks received (the second one must be trailers)
        self.content_length: int | None = None  # request bytes still announced (RFC 9113 §8.1.1)
        self.header_bytes = 0  # decoded size of the request headers (per-connection budget)

    @property
    def local_closed(self) -> bool:
        return self.state in _LOCAL_CLOSED

    @property
    def remote_closed(self) -> bool:
        return self.state in _REMOTE_CLOSED

    def _advance(self, event: int) -> None:
        """One transition of the §5.1 table; CLOSED hands the stream back to its connection."""
        state = NEXT[self.state][event]
        if state < 0:
            what = f"{Event.NAMES[event]} in state {State.NAMES[self.state]}"
            raise f.StreamError(self.id, ErrorCode.STREAM_CLOSED, what)
        self.state = state
        if state == _CLOSED:
            self.conn.forget(self, _CLOSED_BY[event])

    def send_headers(self, headers: Headers, end_stream: bool = False) -> None:
        if self.state in _LOCAL_CLOSED:
            return
        if self.queue:  # trailers must follow the data still waiting for window
            self.queue.append((headers, end_stream, None))
            return
        self.conn.write_headers(self, headers, end_stream)

    def send_data(self, data: bytes, end_stream: bool = False, credit: Stream | None = None) -> None:
        """Sends ``data`` within the flow-control windows, queueing the rest.

        ``credit`` is the stream the bytes were received on: it is credited back
        when they are written here (or dropped), never earlier.
        """
        if self.state in _LOCAL_CLOSED:
            if credit is not None:
                credit.consumed(len(data))
            return
        if self.queue:
            self.queue.append((data, end_stream, credit))
            return
        conn = self.conn
        n = len(data)
        if n <= self.send_window and n <= conn.send_window and not conn.paused:
            self.send_window -= n
            conn.send_window -= n
            conn.allowance += 1
            conn.write(f.data_frames(self.id, data, end_stream, conn.peer_max_frame))
            if end_stream:
                self._advance(Event.SEND_END_STREAM)
            if credit is not None and n:
                credit.consumed(n)
            return
        self.queue = [(data, end_stream, credit)]
        conn.blocked[self.id] = self
        self.flush_queue()

    def queued_bytes(self) -> int:
        return sum(len(item) for item, _, _ in self.queue or () if isinstance(item, bytes))

    def flush_queue(self) -> None:
        """Writes queued output as far as the windows allow (on WINDOW_UPDATE / SETTINGS)."""
        queue = self.queue
        conn = self.conn
        while queue:
            item, end, credit = queue[0]
            if not isinstance(item, bytes):
                queue.pop(0)
                conn.write_headers(self, item, end)
                continue
            room = 0 if conn.paused else min(self.send_window, conn.send_window)
            if room <= 0 and item:
                return
            chunk, rest = item[:room], item[room:]
            self.send_window -= len(chunk)
            conn.send_window -= len(chunk)
            conn.allowance += 1
            last = end and not rest
            conn.write(f.data_frames(self.id, chunk, last, conn.peer_max_frame))
            if credit is not None and chunk:
                credit.consumed(len(chunk))
            if rest:
                queue[0] = (rest, end, credit)
                return
            queue.pop(0)
            if last:
                self.queue = None
                conn.blocked.pop(self.id, None)
                self._advance(Event.SEND_END_STREAM)
                return
        self.queue = None
        conn.blocked.pop(self.id, None)

    def consumed(self, n: int) -> None:
        """``n`` received bytes were forwarded: give the peer its window back (batched)."""
        self.conn.credit(n)
        if self.state in _REMOTE_CLOSED:
            return
        self.unacked += n
        if self.unacked >= STREAM_WINDOW // 2:
            self.conn.write(f.window_update(self.id, self.unacked))
            self.recv_window += self.unacked
            self.unacked = 0

    def reset(self, code: int = ErrorCode.CANCEL) -> None:
        """RST_STREAM: the stream is closed both ways; queued data is dropped (and credited)."""
        if self.state == _CLOSED:
            return
        self.conn.write(f.rst_stream(self.id, code))
        self.close(Event.SEND_RST_STREAM)

    def close(self, event: int) -> None:
        """Closed by a reset either way (or the connection): queued data dropped and credited."""
        queue, self.queue = self.queue, None
        for item, _, credit in queue or ():
            if credit is not None and isinstance(item, bytes) and item:
                credit.consumed(len(item))
        self.conn.blocked.pop(self.id, None)
        if self.state != _CLOSED:
            self.state = _CLOSED
            self.conn.forget(self, _CLOSED_BY[event])


def snapshot(conns: Iterable[Connection]) -> dict[str, int]:
    """Connections, open streams, connections paused on a slow reader, DATA bytes waiting (for /clusters)."""
    conns = list(conns)
    return {
        "connections": len(conns),
        "streams": sum(len(c.streams) for c in conns),
        "paused": sum(c.paused for c in conns),
        "queued_bytes": sum(s.queued_bytes() for c in conns for s in c.blocked.values()),
    }
