"""Small builders shared by the storage contract's parts."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from grpcmesh.services.eventstore.domain import ProposedEvent
from grpcmesh.services.eventstore.storage.base import Storage

# Opens one more storage instance on the test's database (as another process would).
OpenStorage = Callable[[], Awaitable[Storage]]


def ev(type_: str = "Happened", data: bytes = b"{}", **meta: str) -> ProposedEvent:
    return ProposedEvent(str(uuid.uuid4()), type_, data, "application/json", meta)


def stream() -> str:
    return f"order-{uuid.uuid4().hex[:8]}"
