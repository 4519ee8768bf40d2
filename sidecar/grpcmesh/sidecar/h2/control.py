"""The frames of a connection that carry no request data: §6 checks, flood budgets, timers.

SETTINGS, PING, RST_STREAM, PRIORITY, GOAWAY, WINDOW_UPDATE and PUSH_PROMISE,
each checked as RFC 9113 §6 requires (stream 0 or not, exact lengths, value
ranges) before it acts. Frames a peer can send for free but that cost the
sidecar work draw on the per-connection :class:`~grpcmesh.sidecar.h2.limits.Budget`
buckets; an overdrawn bucket ends the connection with ENHANCE_YOUR_CALM.

The accepting side also runs one timer per connection: an idle connection
(no stream for ``idle_timeout_s``) gets GOAWAY and is closed, a silent one is
sent a keepalive PING and closed if it is not answered, and one whose peer
leaves data waiting without ever opening its window (``stall_timeout_s``) is
cut off.
"""

from __future__ import annotations

import asyncio
import logging
from time import monotonic
from typing import TYPE_CHECKING

from grpcmesh.sidecar.h2 import frames as f
from grpcmesh.sidecar.h2.frames import ErrorCode, Flag, FrameType, H2Error, Setting, StreamError
from grpcmesh.sidecar.h2.hpack_out import HeaderEncoder
from grpcmesh.sidecar.h2.limits import Budget, H2Limits
from grpcmesh.sidecar.h2.states import Event

if TYPE_CHECKING:
    from grpcmesh.sidecar.h2.stream import Stream

log = logging.getLogger("grpcmesh.sidecar.h2")

__all__ = ["ControlFrames"]

_MAX_WINDOW = 0x7FFFFFFF
_KEEPALIVE_PING = b"grpcmesh"
# PING / WINDOW_UPDATE frames paid for in advance by frames we wrote. gRPC clients send a stream and
# a connection WINDOW_UPDATE per call, often before the response (which writes three frames), so the
# bank must cover the calls in flight.
_MAX_ALLOWANCE = 4096


