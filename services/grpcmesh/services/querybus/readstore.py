"""The read-model database: SQLite (WAL) on one worker thread, checkpoints beside the models.

``apply_batch`` runs a projection over a batch of events and moves its checkpoint
in the SAME transaction, so after any crash the read model and the checkpoint
agree: a restarted projector resumes after the last committed event and applies
nothing twice (exactly-once effect on top of the at-least-once subscription).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from grpcmesh.api.v1 import eventstore_pb2 as es
from grpcmesh.services.cqrs.queries import Projection

__all__ = ["ReadStore"]

T = TypeVar("T")

_CHECKPOINTS = (
    "CREATE TABLE IF NOT EXISTS checkpoints (projection TEXT PRIMARY KEY, position INTEGER NOT NULL)"
)


class ReadStore:
    """All access goes through :meth:`run` on a single thread that owns the connection."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="readstore")
        self._conn: sqlite3.Connection | None = None

    async def open(self, projections: Sequence[Projection]) -> None:
        def setup() -> None:
            conn = sqlite3.connect(self.path, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(_CHECKPOINTS)
            for projection in projections:
                for ddl in projection.schema:
                    conn.execute(ddl)
            self._conn = conn

        await self._call(setup)

    async def close(self) -> None:
        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await self._call(shut)
        self._pool.shutdown(wait=True)

    async def _call(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn(connection)`` on the database thread (for queries: read only)."""

        def call() -> T:
            assert self._conn is not None, "ReadStore.open() first"
            return fn(self._conn)

        return await self._call(call)

    async def checkpoint(self, projection: str) -> int:
        def read(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT position FROM checkpoints WHERE projection = ?", (projection,)
            ).fetchone()
            return int(row[0]) if row else 0

        return await self.run(read)

    async def apply_batch(self, projection: Projection, events: Sequence[es.RecordedEvent]) -> int:
        """Applies ``events`` (position order) and stores the new checkpoint atomically; returns it.

        Events at or below the stored checkpoint are skipped, so a redelivered batch is harmless.
        """

        def apply(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    "SELECT position FROM checkpoints WHERE projection = ?", (projection.name,)
                ).fetchone()
                position = int(row[0]) if row else 0
                for event in events:
                    if event.position > position:
                        projection.apply(conn, event)
                        position = event.position
                conn.execute(
                    "INSERT INTO checkpoints (projection, position) VALUES (?, ?) "
                    "ON CONFLICT (projection) DO UPDATE SET position = excluded.position",
                    (projection.name, position),
                )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return position

        return await self.run(apply)
