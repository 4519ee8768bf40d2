"""PostgreSQL adapter: psycopg 3 (async), a reader pool, one writer connection, group commit.

Global position, gap-free in commit order, without ``LOCK TABLE``: a one-row table
``es_head`` holds the last position. A write transaction locks that row
(``SELECT … FOR UPDATE``) first, checks and inserts, sets the new head and commits.
The row lock is held until the commit is durable, so positions are handed out in
commit order and a rolled-back transaction leaves no gap; readers are never blocked
(MVCC), and writers in other processes queue on the row, not on the table. The
expected-revision check runs inside that transaction, after the lock, so it sees
every earlier commit.

The price is that commits of all writers are serialised (one WAL flush at a
time) — what any gap-free, commit-ordered position costs; an advisory lock would
serialise the same way, and the row also stores the head (an O(1) read for
subscribers). Inside one process the :class:`GroupCommitter` hides it: appends that
arrive during a flush share the next transaction, so the lock and the flush are paid
once per group. Measured in bench/eventstore.py with 16 concurrent writers: ~3,200
appends/s against ~700/s for eventsourcing's ``LOCK TABLE … IN EXCLUSIVE MODE`` per
insert; sequential single appends ~860/s vs ~780/s. Two pipelined round trips per
group: (lock + every check), then (one ``INSERT … unnest`` + head + NOTIFY + COMMIT).

The ``NOTIFY`` (delivered at commit) is only a hint to wake subscribers of other
processes; they always read the log afterwards, and poll when no hint comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from grpcmesh.sdk.waiting import cancel_and_wait
from grpcmesh.services.eventstore import domain
from grpcmesh.services.eventstore.storage.base import (
    AppendCommand,
    ExistingEvent,
    HeadWatch,
    MetadataChange,
    deleted,
    encode_metadata,
    now_micros,
    plan_append,
)
from grpcmesh.services.eventstore.storage.batching import GroupCommitter, Outcome
from grpcmesh.services.eventstore.storage.reads import (
    META_SCHEMA,
    SqlReads,
    metadata_from,
    metadata_query,
    upsert_metadata,
)

__all__ = ["PostgresStorage"]

log = logging.getLogger("grpcmesh.eventstore.postgres")

CHANNEL = "grpcmesh_eventstore"
_SCHEMA_LOCK = 0x6772706D  # advisory lock id so concurrent first starts do not race on DDL
_SCHEMA = (
    f"""
SELECT pg_advisory_xact_lock({_SCHEMA_LOCK});
CREATE TABLE IF NOT EXISTS es_events (
    position     BIGINT PRIMARY KEY,
    event_id     UUID   NOT NULL,
    stream_id    TEXT   NOT NULL,
    revision     BIGINT NOT NULL,
    type         TEXT   NOT NULL,
    data         BYTEA  NOT NULL,
    content_type TEXT   NOT NULL,
    metadata     TEXT   NOT NULL,
    recorded_at  BIGINT NOT NULL,
    UNIQUE (stream_id, revision),
    UNIQUE (stream_id, event_id)
);
CREATE TABLE IF NOT EXISTS es_head (
    id       INT PRIMARY KEY CHECK (id = 1),
    position BIGINT NOT NULL
);
INSERT INTO es_head (id, position) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
"""
    + META_SCHEMA
)
_CHECK = (
    "SELECT 'r', NULL::uuid, NULL, max(revision), NULL FROM es_events WHERE stream_id = %s "
    "UNION ALL SELECT 'e', event_id, stream_id, revision, position FROM es_events "
    "WHERE stream_id = %s AND event_id = ANY(%s)"
)
# One statement per group whatever its size: rows travel as nine arrays (unnest), not as
# one protocol message per row (measured ~3x faster than executemany for 100-event appends).
_INSERT = (
    "INSERT INTO es_events (position, event_id, stream_id, revision, type, data, content_type, metadata, "
    "recorded_at) SELECT * FROM unnest(%s::bigint[], %s::uuid[], %s::text[], %s::bigint[], %s::text[], "
    "%s::bytea[], %s::text[], %s::text[], %s::bigint[])"
)


class _GroupPlan:
    """Judges the appends of one group against the checked state plus the group's own earlier appends."""

    def __init__(self, head: int) -> None:
        self.head = head
        self.rows: list[tuple[Any, ...]] = []
        self._revisions: dict[str, int] = {}
        self._ids: dict[str, ExistingEvent] = {}

    def add(self, cmd: AppendCommand, checked: Sequence[Any]) -> Outcome:
        actual: int | None = None
        existing: dict[str, ExistingEvent] = {}
        for kind, event_id, stream_id, revision, position in checked:
            if kind == "r":
                actual = revision
            else:
                existing[str(event_id)] = ExistingEvent(stream_id, revision, position)
        actual = self._revisions.get(cmd.stream_id, actual)
        existing.update((e.id, self._ids[e.id]) for e in cmd.events if e.id in self._ids)
        try:
            first = plan_append(cmd, actual, existing)
        except domain.EventStoreError as err:
            return err
        if isinstance(first, domain.AppendResult):
            return first
        now = now_micros()
        for i, e in enumerate(cmd.events):
            position, revision = self.head + 1 + i, first + i
            self.rows.append(
                (
                    position,
                    uuid.UUID(e.id),
                    cmd.stream_id,
                    revision,
                    e.type,
                    e.data,
                    e.content_type,
                    encode_metadata(e.metadata),
                    now,
                )
            )
            self._ids[e.id] = ExistingEvent(cmd.stream_id, revision, position)
        n = len(cmd.events)
        self.head += n
        self._revisions[cmd.stream_id] = first + n - 1
        return domain.AppendResult(first + n - 1, self.head)


