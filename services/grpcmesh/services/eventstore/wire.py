"""The gRPC wire format of the event store: domain values to and from the generated messages.

Kept apart from the servicer so conversions are plain functions (and cheap: catch-up
streams build 100k+ messages a second, so timestamps are converted once per batch).
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import timestamp_pb2

from grpcmesh.api.v1 import eventstore_pb2 as pb
from grpcmesh.services.eventstore.domain import CaughtUp, RecordedEvent, StreamMetadata

__all__ = ["metadata_from_proto", "metadata_to_proto", "subscribe_responses", "to_proto"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BATCH_BYTES = 1024 * 1024  # payload bytes per EventBatch, well under the message size limit


@functools.lru_cache(maxsize=1024)
def _timestamp(when: datetime) -> timestamp_pb2.Timestamp:
    """Shared per distinct time (a batch has one): the message is copied into each event."""
    micros = (when - _EPOCH) // timedelta(microseconds=1)
    seconds, micros = divmod(micros, 1_000_000)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=micros * 1000)


def _fields(event: RecordedEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "stream_id": event.stream_id,
        "revision": event.revision,
        "position": event.position,
        "type": event.type,
        "data": event.data,
        "content_type": event.content_type,
        "recorded_at": _timestamp(event.recorded_at),
    }


def to_proto(event: RecordedEvent) -> pb.RecordedEvent:
    message = pb.RecordedEvent(**_fields(event))
    if event.metadata:  # an empty map costs as much as the rest of the message
        message.metadata.update(event.metadata)
    return message


def _add_to(batch: pb.EventBatch, event: RecordedEvent) -> None:
    """Builds the event in place inside the batch (no second copy, unlike ``EventBatch(events=[...])``)."""
    message = batch.events.add(**_fields(event))
    if event.metadata:
        message.metadata.update(event.metadata)


def metadata_to_proto(meta: StreamMetadata) -> pb.StreamMetadata:
    return pb.StreamMetadata(
        max_count=meta.max_count, max_age_seconds=meta.max_age_seconds, truncate_before=meta.truncate_before
    )


def metadata_from_proto(m: pb.StreamMetadata) -> StreamMetadata:
    return StreamMetadata(
        max_count=m.max_count if m.HasField("max_count") else None,
        max_age_seconds=m.max_age_seconds if m.HasField("max_age_seconds") else None,
        truncate_before=m.truncate_before if m.HasField("truncate_before") else None,
    )


def subscribe_responses(
    items: list[RecordedEvent | CaughtUp], *, batched: bool
) -> list[pb.SubscribeResponse]:
    """Subscription items as responses: events one by one, or runs of events as one batch."""
    out: list[pb.SubscribeResponse] = []
    batch: pb.SubscribeResponse | None = None
    batch_bytes = 0
    for item in items:
        if isinstance(item, CaughtUp):
            batch = None
            out.append(pb.SubscribeResponse(caught_up=pb.CaughtUp(position=item.position)))
        elif not batched:
            out.append(pb.SubscribeResponse(event=to_proto(item)))
        else:
            if batch is None or batch_bytes + len(item.data) > _BATCH_BYTES:
                batch, batch_bytes = pb.SubscribeResponse(events=pb.EventBatch()), 0
                out.append(batch)
            _add_to(batch.events, item)
            batch_bytes += len(item.data)
    return out
