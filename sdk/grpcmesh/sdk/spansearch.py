"""Trace search over the span store: one query shape for the page, the JSON API and the CLI.

Filters apply to a single span (as in Jaeger and Zipkin): a trace matches when
one of its spans is from the service, has the method, failed, lasted within the
duration bounds, started within the time range, carries the request id and the
attributes. Each filter has an index, and candidate spans are read newest first
and stopped at ``limit`` distinct traces, so a query costs what it finds, not
the size of the store (``bench/spanstore.py`` measures it; a test reads the
plans). Sorting reorders those newest matches, as the tools above do.
"""

from __future__ import annotations

import heapq
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grpcmesh.sdk.spanstore import TraceSummary, connect

__all__ = [
    "SORTS",
    "TraceQuery",
    "list_traces",
    "query_plans",
    "search_on",
    "search_traces",
]

SORTS = ("newest", "oldest", "longest", "shortest", "most-spans")
MAX_LIMIT = 1000
DURATION_PROBE = 2000  # a duration range matching this many spans is read in start order
MAX_SCAN = 200_000  # candidate spans read per query at most (a filter combination no index narrows)


@dataclass(frozen=True)
class TraceQuery:
    service: str | None = None
    method: str | None = None
    errors_only: bool = False
    min_duration_ms: float | None = None
    max_duration_ms: float | None = None
    start_ns: int | None = None  # spans starting at or after
    end_ns: int | None = None  # spans starting before
    request_id: str | None = None
    attributes: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    sort: str = "newest"
    limit: int = 20

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"limit: must be within [1, {MAX_LIMIT}], got {self.limit}")
        if self.sort not in SORTS:
            raise ValueError(f"sort: must be one of {', '.join(SORTS)}, got {self.sort!r}")
        for name in ("min_duration_ms", "max_duration_ms"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name}: must be >= 0, got {value}")
        for key, _ in self.attributes:
            if not key:
                raise ValueError("attributes: each needs a key (key=value)")


def _driving_index(query: TraceQuery, common_duration: bool = False) -> str:
    """The index that narrows the candidates most, named so the plan does not depend on statistics.

    Without ``ANALYZE`` data SQLite prefers walking ``spans_start`` to avoid a sort, which for a
    rare match (an ``--errors`` query matching nothing) reads the whole store. A duration range
    that :func:`_common_duration` found common is read in start order instead: the newest
    ``limit`` matches come after ~``limit x spans / matches`` rows, less than sorting them all.
    """
    if query.request_id:
        return "spans_request"
    if query.errors_only:
        return "spans_service_errors" if query.service else "spans_errors"
    if query.service:
        return "spans_service"
    if query.method:
        return "spans_name"
    if (query.min_duration_ms is not None or query.max_duration_ms is not None) and not common_duration:
        return "spans_duration"
    return "spans_start"


def _duration_bounds(query: TraceQuery) -> tuple[int, int]:
    low = int(query.min_duration_ms * 1e6) if query.min_duration_ms is not None else 0
    high = int(query.max_duration_ms * 1e6) if query.max_duration_ms is not None else 2**62
    return low, high


def _common_duration(conn: sqlite3.Connection, query: TraceQuery) -> bool:
    """Whether at least ``DURATION_PROBE`` spans lie in the duration range (read off its index)."""
    if query.min_duration_ms is None and query.max_duration_ms is None:
        return False
    row = conn.execute(
        "SELECT COUNT(*) FROM (SELECT 1 FROM spans INDEXED BY spans_duration"
        " WHERE end_ns - start_ns BETWEEN ? AND ? LIMIT ?)",
        (*_duration_bounds(query), DURATION_PROBE),
    ).fetchone()
    return bool(row[0] >= DURATION_PROBE)


def _service_names(conn: sqlite3.Connection, query: TraceQuery) -> list[str | None]:
    """The stored service names ``query.service`` stands for: itself and/or its sidecar's.

    Only names present in the store (one index lookup each), so a statement for a name with no
    spans does not walk every candidate of another filter looking for it.
    """
    if query.service is None:
        return [None]
    names: list[str | None] = []
    for name in (query.service, f"{query.service}-sidecar"):
        if conn.execute(
            "SELECT 1 FROM spans INDEXED BY spans_service WHERE service = ? LIMIT 1", (name,)
        ).fetchone():
            names.append(name)
    return names


