"""The embedded span store: finished spans in one SQLite file, read back by ``grpcmesh traces``.

Traces should be viewable on a laptop with nothing else running, so the default
backend is a file. Several processes (sidecars, services) may append to the
same file: WAL mode, ``busy_timeout`` and one short transaction per exported
batch (the exporter runs behind a BatchSpanProcessor).

Every search filter has an index (see :mod:`grpcmesh.sdk.spansearch`): service,
span name, errors (a partial index holding only error spans), duration, start
time, request id, and attributes through ``span_attrs`` (one row per span
attribute, keyed ``(key, value, start_ns)``). Writes and retention are
:class:`grpcmesh.sdk.spanexport.SpanStoreExporter`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_SPANS",
    "AmbiguousTrace",
    "SpanRecord",
    "TraceSummary",
    "find_trace",
    "get_trace",
    "span_row",
    "store_bytes",
    "write_rows",
]

REQUEST_ID_KEYS = ("mesh.request_id", "request_id", "grpcmesh.request_id")
DEFAULT_MAX_SPANS = 100_000
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
WAL_LIMIT = 16 * 1024 * 1024
MAX_ATTR_VALUE = 256  # longer attribute values are kept on the span but not indexed
_SCHEMA = """
CREATE TABLE IF NOT EXISTS spans (
    trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_id TEXT, name TEXT NOT NULL,
    kind TEXT NOT NULL, service TEXT NOT NULL, start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL,
    status_code TEXT NOT NULL, status_message TEXT, attributes TEXT NOT NULL, request_id TEXT,
    events TEXT
);
CREATE INDEX IF NOT EXISTS spans_trace ON spans (trace_id);
CREATE INDEX IF NOT EXISTS spans_start ON spans (start_ns);
CREATE INDEX IF NOT EXISTS spans_request ON spans (request_id);
CREATE INDEX IF NOT EXISTS spans_service ON spans (service, start_ns);
CREATE INDEX IF NOT EXISTS spans_name ON spans (name, start_ns);
CREATE INDEX IF NOT EXISTS spans_errors ON spans (start_ns) WHERE status_code = 'ERROR';
CREATE INDEX IF NOT EXISTS spans_service_errors ON spans (service, start_ns) WHERE status_code = 'ERROR';
CREATE INDEX IF NOT EXISTS spans_duration ON spans (end_ns - start_ns);
CREATE TABLE IF NOT EXISTS span_attrs (
    key TEXT NOT NULL, value TEXT NOT NULL, start_ns INTEGER NOT NULL, span INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS span_attrs_kv ON span_attrs (key, value, start_ns);
CREATE INDEX IF NOT EXISTS span_attrs_start ON span_attrs (start_ns);
"""
_COLUMNS = (
    "trace_id, span_id, parent_id, name, kind, service, start_ns, end_ns,"
    " status_code, status_message, attributes, request_id, events"
)
_INSERT = f"INSERT INTO spans ({_COLUMNS}) VALUES ({','.join('?' * 13)})"


@dataclass(frozen=True)
class SpanRecord:
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: str
    service: str
    start_ns: int
    end_ns: int
    status_code: str
    status_message: str | None
    attributes: dict[str, Any]
    request_id: str | None
    events: tuple[dict[str, Any], ...] = ()  # {"name", "time_ns", "attributes"}

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    @property
    def error(self) -> bool:
        return self.status_code == "ERROR"


@dataclass(frozen=True)
class TraceSummary:
    trace_id: str
    root_name: str
    services: tuple[str, ...]
    span_count: int
    start_ns: int
    duration_ms: float
    error: bool
    request_id: str | None


class AmbiguousTrace(LookupError):
    """A trace id prefix or request id that matches more than one trace."""


def connect(path: str | Path, *, create: bool = False) -> sqlite3.Connection:
    """A connection with WAL and a busy timeout; ``create`` makes the schema (writers only)."""
    if not create and not Path(path).exists():
        raise FileNotFoundError(f"no span store at {path}")
    conn = sqlite3.connect(str(path), timeout=10.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    if create:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT}")
        conn.executescript(_SCHEMA)
    _upgrade(conn)
    return conn


def _upgrade(conn: sqlite3.Connection) -> None:
    """Brings a store written by an older grpcmesh up to this schema (its search indexes, events)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(spans)")}
    if not columns:
        return
    if "events" not in columns:
        conn.execute("ALTER TABLE spans ADD COLUMN events TEXT")
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'span_attrs_kv'").fetchone():
        conn.executescript(_SCHEMA)  # the indexes (a one-time build); old spans' attributes unindexed


def span_row(span: ReadableSpan) -> tuple[Any, ...]:
    ctx = span.get_span_context()
    assert ctx is not None
    attributes = {k: (list(v) if isinstance(v, tuple) else v) for k, v in (span.attributes or {}).items()}
    request_id = next((str(attributes[k]) for k in REQUEST_ID_KEYS if k in attributes), None)
    service = str(span.resource.attributes.get("service.name", "unknown"))
    parent = format(span.parent.span_id, "016x") if span.parent is not None else None
    status = span.status
    return (
        format(ctx.trace_id, "032x"),
        format(ctx.span_id, "016x"),
        parent,
        span.name,
        span.kind.name,
        service,
        span.start_time or 0,
        span.end_time or span.start_time or 0,
        status.status_code.name,
        status.description,
        json.dumps(attributes, default=str),
        request_id,
        _events(span),
    )


def _events(span: ReadableSpan) -> str | None:
    if not span.events:
        return None
    return json.dumps(
        [
            {"name": e.name, "time_ns": e.timestamp, "attributes": dict(e.attributes or {})}
            for e in span.events[:64]
        ],
        default=str,
    )


def attr_text(value: Any) -> str:
    """An attribute value as the text ``span_attrs`` indexes and searches compare against."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, default=str)


def write_rows(conn: sqlite3.Connection, rows: Iterable[tuple[Any, ...]]) -> int:
    """Inserts span rows (the ``_COLUMNS`` order) and their attribute index rows; returns the count.

    The caller holds the write transaction (``BEGIN IMMEDIATE``), so nobody else inserts and the
    new rows take the rowids after the current maximum, one each: the attribute rows name their
    span by that rowid, inserted in one statement. Request ids have their own column.
    """
    rows = list(rows)
    if not rows:
        return 0
    base = int(conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM spans").fetchone()[0])
    conn.executemany(_INSERT, rows)
    last = int(conn.execute("SELECT last_insert_rowid()").fetchone()[0])
    if last != base + len(rows):  # not consecutive (rowids exhausted): refuse rather than mislink
        raise sqlite3.IntegrityError(f"span rowids not consecutive ({base} + {len(rows)} != {last})")
    conn.executemany(
        "INSERT INTO span_attrs (key, value, start_ns, span) VALUES (?, ?, ?, ?)",
        [
            (k, text, row[6], base + i)
            for i, row in enumerate(rows, 1)
            for k, v in json.loads(row[10]).items()
            if k not in REQUEST_ID_KEYS and len(text := attr_text(v)) <= MAX_ATTR_VALUE
        ],
    )
    return len(rows)


def store_bytes(conn: sqlite3.Connection) -> int:
    """Bytes in pages holding data (the file minus its free list)."""
    pages = (
        conn.execute("PRAGMA page_count").fetchone()[0] - conn.execute("PRAGMA freelist_count").fetchone()[0]
    )
    return int(pages) * int(conn.execute("PRAGMA page_size").fetchone()[0])


def _record(row: sqlite3.Row | tuple[Any, ...]) -> SpanRecord:
    values = list(row)
    values[10] = json.loads(values[10])
    values[12] = tuple(json.loads(values[12])) if values[12] else ()
    return SpanRecord(*values)


def get_trace(path: str | Path, trace_id: str) -> list[SpanRecord]:
    """All spans of one trace, oldest first (empty if unknown)."""
    conn = connect(path)
    try:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM spans WHERE trace_id = ? ORDER BY start_ns", (trace_id,)
        ).fetchall()
        return [_record(r) for r in rows]
    finally:
        conn.close()


def find_trace(path: str | Path, key: str) -> str | None:
    """The trace id for a full trace id, a request id, or a unique trace id prefix."""
    key = key.strip()
    conn = connect(path)
    try:
        for sql, arg in (
            ("SELECT DISTINCT trace_id FROM spans WHERE trace_id = ?", key),
            ("SELECT DISTINCT trace_id FROM spans WHERE request_id = ?", key),
            ("SELECT DISTINCT trace_id FROM spans WHERE trace_id LIKE ? LIMIT 2", key.lower() + "%"),
        ):
            if not arg or arg == "%":
                continue
            found = [r[0] for r in conn.execute(sql, (arg,)).fetchall()]
            if len(found) > 1:
                raise AmbiguousTrace(f"{key!r} matches {len(found)} traces; give more of the trace id")
            if found:
                return str(found[0])
        return None
    finally:
        conn.close()
