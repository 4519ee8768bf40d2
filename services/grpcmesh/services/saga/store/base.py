"""The durable store port of the orchestrator (adapters import it; :mod:`.factory` picks one).

Every transition is written with :meth:`SagaStore.save`, a compare-and-set on
``version`` (one save may carry consecutive transitions, e.g. a step's result and the
next step's start, each with its own history event) that commits (fsync under SQLite
``synchronous=FULL``) before it returns, so the engine never calls a participant ahead of its own state.
"""

from __future__ import annotations

from typing import Protocol

from grpcmesh.services.saga.domain import SagaEvent, SagaRecord, SagaStatus

__all__ = ["SagaStore", "VersionConflict"]


class VersionConflict(Exception):
    """The stored version is not the one the write was based on."""


class SagaStore(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def create(self, record: SagaRecord, *events: SagaEvent) -> tuple[SagaRecord, bool]:
        """Inserts ``record`` and its history in one transaction: ``events`` (one per version,
        oldest first: the creation and what was committed with it), or with none its creation
        event alone (``record`` at version 1). If the idempotency key exists, returns that saga
        and False instead."""
        ...

    async def save(self, record: SagaRecord, *events: SagaEvent) -> None:
        """Replaces the saga if the stored version is ``record.version - len(events)`` (else
        VersionConflict) and appends ``events`` (one per version step) to its history, in one
        transaction."""
        ...

    async def history(self, saga_id: str) -> list[SagaEvent]:
        """Every event of the saga, oldest first (creation included); [] for an unknown id."""
        ...

    async def get(self, saga_id: str) -> SagaRecord | None: ...

    async def page(self, status: SagaStatus | None, after: int, limit: int) -> list[tuple[int, SagaRecord]]:
        """Sagas in creation order after position ``after`` (0: from the start), with positions."""
        ...

    async def unfinished(self) -> list[SagaRecord]:
        """Every RUNNING or COMPENSATING saga, oldest first (resumed on startup)."""
        ...
