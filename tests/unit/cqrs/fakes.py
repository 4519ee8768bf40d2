"""An in-memory EventStreams with the event store's rules: exact revision, idempotent event ids."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from grpcmesh.api.v1 import eventstore_pb2 as es
from grpcmesh.sdk import Aborted, AlreadyExists


class MemoryStreams:
    def __init__(self) -> None:
        self.streams: dict[str, list[es.RecordedEvent]] = {}
        self.position = 0
        self.appends = 0
        self.reads = 0
        # Runs before the next append(s) are judged: simulates a concurrent writer.
        self.interleave: list[Callable[[], Awaitable[None]]] = []

    def known(self, stream_id: str) -> list[es.RecordedEvent] | None:
        return None  # the store itself: always read

    async def read(self, stream_id: str, from_revision: int = 0) -> list[es.RecordedEvent]:
        self.reads += 1
        return [e for e in self.streams.get(stream_id, []) if e.revision >= from_revision]

    async def append(
        self, stream_id: str, expected: int | None, events: Sequence[es.ProposedEvent]
    ) -> es.AppendResponse:
        if self.interleave:
            await self.interleave.pop(0)()
        self.appends += 1
        stream = self.streams.setdefault(stream_id, [])
        by_id = {e.id: e for e in stream}
        found = [by_id.get(p.id) for p in events]
        if all(found):
            last = found[-1]
            assert last is not None
            return es.AppendResponse(next_revision=last.revision, position=last.position, duplicate=True)
        if any(found):
            raise AlreadyExists("some event ids exist")
        actual = stream[-1].revision if stream else None
        if actual != expected:
            raise Aborted(f"expected {expected}, actual {actual}")
        for p in events:
            self.position += 1
            stream.append(
                es.RecordedEvent(
                    id=p.id,
                    stream_id=stream_id,
                    revision=len(stream),
                    position=self.position,
                    type=p.type,
                    data=p.data,
                    content_type=p.content_type,
                    metadata=p.metadata,
                )
            )
        return es.AppendResponse(next_revision=stream[-1].revision, position=self.position)
