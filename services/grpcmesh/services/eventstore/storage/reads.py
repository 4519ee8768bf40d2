"""The SQL both adapters share: the read side and stream metadata, two placeholder styles.

SQLite and PostgreSQL store the same rows; only the table names, the parameter
placeholder (``?`` / ``%s``) and how a query runs differ, so the adapters inherit
these methods and provide ``_table``, ``_ph`` and ``_read``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from grpcmesh.services.eventstore.domain import RecordedEvent, StreamMetadata
from grpcmesh.services.eventstore.storage.base import EVENT_COLUMNS, first_readable, now_micros, row_to_event

__all__ = ["META_SCHEMA", "SqlReads", "upsert_metadata"]

# Same DDL for both engines; adapters add it to their schema.
META_SCHEMA = """
CREATE TABLE IF NOT EXISTS es_stream_meta (
    stream_id       TEXT PRIMARY KEY,
    max_count       BIGINT,
    max_age_seconds BIGINT,
    truncate_before BIGINT
);
"""


def upsert_metadata(ph: str, stream_id: str, meta: StreamMetadata) -> tuple[str, list[Any]]:
    sql = (
        "INSERT INTO es_stream_meta (stream_id, max_count, max_age_seconds, truncate_before) "
        f"VALUES ({ph}, {ph}, {ph}, {ph}) ON CONFLICT (stream_id) DO UPDATE SET "
        "max_count = excluded.max_count, max_age_seconds = excluded.max_age_seconds, "
        "truncate_before = excluded.truncate_before"
    )
    return sql, [stream_id, meta.max_count, meta.max_age_seconds, meta.truncate_before]


def metadata_query(ph: str) -> str:
    return f"SELECT max_count, max_age_seconds, truncate_before FROM es_stream_meta WHERE stream_id = {ph}"


def metadata_from(rows: Sequence[Any]) -> StreamMetadata:
    return StreamMetadata(*rows[0]) if rows else StreamMetadata()


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
        meta = await self.get_stream_metadata(stream_id)
        if meta != StreamMetadata():
            last = await self.stream_revision(stream_id) if meta.max_count is not None else None
            lowest, oldest = first_readable(meta, last, now_micros())
            sql += f" AND revision >= {ph} AND recorded_at >= {ph}"
            params += [lowest, oldest]
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
        sql = f"SELECT max(revision) FROM {self._table} WHERE stream_id = {self._ph}"
        value: int | None = (await self._read(sql, [stream_id]))[0][0]
        return value

    async def get_stream_metadata(self, stream_id: str) -> StreamMetadata:
        return metadata_from(await self._read(metadata_query(self._ph), [stream_id]))
