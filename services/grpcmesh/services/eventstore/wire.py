"""The gRPC wire format of the event store: domain values to and from the generated messages.

Kept apart from the servicer so conversions are plain functions (and cheap: catch-up
streams build 100k+ messages a second, so timestamps are converted once per batch).
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

from google.protobuf import timestamp_pb2

from grpcmesh.api.v1 import eventstore_pb2 as pb
from grpcmesh.services.eventstore.domain import CaughtUp, RecordedEvent, StreamMetadata

__all__ = ["metadata_from_proto", "metadata_to_proto", "subscribe_responses", "to_proto"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BATCH_BYTES = 1024 * 1024  # payload bytes per EventBatch, well under the message size limit


@functools.lru_cache(maxsize=1024)
def _seconds_nanos(when: datetime) -> tuple[int, int]:
    micros = (when - _EPOCH) // timedelta(microseconds=1)
    seconds, micros = divmod(micros, 1_000_000)
    return seconds, micros * 1000


def to_proto(event: RecordedEvent) -> pb.RecordedEvent:
    seconds, nanos = _seconds_nanos(event.recorded_at)
    return pb.RecordedEvent(
        id=event.id,
        stream_id=event.stream_id,
        revision=event.revision,
        position=event.position,
        type=event.type,
        data=event.data,
        content_type=event.content_type,
        metadata=event.metadata,
        recorded_at=timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos),
    )


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
    run: list[pb.RecordedEvent] = []
    run_bytes = 0
    for item in items:
        if run and run_bytes + len(item.data if isinstance(item, RecordedEvent) else b"") > _BATCH_BYTES:
            out.append(pb.SubscribeResponse(events=pb.EventBatch(events=run)))
            run, run_bytes = [], 0
        if isinstance(item, CaughtUp):
            if run:
                out.append(pb.SubscribeResponse(events=pb.EventBatch(events=run)))
                run = []
            out.append(pb.SubscribeResponse(caught_up=pb.CaughtUp(position=item.position)))
        elif batched:
            run.append(to_proto(item))
            run_bytes += len(item.data)
        else:
            out.append(pb.SubscribeResponse(event=to_proto(item)))
    if run:
        out.append(pb.SubscribeResponse(events=pb.EventBatch(events=run)))
    return out
