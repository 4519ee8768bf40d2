"""Active/standby orchestrators: one lock per database decides which instance drives sagas.

Two orchestrators driving the same saga would call its participants twice, so
exactly one instance per database is *active*; the others are standby: they
answer UNAVAILABLE (marked not-reached, so the mesh retries on the active one)
and report NOT_SERVING, until the lock is theirs. The lock is one the system
releases when its holder dies - no lease to expire, no clock to trust:

* SQLite: ``flock`` on ``<db>.lock`` (released when the process exits);
* PostgreSQL: a session-level ``pg_try_advisory_lock`` (released when the
  holder's connection ends). The active instance checks its connection every
  couple of seconds; losing it means losing the lock, and the process exits so
  its supervisor restarts it as a standby.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from typing import Protocol

import psycopg

__all__ = ["FileLock", "Leadership", "PostgresLock", "make_leadership"]

# pg advisory lock key: the first 8 bytes of sha1("grpcmesh.saga.orchestrator"), as a signed bigint
_PG_KEY = -0x3B6A_4E1F_2C55_0A17


class Leadership(Protocol):
    async def try_acquire(self) -> bool:
        """Takes the lock if free (never waits); True while this instance holds it."""
        ...

    async def held(self) -> bool:
        """Whether the lock is still ours (False: lost, stop driving sagas)."""
        ...

    async def release(self) -> None: ...


class FileLock:
    """``flock`` on a file next to the SQLite database."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    async def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    async def held(self) -> bool:
        return self._fd is not None

    async def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class PostgresLock:
    """A session-level advisory lock on a connection of its own."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: psycopg.AsyncConnection[tuple[object, ...]] | None = None
        self._held = False

    async def try_acquire(self) -> bool:
        if self._held:
            return True
        try:
            if self._conn is None or self._conn.closed:
                self._conn = await psycopg.AsyncConnection.connect(
                    self._dsn, autocommit=True, connect_timeout=5
                )
            cur = await self._conn.execute("SELECT pg_try_advisory_lock(%s)", (_PG_KEY,))
            row = await cur.fetchone()
        except psycopg.Error:
            await self._drop()
            return False
        self._held = bool(row and row[0])
        return self._held

    async def held(self) -> bool:
        if not self._held or self._conn is None:
            return False
        try:
            async with asyncio.timeout(5):
                await self._conn.execute("SELECT 1")
        except (psycopg.Error, TimeoutError):
            await self._drop()
            return False
        return True

    async def _drop(self) -> None:
        self._held = False
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def release(self) -> None:
        await self._drop()  # ending the session releases the lock


def make_leadership(db_url: str) -> Leadership:
    """The lock for the store at ``db_url`` (same URL forms as the store)."""
    if db_url.startswith("sqlite://"):
        return FileLock(db_url[len("sqlite://") :] + ".lock")
    if db_url.startswith(("postgresql://", "postgres://")):
        return PostgresLock(db_url)
    raise ValueError(f"unsupported database URL {db_url!r}")
