"""The admin pages' shared shell: one stylesheet, a navigation bar, escaping and query helpers.

Pages are server-rendered HTML with inline CSS and no JavaScript: links, forms
(GET) and ``<details>`` do everything, so they work with JavaScript off, from
a terminal browser, and as shareable URLs.
"""

from __future__ import annotations

import html
import sqlite3
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

__all__ = ["Page", "esc", "first", "guard", "page", "text", "url"]

Page = tuple[int, str, bytes]

_STYLE = (
    "body{font:13px system-ui,sans-serif;margin:0 1em 2em}nav{padding:.6em 0;border-bottom:1px solid #ddd;"
    "margin-bottom:.8em}nav a{margin-right:1.2em}table{border-collapse:collapse}"
    "td,th{padding:2px 8px;text-align:left;white-space:nowrap}th a{color:inherit}"
    "tr:nth-child(even){background:#f6f6f6}.err{color:#b00020}.mono{font-family:monospace}"
    "form.search{display:flex;flex-wrap:wrap;gap:.4em 1em;align-items:end;margin-bottom:1em}"
    "form.search label{display:flex;flex-direction:column;font-size:11px;color:#555}"
    ".track{position:relative;width:420px;height:12px;background:#eee;display:inline-block}"
    ".bar{position:absolute;top:0;height:12px;background:#4a7bd0}.bar.err{background:#d04a4a}"
    "details.span{border-bottom:1px solid #eee}details.span summary{display:flex;gap:.8em;"
    "align-items:center;cursor:pointer;padding:2px 0;list-style:none}"
    "details.span summary .name{width:360px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}"
    "details.span[open]{background:#fafaf0}.detail{margin:.3em 0 .6em 2em}"
    ".selected summary{outline:2px solid #f0b000}.note{color:#666}"
    ".spark{vertical-align:middle}.spark polyline{fill:none;stroke:#4a7bd0;stroke-width:1.5}"
)
_NAV = (
    '<nav><a href="/traces">Traces</a><a href="/map">Service map</a>'
    '<a href="/stat">Golden metrics</a><a href="/metrics">/metrics</a></nav>'
)


def esc(value: object) -> str:
    return html.escape(str(value))


def page(title: str, body: str, status: int = 200) -> Page:
    doc = (
        f"<!doctype html><html><head><meta charset=utf-8><title>{esc(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{_NAV}<h1>{esc(title)}</h1>{body}</body></html>"
    )
    return status, "text/html; charset=utf-8", doc.encode()


def text(status: int, message: str) -> Page:
    return status, "text/plain; charset=utf-8", (message.rstrip("\n") + "\n").encode()


def first(query: Mapping[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None


def url(path: str, params: Iterable[tuple[str, object]]) -> str:
    """``path?k=v...`` with empty values left out."""
    kept = [(k, str(v)) for k, v in params if v is not None and v != "" and v is not False]
    return path + ("?" + urllib.parse.urlencode(kept) if kept else "")


def guard(db: str, produce: Callable[[], Page]) -> Page:
    """404 before the first span is written, 400 for a bad parameter, 503 for an unreadable file."""
    if not Path(db).is_file():
        return text(404, f"no spans recorded yet in {db}")
    try:
        return produce()
    except ValueError as err:
        return text(400, f"bad parameter {err}")
    except sqlite3.Error as err:
        return text(503, f"cannot read span store {db}: {err}")
