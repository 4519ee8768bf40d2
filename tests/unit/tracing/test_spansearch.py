"""Trace search: every filter served by an index (read from SQLite's plan), filters and parsing."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from grpcmesh.sdk.spanexport import SpanStoreExporter
from grpcmesh.sdk.spanparams import parse_time, query_from_params
from grpcmesh.sdk.spansearch import TraceQuery, query_plans, search_traces
from grpcmesh.sdk.spanstore import connect, get_trace, store_bytes, write_rows

MS = 1_000_000


def _span(i: int, trace: int, *, service: str = "web-sidecar", error: bool = False, ms: int = 2) -> tuple:
    start = (1000 + i) * MS
    attrs = {
        "mesh.endpoint": f"127.0.0.1:{7000 + i % 3}",
        "mesh.attempts": 1 + (i % 2),
        "mesh.request_id": f"r{i}",
    }
    return (
        f"{trace:032x}", f"{i + 1:016x}", None, "shop.v1.Orders/Get", "CLIENT", service, start,
        start + ms * MS, "ERROR" if error else "UNSET", "UNAVAILABLE: no endpoint" if error else None,
        json.dumps(attrs), f"r{i}", None,
    )  # fmt: skip


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = str(tmp_path / "spans.db")
    conn = connect(path, create=True)
    with conn:
        conn.execute("BEGIN")
        write_rows(conn, [_span(i, i // 2, service=("web-sidecar", "orders-sidecar")[i % 2],
                                error=i == 7, ms=50 if i == 4 else 2) for i in range(20)])  # fmt: skip
    conn.close()
    return path


QUERIES = {
    "service": TraceQuery(service="orders"),
    "method": TraceQuery(method="/shop.v1.Orders/Get"),
    "errors": TraceQuery(errors_only=True),
    "min_duration": TraceQuery(min_duration_ms=40),
    "max_duration": TraceQuery(max_duration_ms=1),
    "duration_range": TraceQuery(min_duration_ms=40, max_duration_ms=60),
    "time_range": TraceQuery(start_ns=1005 * MS, end_ns=1010 * MS),
    "request_id": TraceQuery(request_id="r3"),
    "attribute": TraceQuery(attributes=(("mesh.endpoint", "127.0.0.1:7001"),)),
    "two_attributes": TraceQuery(attributes=(("mesh.endpoint", "127.0.0.1:7001"), ("mesh.attempts", "2"))),
    "errors_of_service": TraceQuery(service="web", errors_only=True),
}


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_every_filter_is_served_by_an_index(db: str, name: str) -> None:
    conn = sqlite3.connect(db)
    try:
        plans = query_plans(conn, QUERIES[name])
    finally:
        conn.close()
    assert plans
    for plan in plans:
        for step in plan.splitlines():
            # a SEARCH narrows by an index (its rows may then be sorted); the only SCAN allowed
            # is of an errors-only partial index, which holds error spans and nothing else
            assert (
                step.startswith("SEARCH")
                or step == "USE TEMP B-TREE FOR ORDER BY"
                or step.startswith("CORRELATED SCALAR SUBQUERY")  # its own steps are SEARCHes
                or step.startswith("SCAN s USING INDEX spans_errors")
            ), (name, plan)


def test_filters_find_the_right_traces(db: str) -> None:
    def ids(query: TraceQuery) -> list[str]:
        return [t.trace_id for t in search_traces(db, query)]

    assert ids(TraceQuery(errors_only=True)) == [f"{3:032x}"]
    assert ids(TraceQuery(min_duration_ms=40)) == [f"{2:032x}"]
    assert ids(TraceQuery(request_id="r11")) == [f"{5:032x}"]
    assert ids(TraceQuery(start_ns=1016 * MS, end_ns=1018 * MS)) == [f"{8:032x}"]
    assert len(ids(TraceQuery(service="orders"))) == 10  # orders → orders-sidecar
    assert ids(TraceQuery(service="orders", errors_only=True)) == [f"{3:032x}"]
    assert ids(TraceQuery(attributes=(("mesh.endpoint", "127.0.0.1:7001"), ("mesh.attempts", "2")))) == [
        f"{t:032x}"
        for t in (9, 6, 3, 0)  # i % 6 == 1
    ]
    assert ids(TraceQuery(attributes=(("mesh.attempts", "3"),))) == []
    assert ids(TraceQuery(limit=3)) == [f"{t:032x}" for t in (9, 8, 7)]
    longest = search_traces(db, TraceQuery(sort="longest", limit=10))
    assert longest[0].trace_id == f"{2:032x}"


def test_params_are_parsed_and_bad_ones_named() -> None:
    now = 10_000 * 10**9
    assert parse_time("since", "15m", now) == now - 900 * 10**9
    assert parse_time("since", "1970-01-01T00:00:10") == 10 * 10**9
    query = query_from_params({"service": "web", "errors": "on", "min_ms": "5", "limit": "7"}, ["k=v=w"])
    assert query == TraceQuery(service="web", errors_only=True, min_duration_ms=5.0, limit=7,
                               attributes=(("k", "v=w"),))  # fmt: skip
    for params, attrs, field in (
        ({"min_ms": "fast"}, [], "min_ms"),
        ({"since": "yesterday"}, [], "since"),
        ({"limit": "0"}, [], "limit"),
        ({"sort": "random"}, [], "sort"),
        ({}, ["novalue"], "attr"),
        ({"max_ms": "-1"}, [], "max_duration_ms"),
    ):
        with pytest.raises(ValueError, match=f"^{field}:"):
            query_from_params(params, attrs)


def test_store_stays_within_its_byte_bound(tmp_path: Path) -> None:
    path = tmp_path / "bounded.db"
    bound = 2 * 1024 * 1024
    exporter = SpanStoreExporter(path, max_spans=1_000_000, max_bytes=bound, prune_every=500)
    for batch in range(40):
        exporter.write([_span(batch * 500 + i, batch * 250 + i // 2) for i in range(500)])
    conn = sqlite3.connect(path)
    kept = conn.execute("SELECT COUNT(*) FROM spans").fetchone()[0]
    assert store_bytes(conn) <= bound
    conn.close()
    exporter.shutdown()
    assert 0 < kept < 20_000  # pruned by bytes, not by count
    assert path.stat().st_size <= bound * 1.1  # freed pages are reused: the file stops growing
    # attribute rows still name their own spans after 40 batches and the pruning between them
    found = search_traces(path, TraceQuery(attributes=(("mesh.endpoint", "127.0.0.1:7002"),), limit=50))
    assert len(found) == 50
    for trace in found:
        assert any(s.attributes["mesh.endpoint"] == "127.0.0.1:7002" for s in get_trace(path, trace.trace_id))


def test_a_common_duration_range_is_read_in_start_order(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import grpcmesh.sdk.spansearch as spansearch

    monkeypatch.setattr(spansearch, "DURATION_PROBE", 5)  # 19 of the 20 spans last 2 ms
    query = TraceQuery(max_duration_ms=3, limit=2)
    conn = sqlite3.connect(db)
    try:
        [plan] = query_plans(conn, query)
    finally:
        conn.close()
    assert "spans_start" in plan  # newest first, stops at `limit` traces instead of sorting 19 rows
    assert [t.trace_id for t in search_traces(db, query)] == [f"{9:032x}", f"{8:032x}"]
    rare = TraceQuery(min_duration_ms=40)
    assert [t.trace_id for t in search_traces(db, rare)] == [f"{2:032x}"]


def test_a_store_from_before_the_search_indexes_is_upgraded_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE spans (trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_id TEXT, name TEXT NOT NULL,"
        " kind TEXT NOT NULL, service TEXT NOT NULL, start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL,"
        " status_code TEXT NOT NULL, status_message TEXT, attributes TEXT NOT NULL, request_id TEXT);"
        "CREATE INDEX spans_trace ON spans (trace_id); CREATE INDEX spans_start ON spans (start_ns);"
    )
    old.execute(f"INSERT INTO spans VALUES ({','.join('?' * 12)})", _span(1, 1, error=True)[:12])
    old.commit()
    old.close()
    [found] = search_traces(path, TraceQuery(errors_only=True, service="web"))  # a reader (the CLI)
    assert found.trace_id == f"{1:032x}"
    assert get_trace(path, found.trace_id)[0].events == ()
