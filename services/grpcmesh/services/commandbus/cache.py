"""Keeps recently used streams in memory so a command reads only the events it has not seen.

Stored events never change, so a cached prefix is always right: each read asks
the event store for the events from its last one on (usually just that one, or
a few) instead of the whole stream. When that last event is gone (the stream was
soft-deleted or truncated) the stream is read again from the start. Least recently used streams are dropped.
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
        return await self.inner.append(stream_id, expected, events)

    def _remember(self, stream_id: str, events: list[es.RecordedEvent]) -> None:
        if not events:
            self._streams.pop(stream_id, None)
            return
        self._streams[stream_id] = events
        self._streams.move_to_end(stream_id)
        while len(self._streams) > self.max_streams:
            self._streams.popitem(last=False)
