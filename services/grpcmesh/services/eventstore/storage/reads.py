"""The read side both SQL adapters share: one query builder, two placeholder styles.

SQLite and PostgreSQL store the same rows; only the table name, the parameter
placeholder (``?`` / ``%s``) and how a query runs differ, so the adapters inherit
these methods and provide ``_table``, ``_ph`` and ``_read``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from grpcmesh.services.eventstore.domain import RecordedEvent
from grpcmesh.services.eventstore.storage.base import EVENT_COLUMNS, row_to_event

__all__ = ["SqlReads"]


class SqlReads:
    _table: str
    _ph: str

    async def _read(self, sql: str, params: Sequence[Any]) -> list[Any]:
        raise NotImplementedError

    async def read_stream(
        self,
        stream_id: str,
        *,
        backwards: bool = False,
        from_revision: int | None = None,
        max_count: int = 1000,
    ) -> list[RecordedEvent]:
        ph = self._ph
        sql = f"SELECT {EVENT_COLUMNS} FROM {self._table} WHERE stream_id = {ph}"
        params: list[Any] = [stream_id]
        if from_revision is not None:
            sql += f" AND revision {'<=' if backwards else '>='} {ph}"
            params.append(from_revision)
        sql += f" ORDER BY revision {'DESC' if backwards else 'ASC'} LIMIT {ph}"
        params.append(max_count)
        return [row_to_event(r) for r in await self._read(sql, params)]

    async def read_all(
        self,
        after: int,
        max_count: int,
        *,
        upto: int | None = None,
        stream_prefixes: Sequence[str] = (),
        event_types: Sequence[str] = (),
    ) -> list[RecordedEvent]:
        ph = self._ph
        sql = f"SELECT {EVENT_COLUMNS} FROM {self._table} WHERE position > {ph}"
        params: list[Any] = [after]
        if upto is not None:
            sql += f" AND position <= {ph}"
            params.append(upto)
        if stream_prefixes:
            sql += " AND (" + " OR ".join(f"substr(stream_id, 1, {ph}) = {ph}" for _ in stream_prefixes) + ")"
            for prefix in stream_prefixes:
                params += [len(prefix), prefix]
        if event_types:
            sql += f" AND type IN ({', '.join([ph] * len(event_types))})"
            params += list(event_types)
        sql += f" ORDER BY position LIMIT {ph}"
        params.append(max_count)
        return [row_to_event(r) for r in await self._read(sql, params)]

    async def stream_revision(self, stream_id: str) -> int | None:
        rows = await self._read(
            f"SELECT max(revision) FROM {self._table} WHERE stream_id = {self._ph}", [stream_id]
        )
        value: int | None = rows[0][0]
        return value
