"""What a command handler is: a command type, its aggregate, validation and decision.

Kept declarative and pure so the command bus (gRPC, event store, retries) is
the same for every aggregate, and so handlers are unit-testable without I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message

from grpcmesh.services.cqrs.aggregate import Aggregate
from grpcmesh.services.cqrs.codec import EventCodec
from grpcmesh.services.cqrs.envelope import type_url_of

__all__ = ["CommandHandler", "Violations", "no_violations"]

# field path (relative to the command message) → why it is wrong
Violations = Mapping[str, str]


def no_violations(_: Any) -> Violations:
    return {}


@dataclass(frozen=True)
class CommandHandler:
    """Routes one command message type to an aggregate method.

    ``decide(aggregate, command)`` triggers events or raises DomainError. ``creates``
    commands run on a new aggregate (an existing one is the domain's call to refuse);
    other commands on a missing aggregate are NOT_FOUND. Streams are named
    ``f"{category}-{aggregate_id}"``.
    """

    message_type: type[Message]
    aggregate: type[Aggregate]
    category: str
    codec: EventCodec
    decide: Callable[[Any, Any], None]
    validate: Callable[[Any], Violations] = field(default=no_violations)
    creates: bool = False

    @property
    def type_url(self) -> str:
        return type_url_of(self.message_type)

    def stream_id(self, aggregate_id: str) -> str:
        return f"{self.category}-{aggregate_id}"
