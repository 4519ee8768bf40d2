"""The durable store port of the orchestrator, and the URL → adapter factory.

Every transition is written with :meth:`SagaStore.save`, a compare-and-set on
``version`` that commits (fsync under SQLite ``synchronous=FULL``) before it
returns, so the engine never calls a participant ahead of its own state.
"""

from __future__ import annotations

from typing import Protocol

from grpcmesh.services.saga.domain import SagaEvent, SagaRecord, SagaStatus

__all__ = ["SagaStore", "VersionConflict", "make_store"]


class VersionConflict(Exception):
    """The stored version is not the one the write was based on."""


class SagaStore(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def create(self, record: SagaRecord) -> tuple[SagaRecord, bool]:
        """Inserts ``record`` (version 1) and its creation event; if the idempotency key exists
        returns that saga and False instead."""
        ...

    async def save(self, record: SagaRecord, event: SagaEvent) -> None:
        """Replaces the saga if the stored version is ``record.version - 1`` (else VersionConflict)
        and appends ``event`` to its history, in one transaction."""
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


def make_store(url: str) -> SagaStore:
    """``sqlite:///abs/path.db``, ``sqlite://rel/path.db`` or ``postgresql://user@host:port/db``."""
    if url.startswith("sqlite://"):
        from grpcmesh.services.saga.store.sqlite import SQLiteSagaStore

        path = url[len("sqlite://") :]
        if not path:
            raise ValueError(f"bad SQLite URL {url!r}: want sqlite:///path")
        return SQLiteSagaStore(path)
    if url.startswith(("postgresql://", "postgres://")):
        from grpcmesh.services.saga.store.postgres import PostgresSagaStore

        return PostgresSagaStore(url)
    raise ValueError(f"unsupported saga database URL {url!r}: use sqlite:///path or postgresql://...")
