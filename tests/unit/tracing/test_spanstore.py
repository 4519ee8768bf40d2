"""The span store exporter writes real OpenTelemetry spans and reads them back."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from grpcmesh.sdk.spanexport import SpanStoreExporter
from grpcmesh.sdk.spansearch import list_traces
from grpcmesh.sdk.spanstore import AmbiguousTrace, find_trace, get_trace
from grpcmesh.sdk.tracing import configure_tracing

MS = 1_000_000


def _provider(exporter: SpanStoreExporter, service: str) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def _call(
    client: TracerProvider,
    server: TracerProvider,
    request_id: str,
    *,
    fail: bool = False,
    start: int = 1_000_000_000,
    ms: int = 5,
) -> str:
    """A client span and a child server span, with explicit times; returns the trace id."""
    ctracer, stracer = client.get_tracer("t"), server.get_tracer("t")
    span = ctracer.start_span(
        "echo.v1.Echo/Unary",
        kind=SpanKind.CLIENT,
        start_time=start,
        attributes={"mesh.request_id": request_id},
    )
    child = stracer.start_span(
        "echo.v1.Echo/Unary",
        context=set_span_in_context(span),
        kind=SpanKind.SERVER,
        start_time=start + 1_000_000,
        attributes={"mesh.request_id": request_id, "rpc.grpc.status_code": 14 if fail else 0},
    )
    if fail:
        child.set_status(Status(StatusCode.ERROR, "UNAVAILABLE"))
        span.set_status(Status(StatusCode.ERROR, "UNAVAILABLE"))
    child.end(end_time=start + (ms - 1) * 1_000_000)
    span.end(end_time=start + ms * 1_000_000)
    return format(span.get_span_context().trace_id, "032x")


@pytest.fixture
def store(tmp_path: Path) -> tuple[str, TracerProvider, TracerProvider]:
    db = str(tmp_path / "spans.db")
    exporter = SpanStoreExporter(db)
    return db, _provider(exporter, "a-sidecar"), _provider(SpanStoreExporter(db), "b-sidecar")


def test_writes_and_reads_back(store: tuple[str, TracerProvider, TracerProvider]) -> None:
    db, a, b = store
    trace_id = _call(a, b, "req-1")
    spans = get_trace(db, trace_id)
    assert [(s.service, s.kind) for s in spans] == [("a-sidecar", "CLIENT"), ("b-sidecar", "SERVER")]
    client, server = spans
    assert client.parent_id is None
    assert server.parent_id == client.span_id
    assert server.request_id == "req-1"
    assert server.attributes["rpc.grpc.status_code"] == 0
    assert client.duration_ms == pytest.approx(5.0)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert json.loads(conn.execute("SELECT attributes FROM spans LIMIT 1").fetchone()[0])
    [summary] = list_traces(db, 10)
    assert summary.trace_id == trace_id
    assert summary.span_count == 2
    assert not summary.error
    assert summary.services == ("a-sidecar", "b-sidecar")
    assert summary.request_id == "req-1"
    assert summary.root_name == "echo.v1.Echo/Unary"
    assert summary.duration_ms == pytest.approx(5.0)
    assert get_trace(db, "0" * 32) == []


def test_list_filters_and_order(store: tuple[str, TracerProvider, TracerProvider]) -> None:
    db, a, b = store
    slow = _call(a, b, "slow", start=1_000_000_000, ms=50)
    failed = _call(a, b, "failed", fail=True, start=2_000_000_000)
    only_a = a.get_tracer("t").start_span("local", start_time=3_000_000_000)
    only_a.end(end_time=3_001_000_000)
    newest = format(only_a.get_span_context().trace_id, "032x")
    assert [t.trace_id for t in list_traces(db, 10)] == [newest, failed, slow]
    assert [t.trace_id for t in list_traces(db, 2)] == [newest, failed]
    assert [t.trace_id for t in list_traces(db, 10, errors_only=True)] == [failed]
    assert [t.trace_id for t in list_traces(db, 10, min_duration_ms=20)] == [slow]
    assert [t.trace_id for t in list_traces(db, 10, service="b")] == [failed, slow]  # b → b-sidecar
    assert list_traces(db, 10, service="nobody") == []


def test_retention_keeps_newest(tmp_path: Path) -> None:
    db = str(tmp_path / "spans.db")
    exporter = SpanStoreExporter(db, max_spans=10, prune_every=4)
    tracer = _provider(exporter, "svc").get_tracer("t")
    for i in range(25):
        tracer.start_span(f"s{i}", start_time=(i + 1) * 1_000_000).end(end_time=(i + 1) * 1_000_000 + 10)
    with sqlite3.connect(db) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM spans ORDER BY start_ns")]
    assert len(names) <= 10 + 4  # pruned in batches: never more than max + one batch
    assert names[-1] == "s24"
    assert "s0" not in names
    assert "s10" not in names
    exporter.prune()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM spans").fetchone()[0] == 10


def test_find_trace_by_id_request_id_and_prefix(store: tuple[str, TracerProvider, TracerProvider]) -> None:
    db, a, b = store
    first = _call(a, b, "req-a")
    second = _call(a, b, "req-b")
    assert find_trace(db, first) == first
    assert find_trace(db, "req-b") == second
    assert find_trace(db, first[:12].upper()) == first
    assert find_trace(db, "no-such-id") is None
    common = next(i for i in range(32) if first[i] != second[i])
    if common:
        with pytest.raises(AmbiguousTrace):
            find_trace(db, first[:common])


def test_missing_file_is_not_created_by_readers(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list_traces(tmp_path / "absent.db")
    assert not (tmp_path / "absent.db").exists()


def test_configure_tracing_store_uses_env_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "env.db"
    monkeypatch.setenv("GRPCMESH_TRACE_DB", str(db))
    provider = configure_tracing("svc", exporter="store", set_global=False)
    provider.get_tracer("t").start_span("hello").end()
    provider.shutdown()  # flushes the batch processor
    [summary] = list_traces(db)
    assert summary.root_name == "hello"
    assert summary.services == ("svc",)


def test_rejects_bad_retention(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_spans"):
        SpanStoreExporter(tmp_path / "x.db", max_spans=0)


def test_list_finds_traces_by_their_newest_matching_span(tmp_path: Path) -> None:
    db = str(tmp_path / "spans.db")
    tracer = _provider(SpanStoreExporter(db), "svc").get_tracer("t")
    # an old trace whose child span ends up among the newest spans, then 400 one-span traces
    old = tracer.start_span("old", start_time=1 * MS)
    for i in range(400):
        span = tracer.start_span(f"t{i}", start_time=(10 + i) * MS)
        if i == 3:
            span.set_status(Status(StatusCode.ERROR, "boom"))
        span.end(end_time=(10 + i) * MS + 1)
    tracer.start_span("late", context=set_span_in_context(old), start_time=1000 * MS).end(end_time=1001 * MS)
    old.end(end_time=1002 * MS)
    newest = list_traces(db, 3)
    # "old" has the newest span, so it is among the 3 newest matches; listed by trace start
    assert [t.root_name for t in newest] == ["t399", "t398", "old"]
    [failed] = list_traces(db, 5, errors_only=True)  # 400 spans newer than it, none an error
    assert failed.root_name == "t3"
    assert [t.root_name for t in list_traces(db, 500)][-2:] == ["t0", "old"]
    assert list_traces(db, 500)[-1].span_count == 2
