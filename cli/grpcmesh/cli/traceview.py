"""Text views of the span store for ``grpcmesh traces``: a trace table and a waterfall.

Pure functions from store records to strings, so the CLI stays a thin shell
and the output is unit-tested without a terminal. The row layout is
:mod:`grpcmesh.sdk.waterfall`, shared with the sidecar's admin page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from grpcmesh.sdk.spanstore import SpanRecord, TraceSummary
from grpcmesh.sdk.waterfall import WaterfallRow, rows

__all__ = ["render_table", "render_waterfall"]

BAR_WIDTH = 40


def _clock(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def render_table(traces: Sequence[TraceSummary]) -> str:
    """One line per trace: start, trace id, duration, spans, status, request id, root and services."""
    header = (
        f"{'START (UTC)':23}  {'TRACE ID':32}  {'DURATION':>10}  {'SPANS':>5}  {'STATUS':6}  "
        "REQUEST ID / ROOT / SERVICES"
    )
    lines = [header]
    for t in traces:
        lines.append(
            f"{_clock(t.start_ns):23}  {t.trace_id:32}  {t.duration_ms:>8.2f}ms  {t.span_count:>5}  "
            f"{'ERROR' if t.error else 'OK':6}  {t.request_id or '-'}  {t.root_name}  "
            f"[{', '.join(t.services)}]"
        )
    return "\n".join(lines)


def _bar(row: WaterfallRow, width: int = BAR_WIDTH) -> str:
    left = min(int(row.left * width), width - 1)
    length = max(1, round(row.width * width))
    length = min(length, width - left)
    return "|" + " " * left + "#" * length + " " * (width - left - length) + "|"


def render_waterfall(spans: Sequence[SpanRecord]) -> str:
    """The trace as an indented tree: offset ms, duration ms, bar, service, span name, status."""
    table = rows(spans)
    if not table:
        return "(no spans)"
    first = table[0].span
    total = max(s.end_ns for s in spans) - min(s.start_ns for s in spans)
    request_ids = sorted({s.request_id for s in spans if s.request_id})
    lines = [
        f"trace {first.trace_id}  {len(spans)} spans  {total / 1e6:.2f}ms"
        + (f"  request id {', '.join(request_ids)}" if request_ids else ""),
        f"{'OFFSET':>9}  {'DURATION':>9}  {'':{BAR_WIDTH + 2}}  SERVICE / SPAN",
    ]
    for row in table:
        lines.append(
            f"{row.offset_ms:>7.2f}ms  {row.duration_ms:>7.2f}ms  {_bar(row)}  "
            f"{'  ' * row.depth}{row.span.service}  {row.span.name} ({row.span.kind.lower()})  {row.status}"
        )
    return "\n".join(lines)
