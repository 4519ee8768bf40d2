"""Text views of the span store for ``grpcmesh traces``: a trace table and a waterfall.

Pure functions from store records to strings, so the CLI stays a thin shell
and the layout is unit-tested without a terminal. The admin page
(:mod:`grpcmesh.sidecar.trace_pages`) uses the same row layout via :func:`rows`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from grpcmesh.sdk.spanstore import SpanRecord, TraceSummary

__all__ = ["WaterfallRow", "render_table", "render_waterfall", "rows", "waterfall"]

BAR_WIDTH = 40


@dataclass(frozen=True)
class WaterfallRow:
    depth: int
    span: SpanRecord
    offset_ms: float
    duration_ms: float
    left: float  # 0..1 of the trace's duration
    width: float  # 0..1 of the trace's duration

    @property
    def status(self) -> str:
        if self.span.error:
            return f"ERROR {self.span.status_message}" if self.span.status_message else "ERROR"
        return "OK"


def waterfall(spans: Sequence[SpanRecord]) -> list[tuple[int, SpanRecord]]:
    """Spans in tree order (parents before children, siblings by start) with their depth.

    Spans whose parent is not in the store (a caller outside the mesh) are roots.
    """
    ids = {s.span_id for s in spans}
    children: dict[str | None, list[SpanRecord]] = {}
    for s in spans:
        parent = s.parent_id if s.parent_id in ids else None
        children.setdefault(parent, []).append(s)
    out: list[tuple[int, SpanRecord]] = []
    seen: set[str] = set()
    stack = [(0, s) for s in sorted(children.get(None, []), key=lambda s: s.start_ns, reverse=True)]
    while stack:
        depth, span = stack.pop()
        if span.span_id in seen:  # duplicate ids (a re-exported batch) or a cycle
            continue
        seen.add(span.span_id)
        out.append((depth, span))
        kids = sorted(children.get(span.span_id, []), key=lambda s: s.start_ns, reverse=True)
        stack.extend((depth + 1, k) for k in kids)
    return out


def rows(spans: Sequence[SpanRecord]) -> list[WaterfallRow]:
    """Spans in tree order with their offset from the trace start and bar geometry."""
    if not spans:
        return []
    start = min(s.start_ns for s in spans)
    total = max(max(s.end_ns for s in spans) - start, 1)
    out = []
    for depth, span in waterfall(spans):
        offset = span.start_ns - start
        length = max(span.end_ns - span.start_ns, 0)
        out.append(WaterfallRow(depth, span, offset / 1e6, length / 1e6, offset / total, length / total))
    return out


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