class PostgresStorage(SqlReads):
    """Event store on a PostgreSQL database (``postgresql://…`` DSN)."""

    _table = "es_events"
    _ph = "%s"

    def __init__(self, dsn: str, *, pool_size: int = 8) -> None:
        self.dsn = dsn
        self.watch = HeadWatch()
        self._pool = AsyncConnectionPool(
            dsn, min_size=1, max_size=pool_size, kwargs={"autocommit": True}, open=False
        )
        self._writer: psycopg.AsyncConnection[Any] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._committer = GroupCommitter(self._commit_group, self.watch.publish)

    # -- lifecycle -------------------------------------------------------------------------------
    async def open(self) -> None:
        self._writer = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
        async with self._writer.transaction():
            await self._writer.execute(_SCHEMA)
        await self._pool.open(wait=True)
        self.watch.publish(await self.head_position())
        self._listener = asyncio.create_task(self._listen(), name="eventstore-listen")
        self._committer.start()

    async def close(self) -> None:
        await self._committer.stop()
        await cancel_and_wait(self._listener)
        self._listener = None
        if self._writer is not None:
            await self._writer.close()
            self._writer = None
        await self._pool.close()

    async def _listen(self) -> None:
        """Turns NOTIFYs from any process into wake-ups (a hint; readers still read)."""
        try:
            async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                async for note in conn.notifies():
                    with contextlib.suppress(ValueError):
                        self.watch.publish(int(note.payload))
        except psycopg.Error as err:
            log.warning("LISTEN connection lost (%s); subscribers fall back to polling", err)

    # -- writes ----------------------------------------------------------------------------------
    async def append(
        self, stream_id: str, expected: domain.ExpectedRevision, events: Sequence[domain.ProposedEvent]
    ) -> domain.AppendResult:
        return await self._committer.submit(AppendCommand(stream_id, expected, events))

    async def _commit_group(self, commands: Sequence[AppendCommand]) -> tuple[list[Outcome], int]:
        conn = self._writer
        if conn is None or conn.closed:
            conn = self._writer = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
        try:
            async with conn.pipeline() as pipeline:
                # round trip 1: take the head lock, then check every append against the committed state
                await conn.execute("BEGIN")
                lock = await conn.execute("SELECT position FROM es_head WHERE id = 1 FOR UPDATE")
                checks = [
                    await conn.execute(
                        _CHECK, (c.stream_id, c.stream_id, [uuid.UUID(e.id) for e in c.events])
                    )
                    for c in commands
                ]
                await pipeline.sync()
                row = await lock.fetchone()
                assert row is not None
                plan = _GroupPlan(row[0])
                outcomes = [
                    plan.add(cmd, await check.fetchall()) for cmd, check in zip(commands, checks, strict=True)
                ]
                # round trip 2: insert, move the head, hint subscribers, commit
                if plan.rows:
                    await conn.execute(_INSERT, [list(column) for column in zip(*plan.rows, strict=True)])
                    await conn.execute("UPDATE es_head SET position = %s WHERE id = 1", (plan.head,))
                    await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(plan.head)))
                await conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(psycopg.Error):
                await conn.execute("ROLLBACK")
            raise
        return outcomes, plan.head

    # -- reads -----------------------------------------------------------------------------------
    async def _read(self, sql: str, params: Sequence[Any]) -> list[Any]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall()

    # -- stream metadata (under the head lock, so a delete's revision check is ordered with appends) --
    async def set_stream_metadata(
        self, stream_id: str, metadata: domain.StreamMetadata
    ) -> domain.StreamMetadata:
        return await self._change_metadata(stream_id, lambda _actual, _old: metadata)

    async def delete_stream(self, stream_id: str, expected: domain.ExpectedRevision) -> domain.StreamMetadata:
        def change(actual: int | None, old: domain.StreamMetadata) -> domain.StreamMetadata:
            return deleted(stream_id, expected, actual, old)

        return await self._change_metadata(stream_id, change)

    async def _change_metadata(self, stream_id: str, change: MetadataChange) -> domain.StreamMetadata:
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT position FROM es_head WHERE id = 1 FOR UPDATE")
            cur = await conn.execute("SELECT max(revision) FROM es_events WHERE stream_id = %s", [stream_id])
            row = await cur.fetchone()
            old = metadata_from(await (await conn.execute(metadata_query("%s"), [stream_id])).fetchall())
            new = change(row[0] if row else None, old)
            await conn.execute(*upsert_metadata("%s", stream_id, new))
        return new

    async def head_position(self) -> int:
        rows = await self._read("SELECT position FROM es_head WHERE id = 1", ())
        return int(rows[0][0])
