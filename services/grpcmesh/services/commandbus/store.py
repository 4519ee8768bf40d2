"""The command bus's view of the event store: read one stream, append with a revision.

:class:`EventStreams` is the port the dispatcher needs (faked in unit tests);
:class:`RemoteStreams` implements it over gRPC through an
:class:`~grpcmesh.sdk.AsyncMeshClient`, so calls go through the sidecar or the
SDK's direct mode with its balancing, breaking and idempotent-retry policies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from grpcmesh.api.v1 import eventstore_pb2 as es
from grpcmesh.api.v1 import eventstore_pb2_grpc as es_grpc
from grpcmesh.sdk import AsyncMeshClient, NotFound
from grpcmesh.services.common.eventstore import EVENTSTORE

__all__ = ["EventStreams", "RemoteStreams"]

_PAGE = 10_000


class EventStreams(Protocol):
    def known(self, stream_id: str) -> list[es.RecordedEvent] | None:
        """The stream as last seen committed, without a round trip; None when it must be read."""
        ...

    async def read(self, stream_id: str, from_revision: int = 0) -> list[es.RecordedEvent]:
        """The stream's readable events from ``from_revision`` in order ([] when there are none)."""
        ...

    async def append(
        self, stream_id: str, expected: int | None, events: Sequence[es.ProposedEvent]
    ) -> es.AppendResponse:
        """Appends expecting exactly revision ``expected`` (None: no stream); raises Aborted on conflict."""
        ...


class RemoteStreams:
    """EventStreams over grpcmesh.api.v1.EventStore."""

    def __init__(self, client: AsyncMeshClient, target: str = EVENTSTORE) -> None:
        self._stub = client.stub(es_grpc.EventStoreStub, target=target)

    def known(self, stream_id: str) -> list[es.RecordedEvent] | None:
        return None  # remembers nothing: every command reads (CachedStreams remembers)

    async def read(self, stream_id: str, from_revision: int = 0) -> list[es.RecordedEvent]:
        events: list[es.RecordedEvent] = []
        start = from_revision
        while True:
            request = es.ReadStreamRequest(stream_id=stream_id, from_revision=start, max_count=_PAGE)
            try:
                page = [e async for e in self._stub.ReadStream(request)]
            except NotFound:
                return events
            events.extend(page)
            if len(page) < _PAGE:
                return events
            start = page[-1].revision + 1

    async def append(
        self, stream_id: str, expected: int | None, events: Sequence[es.ProposedEvent]
    ) -> es.AppendResponse:
        revision = (
            es.ExpectedRevision(no_stream=es.Empty())
            if expected is None
            else es.ExpectedRevision(exact=expected)
        )
        request = es.AppendRequest(stream_id=stream_id, expected_revision=revision, events=events)
        response: es.AppendResponse = await self._stub.Append(request)
        return response
