"""What an application gives the query bus: projections and the queries that read them.

Both are plain callables on a ``sqlite3.Connection`` so they stay synchronous,
small and testable against a temporary database. A projection's ``apply`` runs
inside the transaction that also advances its checkpoint: it must not commit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message

from grpcmesh.api.v1 import eventstore_pb2 as es
from grpcmesh.services.cqrs.envelope import type_url_of
from grpcmesh.services.cqrs.handlers import Violations, no_violations

__all__ = ["Projection", "QueryHandler"]


@dataclass(frozen=True)
class Projection:
    """A read model: its tables (``schema``, idempotent DDL) and how one event changes them."""

    name: str
    schema: tuple[str, ...]
    apply: Callable[[sqlite3.Connection, es.RecordedEvent], None]


@dataclass(frozen=True)
class QueryHandler:
    """Answers one query message type from the read model of ``projection``.

    ``run`` returns the result message or raises
    :class:`~grpcmesh.services.cqrs.rejection.Rejected` (e.g. NOT_FOUND).
    """

    message_type: type[Message]
    projection: str
    run: Callable[[sqlite3.Connection, Any], Message]
    validate: Callable[[Any], Violations] = field(default=no_violations)

    @property
    def type_url(self) -> str:
        return type_url_of(self.message_type)
