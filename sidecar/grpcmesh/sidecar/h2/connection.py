"""One HTTP/2 connection as an asyncio protocol: frames in, events out, batched writes.

Why not a full HTTP/2 library: the proxy only moves gRPC streams between two
connections, so it needs frames, HPACK and flow control, not request/response
objects. Parsing frames directly and handing each stream's events to its
*owner* (a :class:`~grpcmesh.sidecar.proxy.Relay` half) costs a fraction of a
grpc.aio server call plus client call, which is what made a grpc.aio proxy
cost 1.7x the service it fronts.

Flow control is end to end: data received on one stream is credited back to
its sender (WINDOW_UPDATE) only when the proxy has written it onward
(:meth:`Stream.send_data` with ``credit=``), so a slow receiver slows its
sender instead of filling the proxy's memory. Writes made during one loop
iteration go out as one ``transport.write``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterable
from typing import Protocol

from grpcmesh.sidecar.h2 import frames as f
from grpcmesh.sidecar.h2.frames import ErrorCode, Flag, FrameType, H2Error, Setting
from grpcmesh.sidecar.h2.hpack_in import HeaderDecoder, HPACKDecodeError
from grpcmesh.sidecar.h2.hpack_out import HeaderEncoder

__all__ = ["Connection", "Headers", "Stream", "StreamOwner"]

log = logging.getLogger("grpcmesh.sidecar.h2")

Headers = list[tuple[str, str]]

_HDR = f.HEADER
_DATA, _HEADERS, _CONT = FrameType.DATA, FrameType.HEADERS, FrameType.CONTINUATION
_END_STREAM, _END_HEADERS, _PADDED, _PRIO = Flag.END_STREAM, Flag.END_HEADERS, Flag.PADDED, Flag.PRIORITY
STREAM_WINDOW = 1 << 20  # what we grant per stream
# Transport buffer above which DATA waits in stream queues (asyncio's 64 KiB stalls big messages).
WRITE_HIGH_WATER = 1 << 20
MAX_HEADER_LIST = 64 * 1024  # RFC 9113 §6.5.2 size of a decoded header block we accept
CONNECTION_LOST = -1  # pseudo error code given to owners when the TCP connection ends


def keepalive(sock: socket.socket | None) -> None:
    """TCP keepalive (30 s idle, then 3 probes 10 s apart): a peer host that vanished without a
    FIN or RST (power loss, partition) is noticed and its connection closed, so pooled
    connections never hang calls on a dead host until their deadlines."""
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
        option = getattr(socket, name, None)
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


class StreamOwner(Protocol):
    """Receives one stream's events (a relay half)."""

    def on_headers(self, stream: Stream, headers: Headers, end_stream: bool) -> None: ...

    def on_data(self, stream: Stream, data: bytes, end_stream: bool) -> None: ...

    def on_reset(self, stream: Stream, code: int) -> None: ...


class Stream:
    """One HTTP/2 stream: send window, queued output, half-closed state."""

    __slots__ = ("conn", "id", "local_closed", "owner", "queue", "remote_closed", "send_window", "unacked")

    def __init__(self, conn: Connection, stream_id: int, owner: StreamOwner | None) -> None:
        self.conn = conn
        self.id = stream_id
        self.owner = owner
        self.send_window = conn.peer_initial_window
        self.queue: list[tuple[bytes | Headers, bool, Stream | None]] | None = None
        self.local_closed = False
        self.remote_closed = False
        self.unacked = 0  # received bytes not yet credited back to the peer

    def send_headers(self, headers: Headers, end_stream: bool = False) -> None:
        if self.local_closed:
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
        if self.local_closed:
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
            conn.write(f.data_frames(self.id, data, end_stream, conn.peer_max_frame))
            if end_stream:
                self.local_closed = True
                conn.maybe_forget(self)
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
            last = end and not rest
            conn.write(f.data_frames(self.id, chunk, last, conn.peer_max_frame))
            if credit is not None and chunk:
                credit.consumed(len(chunk))
            if rest:
                queue[0] = (rest, end, credit)
                return
            queue.pop(0)
            if last:
                self.local_closed = True
        self.queue = None
        conn.blocked.pop(self.id, None)
        conn.maybe_forget(self)

    def consumed(self, n: int) -> None:
        """``n`` received bytes were forwarded: give the peer its window back (batched)."""
        self.conn.credit(n)
        if self.remote_closed:
            return
        self.unacked += n
        if self.unacked >= STREAM_WINDOW // 2:
            self.conn.write(f.window_update(self.id, self.unacked))
            self.unacked = 0

    def reset(self, code: int = ErrorCode.CANCEL) -> None:
        """RST_STREAM: the stream is closed both ways; queued data is dropped (and credited)."""
        conn = self.conn
        if self.id in conn.streams:
            conn.write(f.rst_stream(self.id, code))
        self._drop()

    def _drop(self) -> None:
        queue, self.queue = self.queue, None
        for item, _, credit in queue or ():
            if credit is not None and isinstance(item, bytes) and item:
                credit.consumed(len(item))
        self.local_closed = self.remote_closed = True
        self.conn.blocked.pop(self.id, None)
        self.conn.streams.pop(self.id, None)


