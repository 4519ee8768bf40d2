"""Keeps recently used streams in memory so a command reads only the events it has not seen.

Stored events never change, so a cached prefix is always right: each read asks
the event store for the events from its last one on (usually just that one, or
a few) instead of the whole stream. When that last event is gone (the stream was
soft-deleted or truncated) the stream is read again from the start. Least recently used streams are dropped.

A successful append extends the cached stream with the events it wrote, so the
next command for the aggregate can decide without any read (:meth:`known`): the
exact expected revision of its append is the check that nobody wrote in between
(the same check that guards two bus processes), and any failed or duplicate
append forgets the stream so it is read again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from grpcmesh.api.v1 import eventstore_pb2 as es
from grpcmesh.services.commandbus.store import EventStreams

__all__ = ["CachedStreams"]


class CachedStreams:
    """EventStreams that remembers up to ``max_streams`` streams of ``inner``."""

    def __init__(self, inner: EventStreams, max_streams: int = 1024) -> None:
        self.inner = inner
        self.max_streams = max_streams
        self._streams: OrderedDict[str, list[es.RecordedEvent]] = OrderedDict()

    def known(self, stream_id: str) -> list[es.RecordedEvent] | None:
        """The stream as this process last saw it committed (no round trip), or None if not cached."""
        events = self._streams.get(stream_id)
        if events is not None:
            self._streams.move_to_end(stream_id)
            return list(events)
        return None

    async def read(self, stream_id: str, from_revision: int = 0) -> list[es.RecordedEvent]:
        known = self._streams.get(stream_id, [])
        events: list[es.RecordedEvent] = []
        if known:
            # From the last known event on: one round trip that also proves it is still readable.
            tail = await self.inner.read(stream_id, known[-1].revision)
            if tail and tail[0].id == known[-1].id:
                events = known + tail[1:]
        if not events:
            events = await self.inner.read(stream_id)
        self._remember(stream_id, events)
        return [e for e in events if e.revision >= from_revision]

    async def append(
        self, stream_id: str, expected: int | None, events: Sequence[es.ProposedEvent]
    ) -> es.AppendResponse:
        try:
            response = await self.inner.append(stream_id, expected, events)
        except BaseException:
            self._streams.pop(stream_id, None)  # a conflict (or unknown outcome): read it again
            raise
        self._extend(stream_id, expected, events, response)
        return response

    def _extend(
        self,
        stream_id: str,
        expected: int | None,
        events: Sequence[es.ProposedEvent],
        done: es.AppendResponse,
    ) -> None:
        """Adds what an append wrote when it follows the cached stream exactly; else forgets it."""
        known = self._streams.pop(stream_id, [])
        last = known[-1].revision if known else None
        if (
            done.duplicate
            or last != expected
            or done.next_revision != (last if last is not None else -1) + len(events)
        ):
            return
        first = done.next_revision - len(events) + 1
        written = [
            es.RecordedEvent(
                id=p.id,
                stream_id=stream_id,
                revision=first + i,
                # Only the last position is known (AppendResponse); only the last one is ever read.
                position=done.position if i == len(events) - 1 else 0,
                type=p.type,
                data=p.data,
                content_type=p.content_type,
                metadata=p.metadata,
            )
            for i, p in enumerate(events)
        ]
        self._remember(stream_id, known + written)

    def _remember(self, stream_id: str, events: list[es.RecordedEvent]) -> None:
        if not events:
            self._streams.pop(stream_id, None)
            return
        self._streams[stream_id] = events
        self._streams.move_to_end(stream_id)
        while len(self._streams) > self.max_streams:
            self._streams.popitem(last=False)
