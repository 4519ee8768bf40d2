"""The span store's writer: an exporter appending finished spans, and the store's retention.

Retention keeps the newest ``max_spans`` spans *and* keeps the pages in use
under ``max_bytes``, dropping the oldest first; freed pages are reused, so the
file stops growing near ``max_bytes`` (the WAL beside it is capped at
``WAL_LIMIT``). Each batch is one short ``BEGIN IMMEDIATE`` transaction, so
several processes can share one file.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from grpcmesh.sdk.spanstore import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_SPANS,
    connect,
    span_row,
    store_bytes,
    write_rows,
)

__all__ = ["SpanStoreExporter"]

log = logging.getLogger("grpcmesh.sdk.spanstore")


class SpanStoreExporter(SpanExporter):
    """Writes finished spans to a SQLite file; use behind a BatchSpanProcessor."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_spans: int = DEFAULT_MAX_SPANS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        prune_every: int = 1000,
    ) -> None:
        if max_spans < 1:
            raise ValueError("spanstore.max_spans must be >= 1")
        if max_bytes < 1024 * 1024:
            raise ValueError("spanstore.max_bytes must be >= 1 MiB")
        self.path = str(path)
        self.max_spans = max_spans
        self.max_bytes = max_bytes
        self._prune_every = max(1, min(prune_every, max_spans))
        self._since_prune = 0
        self._lock = threading.Lock()
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._conn: sqlite3.Connection | None = connect(self.path, create=True)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        rows = [span_row(s) for s in spans if s.get_span_context() is not None]
        with self._lock:
            if self._conn is None:
                return SpanExportResult.FAILURE
            try:
                self.write(rows)
            except sqlite3.Error:
                log.exception("span store write failed (%s)", self.path)
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """One transaction for the batch, then retention every ``prune_every`` spans."""
        assert self._conn is not None
        with self._conn:  # one short transaction per batch
            self._conn.execute("BEGIN IMMEDIATE")
            write_rows(self._conn, rows)
        self._since_prune += len(rows)
        if self._since_prune >= self._prune_every:
            self._since_prune = 0
            self.prune()

    def prune(self) -> None:
        """Keeps the newest ``max_spans`` spans, then drops the oldest quarter while over 90 % of bytes."""
        assert self._conn is not None
        self._delete_before(
            "SELECT start_ns FROM spans ORDER BY start_ns DESC LIMIT 1 OFFSET ?", self.max_spans - 1
        )
        for _ in range(8):
            if store_bytes(self._conn) <= self.max_bytes * 0.9:
                return
            total = self._conn.execute("SELECT COUNT(*) FROM spans").fetchone()[0]
            if total < 2:
                return
            self._delete_before("SELECT start_ns FROM spans ORDER BY start_ns LIMIT 1 OFFSET ?", total // 4)

    def _delete_before(self, cutoff_sql: str, offset: int) -> None:
        assert self._conn is not None
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            row = self._conn.execute(cutoff_sql, (offset,)).fetchone()
            if row is None:
                return
            self._conn.execute("DELETE FROM spans WHERE start_ns < ?", (row[0],))
            self._conn.execute("DELETE FROM span_attrs WHERE start_ns < ?", (row[0],))

    def shutdown(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