def _candidates(
    query: TraceQuery, common_duration: bool = False, services: list[str | None] | None = None
) -> list[tuple[str, list[Any]]]:
    """SQL statements yielding (start_ns, trace_id) newest first; their union is the candidates."""
    where: list[str] = []
    params: list[Any] = []
    source = f"spans s INDEXED BY {_driving_index(query, common_duration)}"
    order = "s.start_ns"
    extra_attrs = query.attributes
    if query.attributes and not query.request_id:  # the attribute index drives, spans joined by rowid
        key, value = query.attributes[0]
        source = "span_attrs a JOIN spans s ON s.rowid = a.span"
        where += ["a.key = ?", "a.value = ?"]
        params += [key, value]
        order = "a.start_ns"
        extra_attrs = query.attributes[1:]
    for key, value in extra_attrs:
        where.append(
            "EXISTS (SELECT 1 FROM span_attrs b WHERE b.key = ? AND b.value = ?"
            " AND b.start_ns = s.start_ns AND b.span = s.rowid)"
        )
        params += [key, value]
    if query.method:
        where.append("s.name = ?")
        params.append(query.method.lstrip("/"))
    if query.errors_only:
        where.append("s.status_code = 'ERROR'")
    if query.min_duration_ms is not None or query.max_duration_ms is not None:
        where.append("s.end_ns - s.start_ns BETWEEN ? AND ?")
        params += _duration_bounds(query)
    if query.start_ns is not None:
        where.append(f"{order} >= ?")
        params.append(query.start_ns)
    if query.end_ns is not None:
        where.append(f"{order} < ?")
        params.append(query.end_ns)
    if query.request_id:
        where.append("s.request_id = ?")
        params.append(query.request_id)
    if services is None:
        services = [None] if query.service is None else [query.service, f"{query.service}-sidecar"]
    out = []
    for service in services:
        clauses, args = list(where), list(params)
        if service is not None:
            clauses.append("s.service = ?")
            args.append(service)
        sql = f"SELECT {order}, s.trace_id FROM {source}"
        sql += (" WHERE " + " AND ".join(clauses) if clauses else "") + f" ORDER BY {order} DESC"
        out.append((sql, args))
    return out


def query_plans(conn: sqlite3.Connection, query: TraceQuery) -> list[str]:
    """SQLite's plan for each candidate statement (``EXPLAIN QUERY PLAN`` detail lines)."""
    plans = []
    for sql, args in _candidates(query, _common_duration(conn, query)):  # every statement, names or not
        rows = conn.execute("EXPLAIN QUERY PLAN " + sql, args).fetchall()
        plans.append("\n".join(str(r[3]) for r in rows))
    return plans


def _newest_traces(conn: sqlite3.Connection, query: TraceQuery) -> list[str]:
    statements = _candidates(query, _common_duration(conn, query), _service_names(conn, query))
    cursors: list[Iterator[tuple[int, str]]] = [conn.execute(sql, a) for sql, a in statements]
    merged = heapq.merge(*cursors, key=lambda r: r[0], reverse=True)
    found: dict[str, None] = {}
    for scanned, (_, trace_id) in enumerate(merged):
        if scanned >= MAX_SCAN:
            break
        found[trace_id] = None
        if len(found) >= query.limit:
            break
    return list(found)


def _summaries(conn: sqlite3.Connection, trace_ids: list[str]) -> list[TraceSummary]:
    if not trace_ids:
        return []
    rows = conn.execute(
        "SELECT trace_id, MIN(start_ns), MAX(end_ns), COUNT(*), SUM(status_code = 'ERROR'),"
        " GROUP_CONCAT(DISTINCT service), MAX(request_id) FROM spans"
        " WHERE trace_id IN (SELECT value FROM json_each(?)) GROUP BY trace_id",
        (json.dumps(trace_ids),),
    ).fetchall()
    out = []
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


_SORT_KEYS: dict[str, tuple[Any, bool]] = {
    "newest": (lambda t: t.start_ns, True),
    "oldest": (lambda t: t.start_ns, False),
    "longest": (lambda t: t.duration_ms, True),
    "shortest": (lambda t: t.duration_ms, False),
    "most-spans": (lambda t: t.span_count, True),
}


def search_on(conn: sqlite3.Connection, query: TraceQuery) -> list[TraceSummary]:
    """:func:`search_traces` on an open connection (the bench counts its SQLite steps)."""
    key, reverse = _SORT_KEYS[query.sort]
    return sorted(_summaries(conn, _newest_traces(conn, query)), key=key, reverse=reverse)


def search_traces(path: str | Path, query: TraceQuery) -> list[TraceSummary]:
    """The newest ``query.limit`` traces with a span matching every filter, in ``query.sort`` order."""
    conn = connect(path)
    try:
        return search_on(conn, query)
    finally:
        conn.close()


def list_traces(
    path: str | Path,
    limit: int = 20,
    service: str | None = None,
    min_duration_ms: float | None = None,
    errors_only: bool = False,
) -> list[TraceSummary]:
    """The newest traces with the common filters (kept for callers of the first store API)."""
    query = TraceQuery(
        service=service, min_duration_ms=min_duration_ms, errors_only=errors_only, limit=min(limit, MAX_LIMIT)
    )
    return search_traces(path, query)
