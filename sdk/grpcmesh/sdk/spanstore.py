"""The embedded span store: finished spans in one SQLite file, read back by ``grpcmesh traces``.

Traces should be viewable on a laptop with nothing else running, so the default
backend is a file. Several processes (sidecars, services) may append to the
same file: WAL mode, ``busy_timeout`` and one short transaction per exported
batch (the exporter runs behind a BatchSpanProcessor). Retention keeps the
newest ``max_spans`` rows, pruned in batches so most writes pay nothing.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = [
    "AmbiguousTrace",
    "SpanRecord",
    "SpanStoreExporter",
    "TraceSummary",
    "find_trace",
    "get_trace",
    "list_traces",
]

log = logging.getLogger("grpcmesh.sdk.spanstore")

REQUEST_ID_KEYS = ("mesh.request_id", "request_id", "grpcmesh.request_id")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS spans (
    trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_id TEXT, name TEXT NOT NULL,
    kind TEXT NOT NULL, service TEXT NOT NULL, start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL,
    status_code TEXT NOT NULL, status_message TEXT, attributes TEXT NOT NULL, request_id TEXT
);
CREATE INDEX IF NOT EXISTS spans_trace ON spans (trace_id);
CREATE INDEX IF NOT EXISTS spans_start ON spans (start_ns);
CREATE INDEX IF NOT EXISTS spans_request ON spans (request_id);
"""
_COLUMNS = (
    "trace_id, span_id, parent_id, name, kind, service, start_ns, end_ns,"
    " status_code, status_message, attributes, request_id"
)


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
        conn.executescript(_SCHEMA)
    return conn


def _row(span: ReadableSpan) -> tuple[Any, ...]:
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
    )


class SpanStoreExporter(SpanExporter):
    """Writes finished spans to a SQLite file; use behind a BatchSpanProcessor."""

    def __init__(self, path: str | Path, *, max_spans: int = 100_000, prune_every: int = 1000) -> None:
        if max_spans < 1:
            raise ValueError("spanstore.max_spans must be >= 1")
        self.path = str(path)
        self.max_spans = max_spans
        self._prune_every = max(1, min(prune_every, max_spans))
        self._since_prune = 0
        self._lock = threading.Lock()
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._conn: sqlite3.Connection | None = connect(self.path, create=True)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        rows = [_row(s) for s in spans if s.get_span_context() is not None]
        with self._lock:
            if self._conn is None:
                return SpanExportResult.FAILURE
            try:
                with self._conn:  # one short transaction per batch
                    self._conn.execute("BEGIN IMMEDIATE")
                    self._conn.executemany(
                        f"INSERT INTO spans ({_COLUMNS}) VALUES ({','.join('?' * 12)})", rows
                    )
                self._since_prune += len(rows)
                if self._since_prune >= self._prune_every:
                    self._since_prune = 0
                    self.prune()
            except sqlite3.Error:
                log.exception("span store write failed (%s)", self.path)
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def prune(self) -> None:
        """Deletes all but the newest ``max_spans`` spans (by start time)."""
        assert self._conn is not None
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute(
                "DELETE FROM spans WHERE start_ns < (SELECT start_ns FROM spans"
                " ORDER BY start_ns DESC LIMIT 1 OFFSET ?)",
                (self.max_spans - 1,),
            )

    def shutdown(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _record(row: sqlite3.Row | tuple[Any, ...]) -> SpanRecord:
    values = list(row)
    values[10] = json.loads(values[10])
    return SpanRecord(*values)


def list_traces(
    path: str | Path,
    limit: int = 20,
    service: str | None = None,
    min_duration_ms: float | None = None,
    errors_only: bool = False,
) -> list[TraceSummary]:
    """The newest traces (by start), with filters; a trace matches ``service`` if any span does."""
    having: list[str] = []
    params: list[Any] = []
    if service is not None:
        having.append("SUM(service = ? OR service = ?) > 0")
        params += [service, f"{service}-sidecar"]
    if min_duration_ms is not None:
        having.append("MAX(end_ns) - MIN(start_ns) >= ?")
        params.append(int(min_duration_ms * 1e6))
    if errors_only:
        having.append("SUM(status_code = 'ERROR') > 0")
    sql = (
        "SELECT trace_id, MIN(start_ns), MAX(end_ns), COUNT(*), SUM(status_code = 'ERROR'),"
        " GROUP_CONCAT(DISTINCT service), MAX(request_id) FROM spans"
        " WHERE trace_id IN (SELECT value FROM json_each(?)) GROUP BY trace_id"
        + (" HAVING " + " AND ".join(having) if having else "")
        + " ORDER BY MIN(start_ns) DESC LIMIT ?"
    )
    conn = connect(path)
    try:
        # Aggregate only the traces seen among the newest `window` spans (an index scan), widening
        # the window until `limit` traces are known to be the newest: a full GROUP BY over 100k
        # spans takes ~300 ms, which the sidecar's admin page would spend on its event loop.
        window = max(limit * 8, 256)
        while True:
            newest = conn.execute(
                "SELECT trace_id, start_ns FROM spans ORDER BY start_ns DESC LIMIT ?", (window,)
            )
            seen = newest.fetchall()
            complete = len(seen) < window
            boundary = seen[-1][1] if seen else 0
            ids = json.dumps(list(dict.fromkeys(r[0] for r in seen)))
            rows = [r for r in conn.execute(sql, (ids, *params, limit)) if complete or r[1] >= boundary]
            if complete or len(rows) >= limit:
                break
            window *= 4
        out: list[TraceSummary] = []
        for trace_id, start, end, count, errors, services, request_id in rows:
            root = conn.execute(
                "SELECT name FROM spans WHERE trace_id = ? ORDER BY parent_id IS NOT NULL, start_ns LIMIT 1",
                (trace_id,),
            ).fetchone()
            out.append(
                TraceSummary(
                    trace_id=trace_id,
                    root_name=root[0] if root else "?",
                    services=tuple(sorted(set((services or "").split(",")))),
                    span_count=count,
                    start_ns=start,
                    duration_ms=(end - start) / 1e6,
                    error=bool(errors),
                    request_id=request_id,
                )
            )
        return out
    finally:
        conn.close()


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
