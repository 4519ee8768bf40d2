"""Waterfall layout and rendering of a hand-built span tree; the CLI's user-facing failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from grpcmesh.cli.main import main
from grpcmesh.cli.traceview import render_waterfall
from grpcmesh.sdk.spanstore import SpanRecord
from grpcmesh.sdk.waterfall import rows, waterfall
from grpcmesh.sidecar.map_page import map_routes
from grpcmesh.sidecar.trace_pages import trace_routes

T = "ab" * 16
MS = 1_000_000


def _span(
    span_id: str, parent: str | None, service: str, start_ms: int, end_ms: int, err: bool = False
) -> SpanRecord:
    return SpanRecord(
        trace_id=T,
        span_id=span_id,
        parent_id=parent,
        name=f"op-{span_id}",
        kind="SERVER" if parent else "CLIENT",
        service=service,
        start_ns=start_ms * MS,
        end_ns=end_ms * MS,
        status_code="ERROR" if err else "UNSET",
        status_message="UNAVAILABLE" if err else None,
        attributes={},
        request_id="req-9",
    )


# root(0..100) ─┬─ b(10..40) ── d(20..30, error)
#               └─ c(50..90)
TREE = [
    _span("c", "root", "svc-c", 50, 90),
    _span("d", "b", "svc-d", 20, 30, err=True),
    _span("root", None, "front", 0, 100),
    _span("b", "root", "svc-b", 10, 40),
]


def test_tree_order_and_depth() -> None:
    assert [(d, s.span_id) for d, s in waterfall(TREE)] == [(0, "root"), (1, "b"), (2, "d"), (1, "c")]


def test_orphan_span_becomes_root() -> None:
    orphan = _span("x", "not-stored", "edge", 5, 6)
    order = [(d, s.span_id) for d, s in waterfall([orphan, *TREE])]
    assert order == [(0, "root"), (1, "b"), (2, "d"), (1, "c"), (0, "x")]


def test_rows_geometry() -> None:
    by_id = {r.span.span_id: r for r in rows(TREE)}
    assert by_id["b"].offset_ms == pytest.approx(10)
    assert by_id["b"].duration_ms == pytest.approx(30)
    assert by_id["c"].left == pytest.approx(0.5)
    assert by_id["c"].width == pytest.approx(0.4)
    assert by_id["d"].status == "ERROR UNAVAILABLE"
    assert by_id["root"].status == "OK"


def test_render_waterfall_text() -> None:
    text = render_waterfall(TREE)
    lines = text.splitlines()
    assert lines[0].startswith(f"trace {T}  4 spans  100.00ms  request id req-9")
    spans = lines[2:]
    assert len(spans) == 4
    assert "  0.00ms   100.00ms  |" in spans[0]
    assert "front  op-root (client)  OK" in spans[0]
    assert "    svc-d  op-d (server)  ERROR UNAVAILABLE" in spans[2]
    bars = [line.split("|")[1] for line in spans]
    assert bars[0] == "#" * 40  # the root spans the whole trace
    assert bars[3].index("#") == 20
    assert bars[3].count("#") == 16
    assert render_waterfall([]) == "(no spans)"


def test_cli_missing_db(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["traces", "--db", str(tmp_path / "none.db")]) == 2
    err = capsys.readouterr().err
    assert "no span store at" in err
    assert "--trace-exporter store" in err
    assert "Traceback" not in err


def test_cli_unknown_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from grpcmesh.sdk.spanstore import connect

    db = tmp_path / "t.db"
    connect(db, create=True).close()
    assert main(["traces", "--db", str(db)]) == 0
    assert "no traces" in capsys.readouterr().out
    assert main(["traces", "--db", str(db), "deadbeef"]) == 2
    assert "no trace 'deadbeef'" in capsys.readouterr().err


def test_admin_pages_disabled_say_how() -> None:
    routes = {**trace_routes(None), **map_routes(None)}
    for path in ("/traces", "/traces.json", "/map", "/map.json"):
        status, _, body = routes[path]("", {})
        assert status == 404
        assert b"--trace-exporter store" in body
    assert routes["/traces"]("abc", {})[0] == 404
