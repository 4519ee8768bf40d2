"""``/map`` and ``/map.json``: the service map from the span store, over a chosen window.

A server-drawn SVG (services on a circle, an arrow per edge, red when it had
errors) above a table of the edges: requests/s, error rate, p50 and p99 as the
caller saw them, and links to the edge's traces and error traces (a search of
``/traces``). No JavaScript: the window is a GET form.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Mapping

from grpcmesh.sdk.servicemap import ServiceMap, service_map
from grpcmesh.sidecar.admin import PageRoute
from grpcmesh.sidecar.html import Page, esc, first, guard, page, text, url
from grpcmesh.sidecar.trace_pages import DISABLED, query_params

__all__ = ["map_routes"]

WINDOWS = {"1m": 60.0, "5m": 300.0, "15m": 900.0, "1h": 3600.0, "6h": 21600.0, "24h": 86400.0}


def _window(query: Mapping[str, list[str]]) -> tuple[str, float]:
    name = first(query, "window") or "15m"
    if name not in WINDOWS:
        raise ValueError(f"window: must be one of {', '.join(WINDOWS)}, got {name!r}")
    return name, WINDOWS[name]


def _svg(smap: ServiceMap) -> str:
    names = smap.services
    if not names:
        return ""
    size, radius = 420, 150
    pos = {
        n: (size / 2 + radius * math.cos(2 * math.pi * i / len(names) - math.pi / 2),
            size / 2 + radius * math.sin(2 * math.pi * i / len(names) - math.pi / 2))
        for i, n in enumerate(names)
    }  # fmt: skip
    parts = [
        f'<svg id="graph" width="{size}" height="{size}" viewBox="0 0 {size} {size}">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="22" refY="5" markerWidth="6" markerHeight="6"'
        ' orient="auto"><path d="M0,0L10,5L0,10z" fill="#666"/></marker></defs>'
    ]
    for e in smap.edges:
        (x1, y1), (x2, y2) = pos[e.caller], pos[e.callee]
        colour = "#d04a4a" if e.errors else "#888"
        parts.append(
            f'<a href="{esc(url("/traces", query_params(e.traces())))}"><line x1="{x1:.0f}" y1="{y1:.0f}" '
            f'x2="{x2:.0f}" y2="{y2:.0f}" stroke="{colour}" stroke-width="2" marker-end="url(#arrow)">'
            f"<title>{esc(e.caller)} → {esc(e.callee)}: {e.rps:.2f} rps, {e.error_rate:.1%} errors</title>"
            "</line></a>"
            f'<text x="{(x1 + x2) / 2 + 6:.0f}" y="{(y1 + y2) / 2:.0f}" font-size="11" fill="{colour}">'
            f"{e.rps:.2f} rps, {e.error_rate:.1%} err, p99 {e.p99_ms:.1f} ms</text>"
        )
    for n, (x, y) in pos.items():
        parts.append(
            f'<circle cx="{x:.0f}" cy="{y:.0f}" r="16" fill="#e8eefc" stroke="#4a7bd0"/>'
            f'<text x="{x:.0f}" y="{y + 30:.0f}" text-anchor="middle" font-size="12">{esc(n)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _table(smap: ServiceMap) -> str:
    lines = [
        '<table id="edges"><tr><th>caller</th><th>callee</th><th>requests</th><th>req/s</th>'
        "<th>error rate</th><th>p50</th><th>p99</th><th>traces</th></tr>"
    ]
    for e in smap.edges:
        cls = ' class="edge err"' if e.errors else ' class="edge"'
        all_link = url("/traces", query_params(e.traces()))
        err_link = url("/traces", query_params(e.traces(errors_only=True)))
        lines.append(
            f'<tr{cls} data-caller="{esc(e.caller)}" data-callee="{esc(e.callee)}"><td>{esc(e.caller)}</td>'
            f"<td>{esc(e.callee)}</td><td>{e.requests}</td><td>{e.rps:.2f}</td>"
            f'<td class="error-rate">{e.error_rate:.1%}</td>'
            f"<td>{e.p50_ms:.2f} ms</td><td>{e.p99_ms:.2f} ms</td>"
            f'<td><a href="{esc(all_link)}">traces</a> <a href="{esc(err_link)}">errors</a></td></tr>'
        )
    lines.append("</table>" if smap.edges else "</table><p>no calls in this window</p>")
    return "".join(lines)


def _map_html(db: str, query: Mapping[str, list[str]]) -> Page:
    name, seconds = _window(query)
    smap = service_map(db, seconds, time.time_ns())
    options = "".join(f"<option{' selected' if w == name else ''}>{w}</option>" for w in WINDOWS)
    form = (
        f'<form class="search" method="get" action="/map"><label>window<select name="window">{options}'
        '</select></label><button type="submit">Show</button></form>'
    )
    note = (
        '<p class="note">more calls than read: the oldest in the window are left out</p>'
        if smap.truncated
        else ""
    )
    return page(f"Service map (last {name})", form + note + _svg(smap) + _table(smap))


def _map_json(db: str, query: Mapping[str, list[str]]) -> Page:
    _, seconds = _window(query)
    smap = service_map(db, seconds, time.time_ns())
    edges = [{**dataclasses.asdict(e), "rps": e.rps, "error_rate": e.error_rate} for e in smap.edges]
    body = {"window_s": seconds, "truncated": smap.truncated, "edges": edges}
    return 200, "application/json", json.dumps(body, indent=2).encode()


def map_routes(db: str | None) -> dict[str, PageRoute]:
    if db is None:
        return {p: (lambda _rest, _q: text(404, DISABLED)) for p in ("/map", "/map.json")}
    path = db
    return {
        "/map": lambda _rest, q: guard(path, lambda: _map_html(path, q)),
        "/map.json": lambda _rest, q: guard(path, lambda: _map_json(path, q)),
    }
