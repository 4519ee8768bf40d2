"""The ``Storage`` port every adapter implements, plus the pure rules they share.

The rules live here once so SQLite and PostgreSQL cannot drift apart: how an
append is judged (idempotent retry first, then the expected-revision check),
how a stored row becomes a :class:`RecordedEvent`. Each adapter keeps a
:class:`~grpcmesh.services.common.headwatch.HeadWatch` that wakes live subscribers.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from grpcmesh.services.common.headwatch import HeadWatch
from grpcmesh.services.eventstore.domain import (
    AppendResult,
    DuplicateEventId,
    ExpectedRevision,
    ProposedEvent,
    RecordedEvent,
    StreamMetadata,
    WrongExpectedRevision,
)

__all__ = [
    "EVENT_COLUMNS",
    "AppendCommand",
    "ExistingEvent",
    "HeadWatch",
    "MetadataChange",
    "Storage",
    "deleted",
    "encode_metadata",
    "first_readable",
    "plan_append",
    "row_to_event",
    "uuid_bytes",
    "uuid_text",
]


@dataclass(frozen=True, slots=True)
class AppendCommand:
    """One ``append`` call as queued for the writer."""

    stream_id: str
    expected: ExpectedRevision
    events: Sequence[ProposedEvent]


@dataclass(frozen=True, slots=True)
class ExistingEvent:
    """Where an already-written event id lives (for idempotency checks)."""

    stream_id: str
    revision: int
    position: int


@runtime_checkable
class Storage(Protocol):
    """Durable, ordered event streams; every method is safe to call concurrently."""

    watch: HeadWatch

    async def open(self) -> None:
        """Connects and creates the schema if needed."""

    async def close(self) -> None: ...

    async def append(
        self, stream_id: str, expected: ExpectedRevision, events: Sequence[ProposedEvent]
    ) -> AppendResult:
        """Appends atomically; raises WrongExpectedRevision / DuplicateEventId."""

    async def read_stream(
        self,
        stream_id: str,
        *,
        backwards: bool = False,
        from_revision: int | None = None,
        max_count: int = 1000,
    ) -> list[RecordedEvent]:
        """Events of one stream from ``from_revision`` (inclusive; None = start, or end if backwards)."""

    async def read_all(
        self,
        after: int,
        max_count: int,
        *,
        upto: int | None = None,
        stream_prefixes: Sequence[str] = (),
        event_types: Sequence[str] = (),
    ) -> list[RecordedEvent]:
        """Events with ``after < position <= upto`` in position order, filtered by prefix AND type."""

    async def head_position(self) -> int:
        """The highest committed global position (0 when empty)."""

    async def stream_revision(self, stream_id: str) -> int | None:
        """The last revision of a stream, None when it has no events."""

    async def get_stream_metadata(self, stream_id: str) -> StreamMetadata:
        """The stream's truncation rules (all None when never set)."""

    async def set_stream_metadata(self, stream_id: str, metadata: StreamMetadata) -> StreamMetadata:
        """Replaces the stream's truncation rules."""

    async def delete_stream(self, stream_id: str, expected: ExpectedRevision) -> StreamMetadata:
        """Soft delete: truncates before the next revision; raises WrongExpectedRevision."""


def plan_append(
    command: AppendCommand, actual: int | None, existing: Mapping[str, ExistingEvent]
) -> AppendResult | int:
    """Judges an append: the original result for a retry, else the first new revision.

    Idempotency is checked before the expected revision, so retrying an append that
    succeeded returns its result even though the stream has moved on since. Event ids
    are the idempotency key within their stream (as in KurrentDB): ``existing`` holds
    the ids of this append already present in the stream.
    """
    events = command.events
    if len({e.id for e in events}) != len(events):
        raise ValueError("event ids must be unique within one append")
    if existing:
        found = [existing.get(e.id) for e in events]
        first = found[0]
        if first is not None and all(
            f is not None and f.stream_id == command.stream_id and f.revision == first.revision + i
            for i, f in enumerate(found)
        ):
            last = found[-1]
            assert last is not None
            return AppendResult(last.revision, last.position, duplicate=True)
        index = next(i for i, f in enumerate(found) if f is not None)
        raise DuplicateEventId(events[index].id, index)
    if not command.expected.accepts(actual):
        raise WrongExpectedRevision(command.stream_id, command.expected, actual)
    return 0 if actual is None else actual + 1


# Given the stream's last revision and current metadata, the metadata to store.
MetadataChange = Callable[[int | None, StreamMetadata], StreamMetadata]


def deleted(
    stream_id: str, expected: ExpectedRevision, actual: int | None, meta: StreamMetadata
) -> StreamMetadata:
    """The metadata after a soft delete of a stream whose last revision is ``actual``."""
    if not expected.accepts(actual):
        raise WrongExpectedRevision(stream_id, expected, actual)
    return meta if actual is None else replace(meta, truncate_before=actual + 1)


def first_readable(meta: StreamMetadata, last_revision: int | None, now: int) -> tuple[int, int]:
    """(lowest readable revision, oldest readable recorded_at in µs) under the stream's metadata."""
    revision = meta.truncate_before or 0
    if meta.max_count is not None and last_revision is not None:
        revision = max(revision, last_revision + 1 - meta.max_count)
    oldest = now - meta.max_age_seconds * 1_000_000 if meta.max_age_seconds is not None else 0
    return revision, oldest


# Column order of every SELECT that feeds row_to_event.
EVENT_COLUMNS = "position, event_id, stream_id, revision, type, data, content_type, metadata, recorded_at"


def encode_metadata(metadata: Mapping[str, str]) -> str:
    return json.dumps(dict(metadata), separators=(",", ":"), sort_keys=True) if metadata else "{}"


def now_micros() -> int:
    return int(datetime.now(UTC).timestamp() * 1_000_000)


@functools.lru_cache(maxsize=1024)
def _timestamp(micros: int) -> datetime:
    return datetime.fromtimestamp(micros / 1_000_000, UTC)


def uuid_bytes(text: str) -> bytes:
    """The 16 bytes of a UUID string (fast path for the canonical form)."""
    hex32 = text.replace("-", "")
    if len(hex32) == 32 and len(text) == 36:
        return bytes.fromhex(hex32)
    return uuid.UUID(text).bytes


def uuid_text(raw: bytes) -> str:
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def row_to_event(row: Sequence[Any]) -> RecordedEvent:
    """A stored row (``EVENT_COLUMNS`` order) as a RecordedEvent; the hot path of every read."""
    position, event_id, stream_id, revision, type_, data, content_type, metadata, recorded_at = row
    return RecordedEvent(
        uuid_text(event_id) if isinstance(event_id, bytes) else str(event_id),
        stream_id,
        revision,
        position,
        type_,
        data if isinstance(data, bytes) else bytes(data),
        content_type,
        json.loads(metadata) if metadata != "{}" else {},
        _timestamp(recorded_at),
    )
