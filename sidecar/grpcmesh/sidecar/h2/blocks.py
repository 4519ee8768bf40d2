"""Header blocks as they arrive: HEADERS and CONTINUATION frames, and frames for streams not open.

A block is collected (bounded in bytes and in frames: a CONTINUATION flood is
cut off), decoded even when its stream is gone (the HPACK table must stay in
step with the peer's), then checked: the stream's §5.1 state, §8 rules for
trailers and responses. A block that opens a stream goes to
:meth:`HeaderBlocks.new_stream` (the accepting side checks the request there).

Frames for a stream that is not open are judged by what the connection
remembers of it (:func:`~grpcmesh.sidecar.h2.states.closed_stream_error`):
idle streams and stream ids that were skipped give connection errors; a
stream closed long ago and no longer remembered is treated as one we reset
(late frames ignored), which is what a peer that has not yet seen our
RST_STREAM needs.
"""

from __future__ import annotations

from grpcmesh.sidecar.h2 import frames as f
from grpcmesh.sidecar.h2.control import ControlFrames
from grpcmesh.sidecar.h2.frames import ErrorCode, Flag, FrameType, H2Error, StreamError
from grpcmesh.sidecar.h2.hpack_in import HeaderDecoder
from grpcmesh.sidecar.h2.limits import H2Limits
from grpcmesh.sidecar.h2.states import CONNECTION, RECEIVE, Event, State, closed_stream_error
from grpcmesh.sidecar.h2.stream import Headers, Stream
from grpcmesh.sidecar.h2.validate import check_response, check_trailers

__all__ = ["HeaderBlocks"]

_DATA, _HEADERS = FrameType.DATA, FrameType.HEADERS
_END_STREAM, _END_HEADERS, _PADDED, _PRIO = Flag.END_STREAM, Flag.END_HEADERS, Flag.PADDED, Flag.PRIORITY
_RECEIVE_HEADERS = tuple(RECEIVE[s][_HEADERS] for s in range(len(State.NAMES)))
_REMEMBER_SKIPPED = 16  # ranges of stream ids a peer skipped (a later HEADERS on one is an error)


