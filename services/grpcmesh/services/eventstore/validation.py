"""Input rules of the event store API: requests in, domain values out, or every violation named.

Pure functions over the generated request messages, so the rules are unit-testable
and the gRPC layer only maps :class:`Invalid` to INVALID_ARGUMENT + BadRequest.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from grpcmesh.api.v1 import eventstore_pb2 as pb
from grpcmesh.services.eventstore.domain import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    ExpectedRevision,
    ProposedEvent,
    exact,
)

__all__ = [
    "Invalid",
    "Limits",
    "expected_revision",
    "parse_append",
    "read_count",
    "validate_stream_id",
    "validate_subscribe",
]

_MAX_NAME = 200
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits; bigger requests are refused with INVALID_ARGUMENT naming the field."""

    max_event_bytes: int = 1024 * 1024  # data + metadata + type of one event
    max_batch_events: int = 1000
    max_batch_bytes: int = 8 * 1024 * 1024
    default_read: int = 1000
    max_read: int = 10_000
    max_filters: int = 100


class Invalid(Exception):
    """One or more fields are wrong: field path → why."""

    def __init__(self, violations: dict[str, str]) -> None:
        super().__init__("; ".join(f"{f}: {d}" for f, d in violations.items()))
        self.violations = violations


def _name_problem(value: str, what: str) -> str | None:
    if not value:
        return f"{what} is required"
    if len(value) > _MAX_NAME:
        return f"{what} must be at most {_MAX_NAME} characters"
    if not value.isprintable():
        return f"{what} must be printable characters"
    return None


def stream_id_problem(stream_id: str) -> str | None:
    problem = _name_problem(stream_id, "stream id")
    if problem is None and any(c.isspace() for c in stream_id):
        problem = "stream id must not contain whitespace"
    if problem is None and stream_id.startswith("$"):
        problem = "stream ids starting with '$' are reserved"
    return problem


def validate_stream_id(stream_id: str, field: str = "stream_id") -> None:
    problem = stream_id_problem(stream_id)
    if problem:
        raise Invalid({field: problem})


def expected_revision(request: pb.AppendRequest | pb.DeleteStreamRequest) -> ExpectedRevision:
    """The request's expected revision; unset means ANY."""
    if not request.HasField("expected_revision"):
        return ANY
    kind = request.expected_revision.WhichOneof("kind")
    if kind == "no_stream":
        return NO_STREAM
    if kind == "stream_exists":
        return STREAM_EXISTS
    if kind == "exact":
        return exact(request.expected_revision.exact)
    return ANY


def parse_append(
    request: pb.AppendRequest, limits: Limits
) -> tuple[str, ExpectedRevision, list[ProposedEvent]]:
    violations: dict[str, str] = {}
    problem = stream_id_problem(request.stream_id)
    if problem:
        violations["stream_id"] = problem
    if not request.events:
        violations["events"] = "at least one event is required"
    elif len(request.events) > limits.max_batch_events:
        violations["events"] = f"at most {limits.max_batch_events} events per append"
    events: list[ProposedEvent] = []
    total = 0
    for i, e in enumerate(request.events[: limits.max_batch_events]):
        event = _event(e, i, limits, violations)
        total += len(event.data) + len(event.type) + sum(len(k) + len(v) for k, v in event.metadata.items())
        events.append(event)
    if len({e.id for e in events}) != len(events):
        seen: set[str] = set()
        for i, event in enumerate(events):
            if event.id in seen:
                violations.setdefault(f"events[{i}].id", "duplicate event id in this append")
            seen.add(event.id)
    if total > limits.max_batch_bytes and "events" not in violations:
        violations["events"] = f"append is {total} bytes; the limit is {limits.max_batch_bytes}"
    if violations:
        raise Invalid(violations)
    return request.stream_id, expected_revision(request), events


def _event(e: pb.ProposedEvent, i: int, limits: Limits, violations: dict[str, str]) -> ProposedEvent:
    """One proposed event, checked; problems go into ``violations`` under ``events[i].…``."""
    event_id, type_, data, content_type = e.id, e.type, e.data, e.content_type
    if not _CANONICAL_UUID.fullmatch(event_id):  # the common case costs one regex match
        try:
            event_id = str(uuid.UUID(event_id))
        except ValueError:
            violations[f"events[{i}].id"] = "must be a UUID"
    if not type_ or len(type_) > _MAX_NAME or not type_.isprintable():
        violations[f"events[{i}].type"] = _name_problem(type_, "event type") or ""
    if len(content_type) > _MAX_NAME:
        violations[f"events[{i}].content_type"] = f"must be at most {_MAX_NAME} characters"
    metadata = dict(e.metadata) if e.metadata else {}
    if "" in metadata:
        violations[f"events[{i}].metadata"] = "keys must not be empty"
    size = len(data) + len(type_) + sum(len(k) + len(v) for k, v in metadata.items())
    if size > limits.max_event_bytes:
        violations[f"events[{i}].data"] = f"event is {size} bytes; the limit is {limits.max_event_bytes}"
    return ProposedEvent(event_id, type_, data, content_type or "application/octet-stream", metadata)


def read_count(max_count: int, limits: Limits) -> int:
    """0 means the default; larger than the cap is capped (as the contract says)."""
    return limits.default_read if max_count == 0 else min(max_count, limits.max_read)


def validate_subscribe(request: pb.SubscribeRequest, limits: Limits) -> None:
    violations: dict[str, str] = {}
    for field, values in (("stream_prefixes", request.stream_prefixes), ("event_types", request.event_types)):
        if len(values) > limits.max_filters:
            violations[field] = f"at most {limits.max_filters} entries"
        for i, value in enumerate(values):
            problem = _name_problem(value, field.rstrip("s").replace("_", " "))
            if problem:
                violations[f"{field}[{i}]"] = problem
    if violations:
        raise Invalid(violations)
