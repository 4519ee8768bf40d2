"""Waterfall layout of one trace: spans in tree order with offsets and bar geometry.

Pure functions from span-store records to rows, shared by the terminal viewer
(``grpcmesh traces``) and the sidecar's admin page, each drawing the rows its own way.

Clock skew: spans of one trace come from several processes, possibly several
machines. A child from another service that does not fit inside its parent
(it starts before it or ends after it) is shifted, with its subtree, to sit
centred in the parent (as Jaeger does: the network time split evenly); the row
carries the shift so a view can say so.
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
    skew_ms: float = 0.0  # how far this span was shifted to fit in its parent (clock skew)

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


def _shifts(ordered: Sequence[tuple[int, SpanRecord]]) -> dict[str, int]:
    """Per span id, the nanoseconds added to its times so each remote child fits its parent."""
    by_id = {s.span_id: s for _, s in ordered}
    shift: dict[str, int] = {}
    for _, span in ordered:  # parents come before their children
        parent = by_id.get(span.parent_id) if span.parent_id else None
        inherited = shift.get(parent.span_id, 0) if parent is not None else 0
        own = 0
        if parent is not None and parent.service != span.service:
            p_start, p_end = parent.start_ns + inherited, parent.end_ns + inherited
            c_start, c_end = span.start_ns + inherited, span.end_ns + inherited
            p_len, c_len = p_end - p_start, c_end - c_start
            if (c_start < p_start or c_end > p_end) and c_len <= p_len:
                own = p_start + (p_len - c_len) // 2 - c_start
        shift[span.span_id] = inherited + own
    return shift


def rows(spans: Sequence[SpanRecord]) -> list[WaterfallRow]:
    """Spans in tree order with their offset from the trace start and bar geometry (skew adjusted)."""
    if not spans:
        return []
    ordered = waterfall(spans)
    shift = _shifts(ordered)
    start = min(s.start_ns + shift[s.span_id] for _, s in ordered)
    total = max(max(s.end_ns + shift[s.span_id] for _, s in ordered) - start, 1)
    out = []
    for depth, span in ordered:
        offset = span.start_ns + shift[span.span_id] - start
        length = max(span.end_ns - span.start_ns, 0)
        out.append(
            WaterfallRow(
                depth,
                span,
                offset / 1e6,
                length / 1e6,
                offset / total,
                length / total,
                shift[span.span_id] / 1e6,
            )
        )
    return out
