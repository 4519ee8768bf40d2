"""PostgreSQL adapter of the saga store: psycopg 3 (async) over a small connection pool.

Same table shape as the SQLite adapter; every statement autocommits (one row per
saga, so a transition is one ``UPDATE … WHERE version = expected``). Start's
idempotency rides on the unique ``idempotency_key``: ``INSERT … ON CONFLICT DO
NOTHING`` then read the winner, so two orchestrators racing on a key agree.
"""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from grpcmesh.services.saga.domain import ACTIVE, SagaEvent, SagaRecord, SagaStatus
from grpcmesh.services.saga.store.base import VersionConflict
from grpcmesh.services.saga.store.codec import (
    EVENT_COLUMNS,
    creation_rows,
    dumps,
    event_from_row,
    event_row,
    insert_event,
    loads,
    schema,
)

__all__ = ["PostgresSagaStore"]

_SCHEMA = schema(serial_key="BIGSERIAL PRIMARY KEY", bigint="BIGINT", double="DOUBLE PRECISION")
_INSERT_EVENT = insert_event("%s")


class PostgresSagaStore:
    def __init__(self, dsn: str, *, pool_size: int = 4) -> None:
        self._pool = AsyncConnectionPool(
            dsn, min_size=1, max_size=pool_size, kwargs={"autocommit": True}, open=False
        )

    async def open(self) -> None:
        await self._pool.open(wait=True)
        async with self._pool.connection() as conn:
            await conn.execute(_SCHEMA)

    async def close(self) -> None:
        await self._pool.close()

    async def create(self, record: SagaRecord, *events: SagaEvent) -> tuple[SagaRecord, bool]:
        history = creation_rows(record, events)
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "INSERT INTO sagas (saga_id, idempotency_key, status, version, body)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (idempotency_key) DO NOTHING RETURNING position",
                (record.saga_id, record.idempotency_key, record.status.name, record.version, dumps(record)),
            )
            if await cur.fetchone() is not None:
                for event in history:
                    await conn.execute(_INSERT_EVENT, event)
                return record, True
            cur = await conn.execute(
                "SELECT body FROM sagas WHERE idempotency_key = %s", (record.idempotency_key,)
            )
            row = await cur.fetchone()
        if row is None:  # pragma: no cover - the conflicting row cannot vanish (no deletes)
            raise VersionConflict(f"saga with key {record.idempotency_key!r} disappeared")
        return loads(row[0]), False

    async def save(self, record: SagaRecord, *events: SagaEvent) -> None:
        base = record.version - len(events)
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "UPDATE sagas SET status = %s, version = %s, body = %s WHERE saga_id = %s AND version = %s",
                (record.status.name, record.version, dumps(record), record.saga_id, base),
            )
            if cur.rowcount != 1:
                raise VersionConflict(f"saga {record.saga_id} is not at version {base}")
            for event in events:
                await conn.execute(_INSERT_EVENT, event_row(record.saga_id, event))

    async def history(self, saga_id: str) -> list[SagaEvent]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM saga_events WHERE saga_id = %s ORDER BY version", (saga_id,)
            )
            rows = await cur.fetchall()
        return [event_from_row(row) for row in rows]

    async def get(self, saga_id: str) -> SagaRecord | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT body FROM sagas WHERE saga_id = %s", (saga_id,))
            row = await cur.fetchone()
        return None if row is None else loads(row[0])

    async def page(self, status: SagaStatus | None, after: int, limit: int) -> list[tuple[int, SagaRecord]]:
        name = None if status is None else status.name
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT position, body FROM sagas WHERE position > %s AND (%s::text IS NULL OR status = %s)"
                " ORDER BY position LIMIT %s",
                (after, name, name, limit),
            )
            rows = await cur.fetchall()
        return [(int(pos), loads(body)) for pos, body in rows]

    async def unfinished(self) -> list[SagaRecord]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT body FROM sagas WHERE status = ANY(%s) ORDER BY position", ([s.name for s in ACTIVE],)
            )
            rows = await cur.fetchall()
        return [loads(body) for (body,) in rows]
