"""Pure logic of the observability views: golden metrics from /metrics text, the service map,
clock-skew adjustment of the waterfall, and the tap filter."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from grpcmesh.sdk.golden import golden_rows, histogram_quantile, parse_metrics
from grpcmesh.sdk.servicemap import percentile, service_map
from grpcmesh.sdk.spanstore import SpanRecord, connect, write_rows
from grpcmesh.sdk.waterfall import rows
from grpcmesh.sidecar.tap import TapFilter, TapRecord

MS = 1_000_000


def _registry() -> tuple[CollectorRegistry, Counter, Histogram]:
    reg = CollectorRegistry()
    calls = Counter("grpcmesh_requests", "x", ("direction", "service", "method", "code"), registry=reg)
    latency = Histogram(
        "grpcmesh_request_duration_seconds", "x", ("direction", "service", "method"),
        buckets=(0.001, 0.01, 0.1, 1.0), registry=reg,
    )  # fmt: skip
    return reg, calls, latency


def test_golden_rows_are_the_interval_between_two_scrapes() -> None:
    reg, calls, latency = _registry()
    calls.labels("inbound", "orders", "/o.O/Get", "OK").inc(10)
    first = parse_metrics(generate_latest(reg).decode(), at=100.0)
    calls.labels("inbound", "orders", "/o.O/Get", "OK").inc(30)
    calls.labels("inbound", "orders", "/o.O/Get", "UNAVAILABLE").inc(10)
    calls.labels("outbound", "payments", "/p.P/Pay", "OK").inc(5)
    for _ in range(36):
        latency.labels("inbound", "orders", "/o.O/Get").observe(0.005)  # in (1 ms, 10 ms]
    for _ in range(4):
        latency.labels("inbound", "orders", "/o.O/Get").observe(0.05)  # in (10 ms, 100 ms]
    second = parse_metrics(generate_latest(reg).decode(), at=110.0)
    [row] = golden_rows(second, first)  # inbound only by default
    assert (row.service, row.method, row.requests, row.total) == ("orders", "/o.O/Get", 40, 50)
    assert row.rps == pytest.approx(4.0)
    assert row.success_rate == pytest.approx(0.75)
    # histogram_quantile: rank 20 of 40 in the (1, 10] ms bucket holding 36 → 1 + 9 * 20/36 ms
    assert row.p50_ms == pytest.approx(1 + 9 * 20 / 36)
    assert row.p99_ms == pytest.approx(10 + 90 * (39.6 - 36) / 4)
    assert [r.service for r in golden_rows(second, first, ("outbound",))] == ["payments"]


def test_histogram_quantile_edges() -> None:
    assert math.isnan(histogram_quantile(0.5, []))
    assert math.isnan(histogram_quantile(0.5, [(1.0, 0.0), (math.inf, 0.0)]))
    assert histogram_quantile(0.99, [(1.0, 1.0), (math.inf, 10.0)]) == 1.0  # +Inf: highest finite bound
    assert percentile([1, 2, 3, 4], 0.5) == 2
    assert percentile([], 0.99) == 0


def _span(span_id: str, parent: str | None, service: str, start: int, end: int, **kw: object) -> SpanRecord:
    return SpanRecord("t" * 32, span_id, parent, "m", "SERVER", service, start, end, "UNSET", None, {}, None)


def test_waterfall_shifts_a_skewed_remote_child_into_its_parent() -> None:
    spans = [
        _span("a", None, "web", 1000 * MS, 1010 * MS),
        _span("b", "a", "orders", 995 * MS, 999 * MS),  # orders' clock is 8 ms behind: starts "before" a
        _span("c", "b", "orders", 996 * MS, 998 * MS),  # same process as b: moves with it
    ]
    table = {r.span.span_id: r for r in rows(spans)}
    assert table["a"].offset_ms == 0
    assert table["b"].offset_ms == pytest.approx(3.0)  # centred: (10 - 4) / 2
    assert table["b"].skew_ms == pytest.approx(8.0)
    assert table["c"].offset_ms == pytest.approx(4.0)
    assert table["c"].skew_ms == pytest.approx(8.0)
    fits = rows([spans[0], _span("b", "a", "orders", 1002 * MS, 1004 * MS)])
    assert [r.skew_ms for r in fits] == [0.0, 0.0]


def test_service_map_edges_from_client_spans(tmp_path: Path) -> None:
    db = tmp_path / "spans.db"
    conn = connect(db, create=True)
    now = 10_000 * 10**9

    def client(i: int, source: str, callee: str, error: bool, ms: int) -> tuple[object, ...]:
        start = now - (i + 1) * 10**9
        attrs = {"mesh.source": source, "mesh.service": callee, "mesh.direction": "outbound"}
        return (f"{i:032x}", f"{i + 1:016x}", None, "p.P/M", "CLIENT", f"{source}-sidecar", start,
                start + ms * MS, "ERROR" if error else "UNSET", None, json.dumps(attrs), None, None)  # fmt: skip

    with conn:
        conn.execute("BEGIN")
        write_rows(conn, [client(i, "web", "orders", i % 4 == 0, 1 + i) for i in range(8)])
        write_rows(conn, [client(100 + i, "orders", "payments", False, 5) for i in range(2)])
        write_rows(conn, [client(1000, "web", "old", False, 5)])  # ~17 min ago: outside a 5 min window
    conn.close()
    smap = service_map(db, 300, now)
    assert [(e.caller, e.callee, e.requests, e.errors) for e in smap.edges] == [
        ("orders", "payments", 2, 0),
        ("web", "orders", 8, 2),
    ]
    web = smap.edges[1]
    assert web.error_rate == 0.25
    assert web.rps == pytest.approx(8 / 300)
    assert web.p99_ms == pytest.approx(8.0)
    assert web.traces(errors_only=True).attributes == (("mesh.service", "orders"),)
    assert "old" in {e.callee for e in service_map(db, 3600, now).edges}
    with pytest.raises(ValueError, match=r"^window:"):
        service_map(db, 0, now)


def test_tap_filter() -> None:
    rec = TapRecord(0.0, "inbound", "orders", "/o.v1.Orders/Get", "UNAVAILABLE", 1.5, "r1")
    assert TapFilter(service="orders", method="Get", errors_only=True).matches(rec)
    assert TapFilter(method="o.v1.Orders/Get", code="UNAVAILABLE", direction="inbound").matches(rec)
    assert not TapFilter(service="web").matches(rec)
    assert not TapFilter(direction="outbound").matches(rec)
    assert not TapFilter(errors_only=True).matches(TapRecord(0.0, "inbound", "o", "/m", "OK", 1.0, "r"))
    assert TapFilter.from_query({"code": "unavailable", "errors": "1"}) == TapFilter(
        code="UNAVAILABLE", errors_only=True
    )
    with pytest.raises(ValueError, match=r"^direction:"):
        TapFilter.from_query({"direction": "sideways"})
