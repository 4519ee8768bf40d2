"""Input rules of the event store API: requests in, domain values out, or every violation named.

Pure functions over the generated request messages, so the rules are unit-testable
and the gRPC layer only maps :class:`Invalid` to INVALID_ARGUMENT + BadRequest.
"""

from __future__ import annotations

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
    seen: set[str] = set()
    total = 0
    for i, e in enumerate(request.events[: limits.max_batch_events]):
        field = f"events[{i}]"
        try:
            event_id = str(uuid.UUID(e.id))
        except ValueError:
            violations[f"{field}.id"] = "must be a UUID"
            event_id = e.id
        else:
            if event_id in seen:
                violations[f"{field}.id"] = "duplicate event id in this append"
            seen.add(event_id)
        problem = _name_problem(e.type, "event type")
        if problem:
            violations[f"{field}.type"] = problem
        if len(e.content_type) > _MAX_NAME:
            violations[f"{field}.content_type"] = f"must be at most {_MAX_NAME} characters"
        if any(not k for k in e.metadata):
            violations[f"{field}.metadata"] = "keys must not be empty"
        size = len(e.data) + len(e.type) + sum(len(k) + len(v) for k, v in e.metadata.items())
        total += size
        if size > limits.max_event_bytes:
            violations[f"{field}.data"] = f"event is {size} bytes; the limit is {limits.max_event_bytes}"
        events.append(
            ProposedEvent(
                event_id, e.type, e.data, e.content_type or "application/octet-stream", dict(e.metadata)
            )
        )
    if total > limits.max_batch_bytes and "events" not in violations:
        violations["events"] = f"append is {total} bytes; the limit is {limits.max_batch_bytes}"
    if violations:
        raise Invalid(violations)
    return request.stream_id, expected_revision(request), events


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