class ControlFrames:
    """Control-frame handling and per-connection guards (a base of :class:`Connection`)."""

    client: bool
    closed: bool
    streams: dict[int, Stream]
    blocked: dict[int, Stream]
    closed_streams: dict[int, int]
    _encoder: HeaderEncoder

    def __init__(self, limits: H2Limits) -> None:
        self.loop = asyncio.get_running_loop()
        self.limits = limits
        now = monotonic()
        self.peer_initial_window = f.DEFAULT_WINDOW
        self.peer_max_frame = f.MAX_FRAME
        self.peer_max_streams = 1 << 31
        self.send_window = f.DEFAULT_WINDOW
        self.paused = False  # the transport's buffer is over its high-water mark: send no DATA
        self.goaway_sent = False
        self.goaway_received: int | None = None
        self.settings_seen = False
        self.allowance = 0  # HEADERS/DATA frames written; each pays for one PING or WINDOW_UPDATE
        rate = limits.refill_per_s
        self.pings = Budget(limits.ping_burst, rate, now)
        self.settings_budget = Budget(limits.settings_burst, rate, now)
        self.resets = Budget(limits.reset_burst, rate, now)
        self.idle_frames = Budget(limits.idle_frame_burst, rate, now)
        self.last_received = now
        self._last_progress = now
        self._idle_since = now
        self._ping_sent_at: float | None = None
        self._last_probe = -1e18  # when the dialling side last probed a silent upstream (never)
        self._timer: asyncio.TimerHandle | None = None

    # -- provided by Connection --------------------------------------------------------
    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def fail(self, code: int, message: str) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def shutdown(self, code: int = ErrorCode.NO_ERROR) -> None:
        raise NotImplementedError

    def late_frame(self, sid: int, kind: int) -> None:
        raise NotImplementedError

    def on_goaway(self, last_stream_id: int, code: int, debug: bytes) -> None:
        raise NotImplementedError

    def _unblock(self) -> None:
        raise NotImplementedError

    def _max_known_stream(self) -> int:
        raise NotImplementedError

    # -- guards -------------------------------------------------------------------------
    def spend(self, budget: Budget, what: str) -> None:
        if not budget.take(monotonic()):
            raise H2Error(ErrorCode.ENHANCE_YOUR_CALM, f"too many {what}")

    def _paid(self) -> bool:
        """A PING or WINDOW_UPDATE that answers frames we wrote costs no budget."""
        if self.allowance > 0:
            self.allowance = min(self.allowance, _MAX_ALLOWANCE) - 1
            return True
        return False

    def first_frame(self, kind: int, flags: int) -> None:
        """RFC 9113 §3.4: the preface ends with a SETTINGS frame (not an ACK)."""
        self.settings_seen = True
        if kind != FrameType.SETTINGS or flags & Flag.ACK:
            raise H2Error(ErrorCode.PROTOCOL_ERROR, "the first frame must be SETTINGS")

    # -- dispatch -----------------------------------------------------------------------
    def on_control(self, kind: int, flags: int, sid: int, payload: bytes) -> None:
        if kind == FrameType.WINDOW_UPDATE:
            self._on_window_update(sid, payload)
        elif kind == FrameType.SETTINGS:
            self._on_settings(sid, flags, payload)
        elif kind == FrameType.PING:
            self._on_ping(sid, flags, payload)
        elif kind == FrameType.RST_STREAM:
            self._on_rst_stream(sid, payload)
        elif kind == FrameType.PRIORITY:
            self._on_priority(sid, payload)
        elif kind == FrameType.GOAWAY:
            if sid:
                raise H2Error(ErrorCode.PROTOCOL_ERROR, "GOAWAY on a stream")
            if len(payload) < 8:
                raise H2Error(ErrorCode.FRAME_SIZE_ERROR, "GOAWAY shorter than 8 bytes")
            self.on_goaway(f.u32(payload) & 0x7FFFFFFF, f.u32(payload, 4), payload[8:])
        elif kind == FrameType.PUSH_PROMISE:
            raise H2Error(ErrorCode.PROTOCOL_ERROR, "PUSH_PROMISE: push is disabled")
        else:  # unknown frame types are ignored (§4.1, §5.5), within the budget for idle frames
            self.spend(self.idle_frames, "frames of unknown types")

    def _on_settings(self, sid: int, flags: int, payload: bytes) -> None:
        if sid:
            raise H2Error(ErrorCode.PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & Flag.ACK:
            if payload:
                raise H2Error(ErrorCode.FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            return
        values = f.parse_settings(payload)
        self.spend(self.settings_budget, "SETTINGS frames")
        grown = False
        for key, value in values:
            grown = self._apply_setting(key, value) or grown
        self.write(f.frame(FrameType.SETTINGS, Flag.ACK, 0))  # before data the new windows let out
        if grown:
            self._unblock()

    def _apply_setting(self, key: int, value: int) -> bool:
        """Applies one setting; True when stream windows grew (queued data may go out)."""
        if key == Setting.INITIAL_WINDOW_SIZE:
            if value > _MAX_WINDOW:
                raise H2Error(ErrorCode.FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE above 2^31-1")
            delta = value - self.peer_initial_window
            self.peer_initial_window = value
            for stream in self.streams.values():
                stream.send_window += delta
                if stream.send_window > _MAX_WINDOW:
                    raise H2Error(ErrorCode.FLOW_CONTROL_ERROR, "a stream window above 2^31-1")
            return delta > 0
        if key == Setting.MAX_FRAME_SIZE:
            if not f.MAX_FRAME <= value <= 0xFFFFFF:
                raise H2Error(ErrorCode.PROTOCOL_ERROR, "MAX_FRAME_SIZE out of range")
            self.peer_max_frame = value
        elif key == Setting.ENABLE_PUSH:
            if value > 1 or (value and self.client):
                raise H2Error(ErrorCode.PROTOCOL_ERROR, "ENABLE_PUSH must be 0 or 1 (0 from a server)")
        elif key == Setting.HEADER_TABLE_SIZE:
            self._encoder.table_size(value)
        elif key == Setting.MAX_CONCURRENT_STREAMS:
            self.peer_max_streams = value
        return False

    def _on_ping(self, sid: int, flags: int, payload: bytes) -> None:
        if sid:
            raise H2Error(ErrorCode.PROTOCOL_ERROR, "PING on a stream")
        if len(payload) != 8:
            raise H2Error(ErrorCode.FRAME_SIZE_ERROR, "PING payload must be 8 bytes")
        if flags & Flag.ACK:
            if self._ping_sent_at is not None and payload == _KEEPALIVE_PING:
                self._ping_sent_at = None
            else:
                self.spend(self.idle_frames, "unsolicited PING ACKs")
            return
        if not self._paid():
            self.spend(self.pings, "PING frames")
        self.write(f.frame(FrameType.PING, Flag.ACK, 0, payload))

    def _on_rst_stream(self, sid: int, payload: bytes) -> None:
        if not sid:
            raise H2Error(ErrorCode.PROTOCOL_ERROR, "RST_STREAM on stream 0")
        if len(payload) != 4:
            raise H2Error(ErrorCode.FRAME_SIZE_ERROR, "RST_STREAM payload must be 4 bytes")
        stream = self.streams.get(sid)
        if stream is None:
            self.late_frame(sid, FrameType.RST_STREAM)
            return
        stream.close(Event.RECV_RST_STREAM)
        if stream.owner is not None:
            stream.owner.on_reset(stream, f.u32(payload))
        if not self.client:  # rapid reset (CVE-2023-44487): streams the caller cancels
            self.spend(self.resets, "streams reset by the peer")

    def _on_priority(self, sid: int, payload: bytes) -> None:
        if not sid:
            raise H2Error(ErrorCode.PROTOCOL_ERROR, "PRIORITY on stream 0")
        self.spend(self.idle_frames, "PRIORITY frames")
        problem = None
        if len(payload) != 5:
            problem = (ErrorCode.FRAME_SIZE_ERROR, "PRIORITY payload must be 5 bytes")
        elif f.u32(payload) & 0x7FFFFFFF == sid:
            problem = (ErrorCode.PROTOCOL_ERROR, "stream depends on itself")
        if problem is None:
            return  # priorities are advisory (RFC 9113 §5.3.2): nothing else to do
        if sid > self._max_known_stream():  # no RST_STREAM on an idle stream: end the connection
            raise H2Error(*problem)
        raise StreamError(sid, *problem)

    def _on_window_update(self, sid: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise H2Error(ErrorCode.FRAME_SIZE_ERROR, "WINDOW_UPDATE payload must be 4 bytes")
        increment = f.u32(payload) & 0x7FFFFFFF
        if not self._paid():
            self.spend(self.idle_frames, "WINDOW_UPDATE frames")
        if sid == 0:
            if not increment:
                raise H2Error(ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE with increment 0")
            self.send_window += increment
            if self.send_window > _MAX_WINDOW:
                raise H2Error(ErrorCode.FLOW_CONTROL_ERROR, "connection window above 2^31-1")
            self._last_progress = self.last_received
            self._unblock()
            return
        stream = self.streams.get(sid)
        if stream is None:
            self.late_frame(sid, FrameType.WINDOW_UPDATE)
            return
        if not increment:
            raise StreamError(sid, ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE with increment 0")
        stream.send_window += increment
        if stream.send_window > _MAX_WINDOW:
            raise StreamError(sid, ErrorCode.FLOW_CONTROL_ERROR, "stream window above 2^31-1")
        self._last_progress = self.last_received
        if stream.queue:
            stream.flush_queue()

    # -- timers (accepting side) -----------------------------------------------------------
    def start_timers(self) -> None:
        if self.client:
            return
        lim = self.limits
        tick = min(lim.idle_timeout_s, lim.keepalive_s, lim.keepalive_timeout_s, lim.stall_timeout_s) / 4
        self._timer = self.loop.call_later(max(tick, 0.05), self._housekeep, max(tick, 0.05))

    # -- probing a silent upstream (dialling side) -------------------------------------------
    def probe_soon(self) -> None:
        """A call was opened: watch the upstream while calls are open (see H2Limits.probe_after_s)."""
        if self._timer is None and not self.closed:
            self._timer = self.loop.call_later(self.limits.probe_after_s / 2, self._probe)

    def _probe(self) -> None:
        self._timer = None
        if self.closed or not self.streams:
            return  # armed again by the next call
        now = monotonic()
        lim = self.limits
        if self._ping_sent_at is not None:
            if now - self._ping_sent_at >= lim.probe_timeout_s:
                log.warning(
                    "upstream silent and its PING unanswered for %.1f s: connection dropped",
                    now - self._ping_sent_at,
                )
                self.abort()
                return
        elif (
            now - self.last_received >= lim.probe_after_s
            and now - self._last_probe >= lim.probe_min_interval_s
        ):
            self._last_probe = self._ping_sent_at = now
            self.write(f.frame(FrameType.PING, 0, 0, _KEEPALIVE_PING))
        self._timer = self.loop.call_later(lim.probe_after_s / 2, self._probe)

    def stop_timers(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _housekeep(self, tick: float) -> None:
        self._timer = None
        if self.closed:
            return
        now = monotonic()
        lim = self.limits
        if self.streams:
            self._idle_since = now
        elif now - self._idle_since >= lim.idle_timeout_s:
            self.shutdown(ErrorCode.NO_ERROR)  # no stream: closes now
            return
        if not (self.blocked or self.paused):
            self._last_progress = now
        elif now - self._last_progress >= lim.stall_timeout_s:
            self.fail(ErrorCode.ENHANCE_YOUR_CALM, "data waited for a window that never opened")
            return
        if self._ping_sent_at is not None:
            if now - self._ping_sent_at >= lim.keepalive_timeout_s:
                self.fail(ErrorCode.NO_ERROR, "keepalive PING not answered")
                return
        elif now - self.last_received >= lim.keepalive_s:
            self._ping_sent_at = now
            self.write(f.frame(FrameType.PING, 0, 0, _KEEPALIVE_PING))
        self._timer = self.loop.call_later(tick, self._housekeep, tick)
