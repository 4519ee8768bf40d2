"""SQLite adapter (the embedded default): WAL, durable commits, one writer, concurrent readers.

* Durability: ``journal_mode=WAL`` + ``synchronous=FULL`` flushes the WAL on every
  commit, so an acknowledged append survives a crash of the process *and* of the
  machine. ``synchronous=NORMAL`` (``?synchronous=normal`` in the URL) survives a
  process crash (SIGKILL) but may lose the last commits on power loss.
* One writer connection in one thread, fed by :class:`ThreadedGroupCommitter`: appends that
  arrive during a flush share the next transaction (``BEGIN IMMEDIATE`` also locks
  out writers in other processes).
* Global position = ``INTEGER PRIMARY KEY`` assigned as head + 1 inside the write
  transaction: gap-free, and commit order because there is one writer at a time.
* Readers: a small thread pool, one read-only connection per thread; WAL lets them
  read while the writer commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from grpcmesh.services.eventstore.domain import (
    AppendResult,
    EventStoreError,
    ExpectedRevision,
    ProposedEvent,
    StreamMetadata,
)
from grpcmesh.services.eventstore.storage.base import (
    AppendCommand,
    ExistingEvent,
    HeadWatch,
    MetadataChange,
    deleted,
    encode_metadata,
    now_micros,
    plan_append,
    uuid_bytes,
    uuid_text,
)
from grpcmesh.services.eventstore.storage.batching import Outcome, ThreadedGroupCommitter
from grpcmesh.services.eventstore.storage.reads import (
    META_SCHEMA,
    SqlReads,
    metadata_from,
    metadata_query,
    upsert_metadata,
)

__all__ = ["SQLiteStorage"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    position     INTEGER PRIMARY KEY,
    event_id     BLOB    NOT NULL,  -- the UUID's 16 bytes
    stream_id    TEXT    NOT NULL,
    revision     INTEGER NOT NULL,
    type         TEXT    NOT NULL,
    data         BLOB    NOT NULL,
    content_type TEXT    NOT NULL,
    metadata     TEXT    NOT NULL,
    recorded_at  INTEGER NOT NULL,
    UNIQUE (stream_id, revision),
    UNIQUE (stream_id, event_id)  -- idempotency key; per stream keeps index writes local
);
"""
_INSERT = (
    "INSERT INTO events (position, event_id, stream_id, revision, type, data, content_type, metadata, "
    "recorded_at) VALUES (?,?,?,?,?,?,?,?,?)"
)


class SQLiteStorage(SqlReads):
    """Event store on one SQLite file."""

    _table = "events"
    _ph = "?"

    def __init__(
        self, path: str | Path, *, synchronous: Literal["full", "normal"] = "full", readers: int = 4
    ) -> None:
        self.path = str(path)
        self.synchronous = synchronous
        self.watch = HeadWatch()
        self._reader_pool = ThreadPoolExecutor(readers, thread_name_prefix="sqlite-reader")
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None
        self._committer = ThreadedGroupCommitter(self._commit_sync, self.watch.publish)

    # -- lifecycle -------------------------------------------------------------------------------
    async def open(self) -> None:
        await asyncio.to_thread(self._open_writer)
        self.watch.publish(await self.head_position())
        self._committer.start()

    async def close(self) -> None:
        await self._committer.stop()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._reader_pool.shutdown(wait=True)
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def _open_writer(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if self.synchronous == 'full' else 'NORMAL'}")
        conn.executescript(_SCHEMA + META_SCHEMA)
        self._writer = conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only=1")
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    async def _read(self, sql: str, params: Sequence[Any]) -> list[Any]:
        def run() -> list[Any]:
            return self._reader().execute(sql, params).fetchall()

        return await asyncio.get_running_loop().run_in_executor(self._reader_pool, run)

    # -- writes ----------------------------------------------------------------------------------
    async def append(
        self, stream_id: str, expected: ExpectedRevision, events: Sequence[ProposedEvent]
    ) -> AppendResult:
        return await self._committer.submit(AppendCommand(stream_id, expected, events))

    def _commit_sync(self, commands: Sequence[AppendCommand]) -> tuple[list[Outcome], int]:
        conn = self._writer
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            head: int = conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()[0]
            outcomes: list[Outcome] = []
            for cmd in commands:
                try:
                    outcome = self._append_one(conn, cmd, head)
                except EventStoreError as err:
                    outcomes.append(err)
                    continue
                outcomes.append(outcome)
                if not outcome.duplicate:
                    head = outcome.position
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):  # keep the original error, not "no transaction"
                conn.execute("ROLLBACK")
            raise
        return outcomes, head

    @staticmethod
    def _append_one(conn: sqlite3.Connection, cmd: AppendCommand, head: int) -> AppendResult:
        actual: int | None = conn.execute(
            "SELECT max(revision) FROM events WHERE stream_id = ?", (cmd.stream_id,)
        ).fetchone()[0]
        ids = [uuid_bytes(e.id) for e in cmd.events]
        rows = []
        if actual is not None:  # a new stream holds none of these ids
            rows = conn.execute(
                "SELECT event_id, stream_id, revision, position FROM events "
                f"WHERE stream_id = ? AND event_id IN ({','.join('?' * len(ids))})",
                [cmd.stream_id, *ids],
            ).fetchall()
        existing = {uuid_text(r[0]): ExistingEvent(r[1], r[2], r[3]) for r in rows}
        plan = plan_append(cmd, actual, existing)
        if isinstance(plan, AppendResult):
            return plan
        now = now_micros()
        conn.executemany(
            _INSERT,
            [
                (
                    head + 1 + i,
                    ids[i],
                    cmd.stream_id,
                    plan + i,
                    e.type,
                    e.data,
                    e.content_type,
                    encode_metadata(e.metadata),
                    now,
                )
                for i, e in enumerate(cmd.events)
            ],
        )
        n = len(cmd.events)
        return AppendResult(plan + n - 1, head + n)

    # -- stream metadata (rare writes: their own short connection, serialised by the write lock) ----
    async def set_stream_metadata(self, stream_id: str, metadata: StreamMetadata) -> StreamMetadata:
        return await asyncio.to_thread(self._change_metadata, stream_id, lambda _actual, _old: metadata)

    async def delete_stream(self, stream_id: str, expected: ExpectedRevision) -> StreamMetadata:
        def change(actual: int | None, old: StreamMetadata) -> StreamMetadata:
            return deleted(stream_id, expected, actual, old)

        return await asyncio.to_thread(self._change_metadata, stream_id, change)

    def _change_metadata(self, stream_id: str, change: MetadataChange) -> StreamMetadata:
        conn = self._connect()
        try:
            conn.execute(f"PRAGMA synchronous={'FULL' if self.synchronous == 'full' else 'NORMAL'}")
            conn.execute("BEGIN IMMEDIATE")
            try:
                actual = conn.execute(
                    "SELECT max(revision) FROM events WHERE stream_id = ?", [stream_id]
                ).fetchone()[0]
                new = change(actual, metadata_from(conn.execute(metadata_query("?"), [stream_id]).fetchall()))
                conn.execute(*upsert_metadata("?", stream_id, new))
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            return new
        finally:
            conn.close()

    async def head_position(self) -> int:
        rows = await self._read("SELECT coalesce(max(position), 0) FROM events", ())
        return int(rows[0][0])