class HeaderBlocks(ControlFrames):
    """Reading header blocks (a base of :class:`~grpcmesh.sidecar.h2.connection.Connection`)."""

    def __init__(self, limits: H2Limits) -> None:
        super().__init__(limits)
        self.streams: dict[int, Stream] = {}
        self.blocked: dict[int, Stream] = {}
        self.closed_streams: dict[int, int] = {}  # the last few closed, and how
        self.skipped: list[tuple[int, int]] = []  # stream id ranges the peer never opened
        self.header_bytes = 0  # decoded request header bytes of the open streams
        self.last_peer_stream = 0
        self._decoder = HeaderDecoder(max_header_list=limits.max_header_list_bytes)
        self._cont: tuple[int, int, bytearray, int] | None = None  # stream, flags, block so far, frames
        self._max_block_frames = limits.max_header_list_bytes // f.MAX_FRAME + 16

    def opened(self, sid: int) -> None:
        """The peer opened ``sid``: ids it skipped are closed without ever having been open."""
        expected = self.last_peer_stream + 2 if self.last_peer_stream else 1
        if sid > expected:
            self.skipped.append((expected, sid - 2))
            del self.skipped[:-_REMEMBER_SKIPPED]
        self.last_peer_stream = sid

    def late_frame(self, sid: int, kind: int) -> None:
        """A frame for a stream not open: idle (a connection error) or closed (§5.1, by how it closed)."""
        if sid > self._max_known_stream():
            if kind == _DATA or kind == FrameType.RST_STREAM or kind == FrameType.WINDOW_UPDATE:
                raise H2Error(ErrorCode.PROTOCOL_ERROR, f"frame type {kind} on idle stream {sid}")
            return
        closed_by = self.closed_streams.get(sid)
        if closed_by is None:  # forgotten (or skipped): only a skipped id is an error
            if any(lo <= sid <= hi for lo, hi in self.skipped) and kind in (_DATA, _HEADERS):
                raise H2Error(ErrorCode.PROTOCOL_ERROR, f"stream {sid} is lower than one opened before")
            return
        error = closed_stream_error(closed_by, kind)
        if error is None:
            return
        scope, code = error
        if scope == CONNECTION:
            raise H2Error(code, f"frame type {kind} on closed stream {sid}")
        raise StreamError(sid, code, f"frame type {kind} on closed stream {sid}")

    def _max_known_stream(self) -> int:
        return self.last_peer_stream

    def _on_headers_frame(self, sid: int, flags: int, payload: bytes) -> None:
        if sid == 0:
            raise H2Error(ErrorCode.PROTOCOL_ERROR, "HEADERS on stream 0")
        if flags & _PADDED:
            pad = payload[0] if payload else 0
            if len(payload) - 1 - (5 if flags & _PRIO else 0) < pad:
                raise H2Error(ErrorCode.PROTOCOL_ERROR, "HEADERS padding exceeds payload")
            payload = payload[1 : len(payload) - pad]
        self_dependent = False
        if flags & _PRIO:
            if len(payload) < 5:
                raise H2Error(ErrorCode.FRAME_SIZE_ERROR, "HEADERS priority fields truncated")
            self_dependent = f.u32(payload) & 0x7FFFFFFF == sid
            payload = payload[5:]
        if flags & _END_HEADERS:
            self._on_header_block(sid, flags, payload, self_dependent)
        else:
            if not payload:
                self.spend(self.idle_frames, "empty header fragments")
            self._cont = (sid, flags | (0x100 if self_dependent else 0), bytearray(payload), 1)

    def _on_continuation(self, sid: int, flags: int, payload: bytes) -> None:
        cont = self._cont
        if cont is None or cont[0] != sid:
            raise H2Error(ErrorCode.PROTOCOL_ERROR, "unexpected CONTINUATION")
        block = cont[2]
        block.extend(payload)
        count = cont[3] + 1
        if len(block) > self.limits.max_header_list_bytes or count > self._max_block_frames:
            raise H2Error(ErrorCode.ENHANCE_YOUR_CALM, f"header block: {len(block)} bytes, {count} frames")
        if not payload and not flags & _END_HEADERS:
            self.spend(self.idle_frames, "empty CONTINUATION frames")
        if flags & _END_HEADERS:
            self._cont = None
            self._on_header_block(sid, cont[1], bytes(block), bool(cont[1] & 0x100))
        else:
            self._cont = (sid, cont[1], block, count)

    def _on_header_block(self, sid: int, flags: int, block: bytes, self_dependent: bool) -> None:
        decoder = self._decoder
        headers = decoder.decode(block)  # always: the HPACK table must stay in step
        end = bool(flags & _END_STREAM)
        stream = self.streams.get(sid)
        if stream is None:
            if sid <= self._max_known_stream():
                self.late_frame(sid, _HEADERS)
                return
            if self_dependent:
                raise H2Error(ErrorCode.PROTOCOL_ERROR, f"stream {sid} depends on itself")
            self.new_stream(sid, headers, end, decoder.malformed, decoder.listed)
            return
        problem = _RECEIVE_HEADERS[stream.state]
        if problem is not None:
            raise StreamError(sid, problem[1], "HEADERS after END_STREAM")
        if self_dependent:
            raise StreamError(sid, ErrorCode.PROTOCOL_ERROR, "stream depends on itself")
        malformed = decoder.malformed
        if malformed is None:
            malformed = self._check_block(stream, headers, end)
        if malformed is not None:
            raise StreamError(sid, ErrorCode.PROTOCOL_ERROR, f"malformed header block: {malformed}")
        stream.blocks_in += 1
        if end:
            stream._advance(Event.RECV_END_STREAM)
        if stream.owner is not None:
            stream.owner.on_headers(stream, headers, end)

    def _check_block(self, stream: Stream, headers: Headers, end: bool) -> str | None:
        """A block on an open stream: trailers (with END_STREAM), or a client's response headers."""
        if self.client and not stream.blocks_in:
            return check_response(headers)
        if not end:
            return "a second header block without END_STREAM"
        return check_trailers(headers)

    def new_stream(
        self, sid: int, headers: Headers, end_stream: bool, malformed: str | None, size: int
    ) -> None:
        """Hook: HEADERS opened a stream the peer initiated (server side)."""
        raise H2Error(ErrorCode.PROTOCOL_ERROR, f"HEADERS on unknown stream {sid}")