def snapshot(conns: Iterable[Connection]) -> dict[str, int]:
    """Connections, open streams, connections paused on a slow reader, DATA bytes waiting (for /clusters)."""
    conns = list(conns)
    return {
        "connections": len(conns),
        "streams": sum(len(c.streams) for c in conns),
        "paused": sum(c.paused for c in conns),
        "queued_bytes": sum(s.queued_bytes() for c in conns for s in c.blocked.values()),
    }


class Connection(asyncio.Protocol):
    """Frame reader/writer shared by the server (downstream) and client (upstream) sides."""

    client = False
    peer_identity: str | None = None  # the service a verified client certificate names (server side)

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, Stream] = {}
        self.blocked: dict[int, Stream] = {}
        self._buf = bytearray()
        self._out: list[bytes] = []
        self._decoder = HeaderDecoder(max_header_list=MAX_HEADER_LIST)
        self._encoder = HeaderEncoder()
        self._preface = self.client  # False: a server still expects the client preface
        self._cont: tuple[int, int, bytearray] | None = None  # stream id, flags, header block so far
        self.peer_initial_window = f.DEFAULT_WINDOW
        self.peer_max_frame = f.MAX_FRAME
        self.peer_max_streams = 1 << 31
        self.send_window = f.DEFAULT_WINDOW
        self._recv_window = f.CONNECTION_WINDOW
        self._unacked = 0
        self.paused = False  # the transport's buffer is over its high-water mark: send no DATA
        self.goaway_sent = False
        self.goaway_received: int | None = None
        self.closed = False
        self.last_peer_stream = 0

    # -- transport ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream_transport: asyncio.Transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        self.transport = stream_transport
        keepalive(transport.get_extra_info("socket"))
        stream_transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        ours = {
            Setting.MAX_CONCURRENT_STREAMS: 100_000,
            Setting.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
            Setting.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST,  # what HeaderDecoder enforces
        }
        if self.client:
            ours[Setting.ENABLE_PUSH] = 0
        start = f.settings(ours) + f.window_update(0, f.CONNECTION_WINDOW - f.DEFAULT_WINDOW)
        stream_transport.write((f.PREFACE + start) if self.client else start)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        streams, self.streams = list(self.streams.values()), {}
        self.blocked.clear()
        for stream in streams:
            stream.local_closed = stream.remote_closed = True
            if stream.owner is not None:
                stream.owner.on_reset(stream, CONNECTION_LOST)
        self.on_closed()

    def on_closed(self) -> None:
        """Hook: the TCP connection ended."""

    def pause_writing(self) -> None:
        """The peer reads slower than we write: DATA waits in stream queues (not in the transport).

        Bytes queued there are not credited back to their sender, so what the sidecar holds
        stays within the windows it granted, however large the window this peer grants us.
        """
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._unblock()

    def write(self, data: bytes) -> None:
        out = self._out
        if not out:
            self.loop.call_soon(self._flush)
        out.append(data)

    def _flush(self) -> None:
        out, self._out = self._out, []
        transport = self.transport
        if transport is not None and not transport.is_closing() and out:
            transport.write(b"".join(out))

    def close(self) -> None:
        self._flush()
        self.closed = True  # no new streams; connection_lost still resets the open ones
        if self.transport is not None:
            self.transport.close()

    # -- HPACK ----------------------------------------------------------------------------
    def write_headers(self, stream: Stream, headers: Headers, end_stream: bool) -> None:
        block = self._encoder.encode(headers)
        self.write(f.header_frames(stream.id, block, end_stream, self.peer_max_frame))
        if end_stream:
            stream.local_closed = True
            self.maybe_forget(stream)

    def maybe_forget(self, stream: Stream) -> None:
        if stream.local_closed and stream.remote_closed:
            self.streams.pop(stream.id, None)
            self.blocked.pop(stream.id, None)
            if self.goaway_sent or self.goaway_received is not None:
                self._close_if_idle()

    # -- flow control -----------------------------------------------------------------------
    def credit(self, n: int) -> None:
        self._unacked += n
        if self._unacked >= f.CONNECTION_WINDOW // 4:
            self._recv_window += self._unacked
            self.write(f.window_update(0, self._unacked))
            self._unacked = 0

    # -- reading --------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        try:
            if not self._preface:
                if len(buf) < 24:
                    if not f.PREFACE.startswith(bytes(buf)):
                        raise H2Error(ErrorCode.PROTOCOL_ERROR, "not an HTTP/2 connection preface")
                    return
                if buf[:24] != f.PREFACE:
                    raise H2Error(ErrorCode.PROTOCOL_ERROR, "not an HTTP/2 connection preface")
                del buf[:24]
                self._preface = True
            self._read_frames(buf)
        except H2Error as err:
            self.fail(err.code, str(err))
        except HPACKDecodeError as err:
            self.fail(ErrorCode.COMPRESSION_ERROR, f"bad header block: {err}")
        except Exception:  # a bug in a stream owner: say so, and end only this connection
            log.exception("http/2 connection failed while handling a frame")
            self.fail(ErrorCode.INTERNAL_ERROR, "internal error in the sidecar")

    def _read_frames(self, buf: bytearray) -> None:
        pos = 0
        n = len(buf)
        unpack = _HDR.unpack_from
        while n - pos >= 9:
            hi, lo, kind, flags, sid = unpack(buf, pos)
            length = (hi << 16) | lo
            end = pos + 9 + length
            if length > f.MAX_FRAME:
                raise H2Error(ErrorCode.FRAME_SIZE_ERROR, f"frame of {length} bytes exceeds {f.MAX_FRAME}")
            if end > n:
                break
            payload = bytes(buf[pos + 9 : end])
            pos = end
            sid &= 0x7FFFFFFF
            if self._cont is not None and kind != _CONT:
                raise H2Error(ErrorCode.PROTOCOL_ERROR, "expected CONTINUATION")
            if kind == _DATA:
                self._on_data(sid, flags, payload)
            elif kind == _HEADERS:
                self._on_headers_frame(sid, flags, payload)
            elif kind == _CONT:
                self._on_continuation(sid, flags, payload)
            else:
                self._on_control(kind, flags, sid, payload)
            if self.closed:
                return
        del buf[:pos]

    def _on_data(self, sid: int, flags: int, payload: bytes) -> None:
        size = len(payload)
        self._recv_window -= size
        if self._recv_window < 0:
            raise H2Error(ErrorCode.FLOW_CONTROL_ERROR, "peer exceeded the connection window")
        if flags & _PADDED and payload:
            pad = payload[0]
            if pad >= size:
                raise H2Error(ErrorCode.PROTOCOL_ERROR, "DATA padding exceeds payload")
            self.credit(pad + 1)
            payload = payload[1 : size - pad]
        stream = self.streams.get(sid)
        if stream is None or stream.remote_closed or stream.owner is None:
            if sid == 0 or sid > self._max_known_stream():
                raise H2Error(ErrorCode.PROTOCOL_ERROR, f"DATA on idle stream {sid}")
            self.credit(len(payload))  # a stream we already ended (reset): drop, keep the window
            return
        end = bool(flags & _END_STREAM)
        if end:
            stream.remote_closed = True
        stream.owner.on_data(stream, payload, end)
        if end:
            self.maybe_forget(stream)

    def _max_known_stream(self) -> int:
        return self.last_peer_stream

    def _on_headers_frame(self, sid: int, flags: int, payload: bytes) -> None:
        if sid == 0:
            raise H2Error(ErrorCode.PROTOCOL_ERROR, "HEADERS on stream 0")
        if flags & _PADDED:
            pad = payload[0] if payload else 0
            payload = payload[1 : len(payload) - pad]
        if flags & _PRIO:
            payload = payload[5:]
        if flags & _END_HEADERS:
            self._on_header_block(sid, flags, payload)
        else:
            self._cont = (sid, flags, bytearray(payload))

    def _on_continuation(self, sid: int, flags: int, payload: bytes) -> None:
        cont = self._cont
        if cont is None or cont[0] != sid:
            raise H2Error(ErrorCode.PROTOCOL_ERROR, "unexpected CONTINUATION")
        cont[2].extend(payload)
        if len(cont[2]) > 1 << 20:
            raise H2Error(ErrorCode.ENHANCE_YOUR_CALM, "header block over 1 MiB")
        if flags & _END_HEADERS:
            self._cont = None
            self._on_header_block(sid, cont[1], bytes(cont[2]))

    def _on_header_block(self, sid: int, flags: int, block: bytes) -> None:
        headers = self._decoder.decode(block)
        end = bool(flags & _END_STREAM)
        stream = self.streams.get(sid)
        if stream is None:
            if sid > self._max_known_stream():
                self.new_stream(sid, headers, end)
            # else: a stream we already reset; the block was decoded only to keep HPACK in step
            return
        if end:
            stream.remote_closed = True
        if stream.owner is not None:
            stream.owner.on_headers(stream, headers, end)
        if end:
            self.maybe_forget(stream)

    def new_stream(self, sid: int, headers: Headers, end_stream: bool) -> None:
        """Hook: HEADERS opened a stream the peer initiated (server side)."""
        raise H2Error(ErrorCode.PROTOCOL_ERROR, f"HEADERS on unknown stream {sid}")

    def _on_control(self, kind: int, flags: int, sid: int, payload: bytes) -> None:
        if kind == FrameType.SETTINGS:
            if sid:
                raise H2Error(ErrorCode.PROTOCOL_ERROR, "SETTINGS on a stream")
            if not flags & Flag.ACK:
                self._apply_settings(f.parse_settings(payload))
                self.write(f.frame(FrameType.SETTINGS, Flag.ACK, 0))
        elif kind == FrameType.WINDOW_UPDATE:
            self._on_window_update(sid, payload)
        elif kind == FrameType.PING:
            if len(payload) != 8:
                raise H2Error(ErrorCode.FRAME_SIZE_ERROR, "PING payload must be 8 bytes")
            if not flags & Flag.ACK:
                self.write(f.frame(FrameType.PING, Flag.ACK, 0, payload))
        elif kind == FrameType.RST_STREAM:
            stream = self.streams.pop(sid, None)
            if stream is not None:
                stream._drop()
                if stream.owner is not None:
                    stream.owner.on_reset(stream, f.u32(payload) if len(payload) == 4 else 0)
                if self.goaway_sent or self.goaway_received is not None:
                    self._close_if_idle()
        elif kind == FrameType.GOAWAY:
            self.on_goaway(f.u32(payload) & 0x7FFFFFFF, f.u32(payload, 4), payload[8:])
        elif kind == FrameType.PUSH_PROMISE:
            raise H2Error(ErrorCode.PROTOCOL_ERROR, "PUSH_PROMISE is disabled")
        # PRIORITY and unknown frame types are ignored, as RFC 9113 requires

    def _apply_settings(self, values: list[tuple[int, int]]) -> None:
        for key, value in values:
            if key == Setting.INITIAL_WINDOW_SIZE:
                if value > 0x7FFFFFFF:
                    raise H2Error(ErrorCode.FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE too large")
                delta = value - self.peer_initial_window
                self.peer_initial_window = value
                for stream in self.streams.values():
                    stream.send_window += delta
                if delta > 0:
                    self._unblock()
            elif key == Setting.MAX_FRAME_SIZE:
                if not f.MAX_FRAME <= value <= 0xFFFFFF:
                    raise H2Error(ErrorCode.PROTOCOL_ERROR, "MAX_FRAME_SIZE out of range")
                self.peer_max_frame = value
            elif key == Setting.HEADER_TABLE_SIZE:
                self._encoder.table_size(value)
            elif key == Setting.MAX_CONCURRENT_STREAMS:
                self.peer_max_streams = value

    def _on_window_update(self, sid: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise H2Error(ErrorCode.FRAME_SIZE_ERROR, "WINDOW_UPDATE payload must be 4 bytes")
        increment = f.u32(payload) & 0x7FFFFFFF
        if sid == 0:
            self.send_window += increment
            self._unblock()
            return
        stream = self.streams.get(sid)
        if stream is not None:
            stream.send_window += increment
            if stream.queue:
                stream.flush_queue()

    def _unblock(self) -> None:
        for stream in list(self.blocked.values()):
            if self.send_window <= 0 or self.paused:
                return
            stream.flush_queue()

    # -- shutdown -------------------------------------------------------------------------
    def on_goaway(self, last_stream_id: int, code: int, debug: bytes) -> None:
        """Hook: the peer will accept no new streams (client side refines this)."""
        self.goaway_received = last_stream_id
        self._close_if_idle()

    def shutdown(self, code: int = ErrorCode.NO_ERROR) -> None:
        """GOAWAY: finish the streams in progress, accept no new ones, close when idle."""
        if not self.goaway_sent and not self.closed:
            self.goaway_sent = True
            self.write(f.goaway(self.last_peer_stream, code))
        self._close_if_idle()

    def _close_if_idle(self) -> None:
        if not self.streams and not self.closed:
            self.close()

    def fail(self, code: int, message: str) -> None:
        """A connection error: GOAWAY with the reason, then close."""
        log.debug("http/2 connection error %d: %s", code, message)
        if not self.goaway_sent:
            self.goaway_sent = True
            self.write(f.goaway(self.last_peer_stream, code, message.encode()[:256]))
        self.close()
