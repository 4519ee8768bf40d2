"""Admin pages over the embedded span store: trace search and trace detail, in HTML and JSON.

``/traces`` is a search form (GET, so every search is a shareable URL) over
:class:`~grpcmesh.sdk.spansearch.TraceQuery` - the same parameters as
``/traces.json`` and ``grpcmesh traces``. ``/traces/<id>`` is the waterfall
(nested by parent span, skew adjusted by :mod:`grpcmesh.sdk.waterfall`); each
span is a ``<details>`` that opens on click to its attributes, status, events,
peer and attempts, and ``?span=<span id>`` opens one in a link.
Served only when the sidecar exports to the store; otherwise each route says
how to enable it. Reads open the file per request: other processes write it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping

from grpcmesh.sdk.spanparams import query_from_params
from grpcmesh.sdk.spansearch import SORTS, TraceQuery, search_traces
from grpcmesh.sdk.spanstore import AmbiguousTrace, SpanRecord, TraceSummary, find_trace, get_trace
from grpcmesh.sdk.waterfall import WaterfallRow, rows
from grpcmesh.sidecar.admin import PageRoute
from grpcmesh.sidecar.html import Page, esc, first, guard, page, text, url

__all__ = ["DISABLED", "query_params", "trace_routes"]

DISABLED = (
    "traces are not stored by this sidecar: start it with --trace-exporter store "
    '(or [tracing] exporter = "store"), optionally --trace-endpoint FILE'
)
_FIELDS = (  # (parameter, label, placeholder)
    ("service", "service", "orders"),
    ("method", "method", "pkg.Service/Method"),
    ("min_ms", "min ms", ""),
    ("max_ms", "max ms", ""),
    ("since", "since", "15m or 2026-01-01T10:00"),
    ("until", "until", ""),
    ("request_id", "request id", ""),
    ("attr", "attribute", "key=value"),
)
Query = Mapping[str, list[str]]


def _query(query: Query) -> TraceQuery:
    return query_from_params({k: first(query, k) for k in query if k != "attr"}, query.get("attr", []))


def query_params(q: TraceQuery) -> list[tuple[str, object]]:
    """URL parameters that :func:`_query` reads back as ``q`` (links from other pages)."""
    return [
        ("service", q.service),
        ("method", q.method),
        ("errors", "1" if q.errors_only else None),
        ("min_ms", q.min_duration_ms),
        ("max_ms", q.max_duration_ms),
        ("request_id", q.request_id),
        *(("attr", f"{k}={v}") for k, v in q.attributes),
    ]


def _clock(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _form(query: Query) -> str:
    cells = []
    for name, label, hint in _FIELDS:
        value = esc(first(query, name) or "")
        cells.append(f'<label>{label}<input name="{name}" value="{value}" placeholder="{esc(hint)}"></label>')
    checked = " checked" if first(query, "errors") else ""
    cells.append(f'<label>errors only<input type="checkbox" name="errors" value="1"{checked}></label>')
    sort = first(query, "sort") or "newest"
    options = "".join(f"<option{' selected' if s == sort else ''}>{s}</option>" for s in SORTS)
    cells.append(f'<label>sort<select name="sort">{options}</select></label>')
    cells.append('<button type="submit">Search</button> <a href="/traces">clear</a>')
    return f'<form class="search" method="get" action="/traces">{"".join(cells)}</form>'


def _table(traces: list[TraceSummary], query: Query) -> str:
    base = [(k, v) for k, vs in query.items() if k != "sort" for v in vs]
    sort_link = {
        "start (UTC)": url("/traces", [*base, ("sort", "newest")]),
        "duration": url("/traces", [*base, ("sort", "longest")]),
        "spans": url("/traces", [*base, ("sort", "most-spans")]),
    }
    heads = ["trace", "start (UTC)", "root", "services", "spans", "duration", "status", "request id"]
    head = "".join(
        f'<th><a href="{esc(sort_link[h])}">{h}</a></th>' if h in sort_link else f"<th>{h}</th>"
        for h in heads
    )
    lines = [f'<table id="results"><tr>{head}</tr>']
    for t in traces:
        cls = ' class="trace err"' if t.error else ' class="trace"'
        lines.append(
            f'<tr{cls}><td class="mono"><a href="/traces/{t.trace_id}">{t.trace_id}</a></td>'
            f"<td>{_clock(t.start_ns)}</td><td>{esc(t.root_name)}</td><td>{esc(', '.join(t.services))}</td>"
            f"<td>{t.span_count}</td><td>{t.duration_ms:.2f} ms</td><td>{'ERROR' if t.error else 'OK'}</td>"
            f"<td>{esc(t.request_id or '-')}</td></tr>"
        )
    lines.append("</table>" if traces else '</table><p id="none">no traces match</p>')
    return "".join(lines)


def _search_html(db: str, query: Query) -> Page:
    traces = search_traces(db, _query(query))
    return page(f"Traces ({len(traces)})", _form(query) + _table(traces, query))


def _search_json(db: str, query: Query) -> Page:
    body = json.dumps([dataclasses.asdict(t) for t in search_traces(db, _query(query))], indent=2)
    return 200, "application/json", body.encode()


def _detail(span: SpanRecord, skew_ms: float) -> str:
    a = span.attributes
    facts = [
        ("status", f"{span.status_code}" + (f": {span.status_message}" if span.status_message else "")),
        ("service", span.service),
        ("kind", span.kind),
        ("peer", a.get("mesh.endpoint", a.get("net.peer.name", "-"))),
        ("attempts", a.get("mesh.attempts", "-")),
        ("request id", span.request_id or "-"),
        ("span id", span.span_id),
        ("parent", span.parent_id or "-"),
        ("start (UTC)", _clock(span.start_ns)),
        ("duration", f"{span.duration_ms:.3f} ms"),
    ]
    if skew_ms:
        facts.append(("clock skew", f"shifted {skew_ms:+.3f} ms to fit its parent"))
    rows_ = "".join(f'<tr><th>{esc(k)}</th><td class="fact">{esc(v)}</td></tr>' for k, v in facts)
    attrs = "".join(
        f'<tr class="attr"><th class="mono">{esc(k)}</th><td class="mono">{esc(v)}</td></tr>'
        for k, v in sorted(a.items())
    )
    events = "".join(
        f"<li>{esc(_clock(int(e.get('time_ns', 0))))} <b>{esc(e.get('name'))}</b> "
        f'<span class="mono">{esc(json.dumps(e.get("attributes", {})))}</span></li>'
        for e in span.events
    )
    return (
        f'<div class="detail"><table class="facts">{rows_}</table><h4>attributes</h4>'
        f'<table class="attrs">{attrs}</table><h4>events</h4><ul>{events or "<li>none</li>"}</ul>'
        f'<a href="?span={span.span_id}#span-{span.span_id}">link to this span</a></div>'
    )


def _row(row: WaterfallRow, selected: str | None) -> str:
    span = row.span
    bad = " err" if span.error else ""
    is_open = " open" if span.span_id == selected else ""
    sel = " selected" if is_open else ""
    bar = (
        f'<span class="track"><span class="bar{bad}" style="left:{row.left * 100:.2f}%;'
        f'width:{max(row.width * 100, 0.3):.2f}%"></span></span>'
    )
    indent = "&nbsp;" * (4 * row.depth)
    return (
        f'<details class="span{bad}{sel}" id="span-{span.span_id}"{is_open}><summary>'
        f'<span class="name">{indent}{esc(span.service)} <b>{esc(span.name)}</b> ({span.kind.lower()})</span>'
        f"{bar}<span>{row.offset_ms:.2f} ms +{row.duration_ms:.2f} ms</span>"
        f'<span class="status{bad}">{esc(row.status)}</span></summary>{_detail(span, row.skew_ms)}</details>'
    )


def _trace(db: str, key: str, query: Query) -> Page:
    as_json = key.endswith(".json")
    key = key.removesuffix(".json")
    try:
        trace_id = find_trace(db, key)
    except AmbiguousTrace as err:
        return text(400, str(err))
    if trace_id is None:
        return text(404, f"no trace {key!r} (not a trace id, request id or unique prefix)")
    table = rows(get_trace(db, trace_id))
    if as_json:
        body = [{**dataclasses.asdict(r.span), "depth": r.depth, "skew_ms": r.skew_ms} for r in table]
        return 200, "application/json", json.dumps(body, indent=2, default=str).encode()
    errors = sum(r.span.error for r in table)
    total = max((r.offset_ms + r.duration_ms for r in table), default=0.0)
    head = (
        f'<p>{len(table)} spans, {total:.2f} ms, <span class="{"err" if errors else ""}">'
        f"{errors} errors</span>"
        f' - <a href="/traces">search</a> - <a href="/traces/{trace_id}.json">JSON</a></p>'
    )
    selected = first(query, "span")
    return page(f"Trace {trace_id}", head + "".join(_row(r, selected) for r in table))


def trace_routes(db: str | None) -> dict[str, PageRoute]:
    """The page routes for ``db`` (the store file), or routes explaining how to enable them."""
    if db is None:
        return {p: (lambda _rest, _q: text(404, DISABLED)) for p in ("/traces", "/traces.json")}
    path = db

    def traces(rest: str, query: Query) -> Page:
        if rest:
            return guard(path, lambda: _trace(path, rest, query))
        return guard(path, lambda: _search_html(path, query))

    return {"/traces": traces, "/traces.json": lambda _rest, q: guard(path, lambda: _search_json(path, q))}
