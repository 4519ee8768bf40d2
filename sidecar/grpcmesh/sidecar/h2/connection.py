"""One HTTP/2 connection as an asyncio protocol: frames in, events out, batched writes.

Why not a full HTTP/2 library: the proxy only moves gRPC streams between two
connections, so it needs frames, HPACK and flow control, not request/response
objects. Parsing frames directly and handing each stream's events to its
*owner* (a :class:`~grpcmesh.sidecar.proxy.Relay` half) costs a fraction of a
grpc.aio server call plus client call, which is what made a grpc.aio proxy
cost 1.7x the service it fronts.

Every frame is checked before it acts: its layout against RFC 9113 §6
(:mod:`control` for the frames that carry no request data), its stream's state
against the §5.1 table (:mod:`states`), header blocks against §8
(:mod:`validate`). A connection error sends GOAWAY with its code and closes;
a stream error resets only that stream (RST_STREAM) and tells its owner.

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
from time import monotonic

from grpcmesh.sidecar.h2 import frames as f
from grpcmesh.sidecar.h2.blocks import HeaderBlocks
from grpcmesh.sidecar.h2.frames import ErrorCode, Flag, FrameType, H2Error, Setting, StreamError
from grpcmesh.sidecar.h2.hpack_in import HeaderListTooLarge, HPACKDecodeError
from grpcmesh.sidecar.h2.hpack_out import HeaderEncoder
from grpcmesh.sidecar.h2.limits import H2Limits
from grpcmesh.sidecar.h2.states import ClosedBy, Event, State
from grpcmesh.sidecar.h2.stream import (
    CONNECTION_LOST,
    STREAM_WINDOW,
    Headers,
    Stream,
    StreamOwner,
    snapshot,
)

__all__ = ["CONNECTION_LOST", "Connection", "Headers", "Stream", "StreamOwner", "snapshot"]

log = logging.getLogger("grpcmesh.sidecar.h2")

_HDR = f.HEADER
_DATA, _HEADERS, _CONT = FrameType.DATA, FrameType.HEADERS, FrameType.CONTINUATION
_END_STREAM, _END_HEADERS, _PADDED, _PRIO = Flag.END_STREAM, Flag.END_HEADERS, Flag.PADDED, Flag.PRIORITY
_IDLE, _OPEN, _HCL = State.IDLE, State.OPEN, State.HALF_CLOSED_LOCAL
_BY_END_STREAM = ClosedBy.END_STREAM
# Transport buffer above which DATA waits in stream queues (asyncio's 64 KiB stalls big messages).
WRITE_HIGH_WATER = 1 << 20
_REMEMBER_CLOSED = 64  # closed streams whose way of closing is remembered (for late frames)


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


class Connection(HeaderBlocks, asyncio.Protocol):
    """Frame reader/writer shared by the server (downstream) and client (upstream) sides."""

    client = False
    peer_identity: str | None = None  # the service a verified client certificate names (server side)
    spiffe_id: str | None = None  # its SPIFFE id, cached here by the authorization layer on first use

    def __init__(self, limits: H2Limits | None = None) -> None:
        super().__init__(limits or H2Limits())
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._out: list[bytes] = []
        self._encoder = HeaderEncoder()
        self._preface = self.client  # False: a server still expects the client preface
        self._recv_window = f.CONNECTION_WINDOW
        self._unacked = 0
        self.closed = False

    # -- transport ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream_transport: asyncio.Transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        self.transport = stream_transport
        keepalive(transport.get_extra_info("socket"))
        stream_transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        ours = {
            Setting.MAX_CONCURRENT_STREAMS: self.limits.max_concurrent_streams,
            Setting.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
            Setting.MAX_HEADER_LIST_SIZE: self.limits.max_header_list_bytes,  # what HeaderDecoder enforces
        }
        if self.client:
            ours[Setting.ENABLE_PUSH] = 0
        start = f.settings(ours) + f.window_update(0, f.CONNECTION_WINDOW - f.DEFAULT_WINDOW)
        stream_transport.write((f.PREFACE + start) if self.client else start)
        self.start_timers()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.stop_timers()
        streams, self.streams = list(self.streams.values()), {}
        self.blocked.clear()
        for stream in streams:
            stream.state = State.CLOSED
            stream.queue = None
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

    def abort(self) -> None:
        """Drops the connection without flushing (the peer is gone): its streams hear CONNECTION_LOST."""
        self.closed = True
        self.stop_timers()
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        self._flush()
        self.closed = True  # no new streams; connection_lost still resets the open ones
        self.stop_timers()
        if self.transport is not None:
            self.transport.close()

    # -- HPACK ----------------------------------------------------------------------------
    def write_headers(self, stream: Stream, headers: Headers, end_stream: bool) -> None:
        block = self._encoder.encode(headers)
        self.write(f.header_frames(stream.id, block, end_stream, self.peer_max_frame))
        self.allowance += 1
        if stream.state == _IDLE:  # (in any other state it may send, HEADERS change nothing)
            stream._advance(Event.SEND_HEADERS)
        if end_stream:
            stream._advance(Event.SEND_END_STREAM)

    def forget(self, stream: Stream, closed_by: int) -> None:
        """A stream reached CLOSED: drop it, remember how it closed, refund the reset budget."""
        sid = stream.id
        self.streams.pop(sid, None)
        if self.blocked:
            self.blocked.pop(sid, None)
        remembered = self.closed_streams
        remembered[sid] = closed_by
        if len(remembered) > 2 * _REMEMBER_CLOSED:  # trimmed in batches: popping the oldest one
            # at a time makes a dict scan ever more deleted slots
            self.closed_streams = dict(list(remembered.items())[_REMEMBER_CLOSED:])
        if stream.header_bytes:
            self.header_bytes -= stream.header_bytes
        if closed_by == _BY_END_STREAM:
            self.resets.refund()
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
        self.last_received = monotonic()  # the clock asyncio loops run on, without the method call
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
        except HeaderListTooLarge as too_large:  # one name per clause: compiled code types it
            self.fail(ErrorCode.ENHANCE_YOUR_CALM, str(too_large))
        except HPACKDecodeError as bad:
            self.fail(ErrorCode.COMPRESSION_ERROR, f"bad header block: {bad}")
        except Exception:  # a bug in a stream owner: say so, and end only this connection
            log.exception("http/2 connection failed while handling a frame")
            self.fail(ErrorCode.INTERNAL_ERROR, "internal error in the sidecar")

    def _read_frames(self, buf: bytearray) -> None:
        pos = 0
        n = len(buf)
        unpack = _HDR.unpack_from
        if not self.settings_seen and n >= 9:
            self.first_frame(buf[3], buf[4])
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
            try:
                if kind == _DATA:
                    self._on_data(sid, flags, payload)
                elif kind == _HEADERS:
                    self._on_headers_frame(sid, flags, payload)
                elif kind == _CONT:
                    self._on_continuation(sid, flags, payload)
                else:
                    self.on_control(kind, flags, sid, payload)
            except StreamError as err:
                self.stream_error(err.stream_id, err.code, str(err))
            if self.closed:
                return
        del buf[:pos]

    def stream_error(self, sid: int, code: int, message: str) -> None:
        """RST_STREAM(code) on ``sid``; its owner hears of it as a reset. Too many: ENHANCE_YOUR_CALM."""
        log.debug("http/2 stream %d error %d: %s", sid, code, message)
        stream = self.streams.get(sid)
        if stream is None:  # a closed stream (idle ones only ever get connection errors)
            self.write(f.rst_stream(sid, code))
        else:
            stream.reset(code)
            if stream.owner is not None:
                stream.owner.on_reset(stream, code)
        if not self.client:  # a reset flood provoked by the peer (CVE-2019-9514)
            self.spend(self.resets, "streams reset")

    def _on_data(self, sid: int, flags: int, payload: bytes) -> None:
        size = len(payload)
        self._recv_window -= size
        if self._recv_window < 0:
            raise H2Error(ErrorCode.FLOW_CONTROL_ERROR, "peer exceeded the connection window")
        if sid == 0:
            raise H2Error(ErrorCode.PROTOCOL_ERROR, "DATA on stream 0")
        pad = 0
        if flags & _PADDED:
            if not payload or payload[0] >= size:
                raise H2Error(ErrorCode.PROTOCOL_ERROR, "DATA padding exceeds payload")
            pad = payload[0] + 1
            payload = payload[1 : size - payload[0]]
        stream = self.streams.get(sid)
        if stream is None:
            self.credit(size)  # a stream we no longer track: keep the connection window
            self.late_frame(sid, _DATA)
            return
        state = stream.state
        if state != _OPEN and state != _HCL:  # half-closed (remote)
            self.credit(size)
            raise StreamError(sid, ErrorCode.STREAM_CLOSED, "DATA after END_STREAM")
        stream.recv_window -= size
        if stream.recv_window < 0:
            self.credit(size)
            raise StreamError(sid, ErrorCode.FLOW_CONTROL_ERROR, "peer exceeded the stream window")
        end = flags & _END_STREAM
        if not payload and not end:
            self.spend(self.idle_frames, "empty DATA frames")
        if stream.content_length is not None:
            left = stream.content_length - len(payload)
            stream.content_length = left
            if left < 0 or (end and left):
                self.credit(size)
                raise StreamError(sid, ErrorCode.PROTOCOL_ERROR, "DATA does not add up to content-length")
        if pad:
            stream.consumed(pad)
        if end:
            stream._advance(Event.RECV_END_STREAM)
        owner = stream.owner
        if owner is None:  # a stream answered early (no relay): drop its request body
            stream.consumed(len(payload))
            return
        owner.on_data(stream, payload, bool(end))

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
