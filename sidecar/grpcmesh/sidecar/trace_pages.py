"""Admin pages over the embedded span store: ``/traces``, ``/traces.json`` and ``/traces/<id>``.

Plain HTML with inline CSS bars (no JavaScript, no assets), so an operator can
look at recent traces from a browser pointed at the sidecar's admin port.
Served only when the sidecar exports to the store; otherwise each route says
how to enable it. Reads open the file per request: other processes write it.
"""

from __future__ import annotations

import dataclasses
import html
import json
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

from grpcmesh.sdk.spansearch import list_traces
from grpcmesh.sdk.spanstore import AmbiguousTrace, find_trace, get_trace
from grpcmesh.sdk.waterfall import rows
from grpcmesh.sidecar.admin import PrefixRoute, Route

__all__ = ["trace_routes"]

log = logging.getLogger("grpcmesh.sidecar.trace_pages")

_DISABLED = (
    b"traces are not stored by this sidecar: start it with --trace-exporter store "
    b'(or [tracing] exporter = "store"), optionally --trace-endpoint FILE\n'
)
_STYLE = (
    "body{font:13px monospace;margin:1em}table{border-collapse:collapse}"
    "td,th{padding:2px 8px;text-align:left;white-space:nowrap}tr:nth-child(even){background:#f4f4f4}"
    ".err{color:#b00020}.track{position:relative;width:400px;height:12px;background:#eee}"
    ".bar{position:absolute;top:0;height:12px;background:#4a7bd0}.bar.err{background:#d04a4a}"
)
Page = tuple[int, str, bytes]


def _page(title: str, body: str, status: int = 200) -> Page:
    doc = (
        f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return status, "text/html; charset=utf-8", doc.encode()


def _guard(db: str, produce: Callable[[], Page]) -> Page:
    if not Path(db).is_file():
        return 404, "text/plain", f"no spans recorded yet in {db}\n".encode()
    try:
        return produce()
    except sqlite3.Error as err:
        log.warning("span store read failed: %s", err)
        return 503, "text/plain", f"cannot read span store {db}: {err}\n".encode()


def _list_html(db: str) -> Page:
    traces = list_traces(db, 50)
    lines = [
        "<table><tr><th>trace</th><th>root</th><th>services</th><th>spans</th>"
        "<th>duration</th><th>status</th><th>request id</th></tr>"
    ]
    for t in traces:
        cls = ' class="err"' if t.error else ""
        lines.append(
            f'<tr{cls}><td><a href="/traces/{t.trace_id}">{t.trace_id}</a></td>'
            f"<td>{html.escape(t.root_name)}</td><td>{html.escape(', '.join(t.services))}</td>"
            f"<td>{t.span_count}</td><td>{t.duration_ms:.2f} ms</td><td>{'ERROR' if t.error else 'OK'}</td>"
            f"<td>{html.escape(t.request_id or '-')}</td></tr>"
        )
    lines.append("</table>" if traces else "</table><p>no traces yet</p>")
    return _page(f"Recent traces ({len(traces)})", "".join(lines))


def _list_json(db: str) -> Page:
    body = json.dumps([dataclasses.asdict(t) for t in list_traces(db, 50)], indent=2)
    return 200, "application/json", body.encode()


def _trace_html(db: str, key: str) -> Page:
    try:
        trace_id = find_trace(db, key)
    except AmbiguousTrace as err:
        return 400, "text/plain", f"{err}\n".encode()
    if trace_id is None:
        return 404, "text/plain", f"no trace {key!r}\n".encode()
    lines = [
        '<p><a href="/traces">all traces</a></p><table><tr><th>offset</th><th>duration</th>'
        "<th>timeline</th><th>service / span</th><th>status</th></tr>"
    ]
    for row in rows(get_trace(db, trace_id)):
        bad = " err" if row.span.error else ""
        bar = (
            f'<div class="track"><div class="bar{bad}" style="left:{row.left * 100:.2f}%;'
            f'width:{max(row.width * 100, 0.3):.2f}%"></div></div>'
        )
        indent = "&nbsp;" * (4 * row.depth)
        lines.append(
            f'<tr class="span{bad}"><td>{row.offset_ms:.2f} ms</td><td>{row.duration_ms:.2f} ms</td>'
            f"<td>{bar}</td><td>{indent}{html.escape(row.span.service)} "
            f"<b>{html.escape(row.span.name)}</b> ({row.span.kind.lower()})</td>"
            f"<td>{html.escape(row.status)}</td></tr>"
        )
    lines.append("</table>")
    return _page(f"Trace {trace_id}", "".join(lines))


def trace_routes(db: str | None) -> tuple[dict[str, Route], dict[str, PrefixRoute]]:
    """The admin routes for ``db`` (the store file), or routes explaining how to enable them."""
    if db is None:

        def disabled() -> Page:
            return 404, "text/plain", _DISABLED

        return {"/traces": disabled, "/traces.json": disabled}, {"/traces/": lambda _key: disabled()}
    path = db
    return (
        {
            "/traces": lambda: _guard(path, lambda: _list_html(path)),
            "/traces.json": lambda: _guard(path, lambda: _list_json(path)),
        },
        {"/traces/": lambda key: _guard(path, lambda: _trace_html(path, key))},
    )
