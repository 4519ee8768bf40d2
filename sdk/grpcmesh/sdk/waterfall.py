"""Waterfall layout of one trace: spans in tree order with offsets and bar geometry.

Pure functions from span-store records to rows, shared by the terminal viewer
(``grpcmesh traces``) and the sidecar's admin page, each drawing the rows its own way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from grpcmesh.sdk.spanstore import SpanRecord

__all__ = ["WaterfallRow", "rows", "waterfall"]


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
