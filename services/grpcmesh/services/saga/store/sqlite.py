"""SQLite adapter of the saga store: one WAL database, ``synchronous=FULL``, one writer thread.

All statements run on a single worker thread (sqlite3 connections are not shared
across threads). Writes use group commit: transitions of many sagas that arrive
while a commit is in flight share the next transaction and its one fsync. A write
refused by a version conflict fails alone (it raises before it writes anything);
any other failure rolls the group back and its writes are retried one per
transaction, so no write takes its neighbours down. A writer is answered only
after its group committed, so the engine never calls ahead of durable state.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

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

__all__ = ["SQLiteSagaStore"]

T = TypeVar("T")
Write = Callable[[sqlite3.Connection], Any]
Outcome = tuple[bool, Any]  # (committed, result) or (False, the exception)

_SCHEMA = schema(serial_key="INTEGER PRIMARY KEY AUTOINCREMENT", bigint="INTEGER", double="REAL")
_INSERT_EVENT = insert_event("?")


class SQLiteSagaStore:
    def __init__(self, path: str) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="saga-sqlite")
        self._pending: list[tuple[Write, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def _write(self, body: Write) -> Any:
        """Runs ``body`` in the next group transaction; returns once that group committed."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((body, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="saga-sqlite-writer")
        return await future

    async def _flush(self) -> None:
        while self._pending:
            group, self._pending = self._pending, []
            try:
                outcomes: list[Outcome] = await self._run(self._commit_group, [body for body, _ in group])
            except Exception as err:  # the group did not commit: every writer in it hears why
                outcomes = [(False, err)] * len(group)
            for (_, future), (ok, value) in zip(group, outcomes, strict=True):
                if future.done():  # the writer was cancelled; its transition committed anyway
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    def _commit_group(self, bodies: list[Write]) -> list[Outcome]:
        if len(bodies) > 1:
            try:
                return self._transaction(bodies)
            except Exception:  # rolled back: one write's failure must not fail the others
                pass
        return [self._alone(body) for body in bodies]

    def _alone(self, body: Write) -> Outcome:
        try:
            return self._transaction([body])[0]
        except Exception as err:
            return False, err

    def _transaction(self, bodies: list[Write]) -> list[Outcome]:
        """Runs ``bodies`` in one transaction (no savepoint each: a body that refuses raises
        VersionConflict before writing, and anything else rolls the whole transaction back)."""
        db = self._conn()
        outcomes: list[Outcome] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for body in bodies:
                try:
                    outcomes.append((True, body(db)))
                except VersionConflict as refused:
                    outcomes.append((False, refused))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return outcomes

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("SQLiteSagaStore is not open")
        return self._db

    async def open(self) -> None:
        def connect() -> None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=5000")
            db.executescript(_SCHEMA)
            self._db = db

        await self._run(connect)

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)  # answer queued writers first
        if self._db is not None:
            await self._run(self._conn().close)
            self._db = None
        self._pool.shutdown(wait=True)

    async def create(self, record: SagaRecord, *events: SagaEvent) -> tuple[SagaRecord, bool]:
        history = creation_rows(record, events)

        def insert(db: sqlite3.Connection) -> tuple[SagaRecord, bool]:
            row = db.execute(
                "SELECT body FROM sagas WHERE idempotency_key = ?", (record.idempotency_key,)
            ).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO sagas (saga_id, idempotency_key, status, version, body)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (
                        record.saga_id,
                        record.idempotency_key,
                        record.status.name,
                        record.version,
                        dumps(record),
                    ),
                )
                db.executemany(_INSERT_EVENT, history)
            return (record, True) if row is None else (loads(row[0]), False)

        result: tuple[SagaRecord, bool] = await self._write(insert)
        return result

    async def save(self, record: SagaRecord, *events: SagaEvent) -> None:
        base = record.version - len(events)

        def update(db: sqlite3.Connection) -> None:
            cur = db.execute(
                "UPDATE sagas SET status = ?, version = ?, body = ? WHERE saga_id = ? AND version = ?",
                (record.status.name, record.version, dumps(record), record.saga_id, base),
            )
            if cur.rowcount != 1:
                raise VersionConflict(f"saga {record.saga_id} is not at version {base}")
            db.executemany(_INSERT_EVENT, [event_row(record.saga_id, e) for e in events])

        await self._write(update)

    async def history(self, saga_id: str) -> list[SagaEvent]:
        def select() -> list[SagaEvent]:
            rows = self._conn().execute(
                f"SELECT {EVENT_COLUMNS} FROM saga_events WHERE saga_id = ? ORDER BY version", (saga_id,)
            )
            return [event_from_row(row) for row in rows.fetchall()]

        result: list[SagaEvent] = await self._run(select)
        return result

    async def get(self, saga_id: str) -> SagaRecord | None:
        def select() -> SagaRecord | None:
            row = self._conn().execute("SELECT body FROM sagas WHERE saga_id = ?", (saga_id,)).fetchone()
            return None if row is None else loads(row[0])

        result: SagaRecord | None = await self._run(select)
        return result

    async def page(self, status: SagaStatus | None, after: int, limit: int) -> list[tuple[int, SagaRecord]]:
        def select() -> list[tuple[int, SagaRecord]]:
            sql = "SELECT position, body FROM sagas WHERE position > ?"
            args: list[object] = [after]
            if status is not None:
                sql += " AND status = ?"
                args.append(status.name)
            rows = self._conn().execute(sql + " ORDER BY position LIMIT ?", (*args, limit)).fetchall()
            return [(pos, loads(body)) for pos, body in rows]

        result: list[tuple[int, SagaRecord]] = await self._run(select)
        return result

    async def unfinished(self) -> list[SagaRecord]:
        def select() -> list[SagaRecord]:
            marks = ",".join("?" for _ in ACTIVE)
            rows = (
                self._conn()
                .execute(
                    f"SELECT body FROM sagas WHERE status IN ({marks}) ORDER BY position",
                    tuple(s.name for s in ACTIVE),
                )
                .fetchall()
            )
            return [loads(body) for (body,) in rows]

        result: list[SagaRecord] = await self._run(select)
        return result
