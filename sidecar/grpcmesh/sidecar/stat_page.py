"""``/stat`` and ``/stat.json``: this sidecar's golden metrics per service and method, over time.

A task samples the sidecar's own registry every ``SAMPLE_S`` seconds and keeps
the last ``POINTS`` samples (a fixed ring: ~10 minutes, a few KB per series).
Each page row is one (direction, service, method) with requests/s, success
rate and p50/p95/p99 over the last interval (the numbers ``grpcmesh stat``
prints, computed by :mod:`grpcmesh.sdk.golden`) and small server-drawn SVG
charts of their history. No JavaScript: reload, or use ``?refresh=5``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import time
from collections import deque
from collections.abc import Callable, Mapping

from grpcmesh.sdk.golden import GoldenRow, Snapshot, golden_rows, parse_metrics
from grpcmesh.sidecar.admin import PageRoute
from grpcmesh.sidecar.html import Page, esc, first, page

__all__ = ["MetricsHistory", "stat_routes"]

SAMPLE_S = 5.0
POINTS = 120


class MetricsHistory:
    """The last ``POINTS`` scrapes of a registry and the golden rows between consecutive ones."""

    def __init__(self, scrape: Callable[[], str], *, points: int = POINTS) -> None:
        self._scrape = scrape
        self._snapshots: deque[Snapshot] = deque(maxlen=points + 1)
        self._series: deque[tuple[float, list[GoldenRow]]] = deque(maxlen=points)

    def sample(self) -> None:
        snap = parse_metrics(self._scrape(), time.monotonic())
        previous = self._snapshots[-1] if self._snapshots else None
        self._snapshots.append(snap)
        if previous is not None:
            self._series.append((time.time(), golden_rows(snap, previous, ("inbound", "outbound"))))

    async def run(self, every: float = SAMPLE_S) -> None:
        while True:
            self.sample()
            await asyncio.sleep(every)

    def latest(self) -> list[GoldenRow]:
        return self._series[-1][1] if self._series else []

    def history(self) -> dict[tuple[str, str, str], list[GoldenRow | None]]:
        series = list(self._series)  # pages run in a thread while the sampler appends
        keys = {(r.direction, r.service, r.method) for _, rows in series for r in rows}
        out: dict[tuple[str, str, str], list[GoldenRow | None]] = {}
        for key in sorted(keys):
            out[key] = [
                next((r for r in rows if (r.direction, r.service, r.method) == key), None)
                for _, rows in series
            ]
        return out


def _spark(values: list[float | None], fmt: str) -> str:
    points = [(i, v) for i, v in enumerate(values) if v is not None and not math.isnan(v)]
    if not points:
        return "-"
    top = max(v for _, v in points) or 1.0
    width, height = 120, 24
    step = width / max(len(values) - 1, 1)
    coords = " ".join(f"{i * step:.1f},{height - 2 - (v / top) * (height - 4):.1f}" for i, v in points)
    last = points[-1][1]
    return (
        f'<svg class="spark" width="{width}" height="{height}"><polyline points="{coords}"/></svg> '
        f"{fmt.format(last)}"
    )


def _values(rows: list[GoldenRow | None], pick: Callable[[GoldenRow], float | None]) -> list[float | None]:
    return [pick(r) if r is not None else None for r in rows]


def _stat_html(history: MetricsHistory, query: Mapping[str, list[str]]) -> Page:
    refresh = first(query, "refresh")
    meta = f'<meta http-equiv="refresh" content="{int(refresh)}">' if refresh and refresh.isdigit() else ""
    lines = [
        f'{meta}<p class="note">sampled every {SAMPLE_S:.0f}s, last {POINTS} samples; '
        '<a href="?refresh=5">auto-refresh</a> - <a href="/stat.json">JSON</a></p>'
        '<table id="golden"><tr><th>direction</th><th>service</th><th>method</th><th>req/s</th>'
        "<th>success</th><th>p50</th><th>p95</th><th>p99</th></tr>"
    ]
    for (direction, service, method), series in history.history().items():
        success = _values(series, lambda r: None if r.success_rate is None else r.success_rate * 100)
        lines.append(
            f"<tr><td>{esc(direction)}</td><td>{esc(service)}</td><td>{esc(method)}</td>"
            f"<td>{_spark(_values(series, lambda r: r.rps), '{:.2f}')}</td>"
            f"<td>{_spark(success, '{:.1f}%')}</td>"
            f"<td>{_spark(_values(series, lambda r: r.p50_ms), '{:.2f} ms')}</td>"
            f"<td>{_spark(_values(series, lambda r: r.p95_ms), '{:.2f} ms')}</td>"
            f"<td>{_spark(_values(series, lambda r: r.p99_ms), '{:.2f} ms')}</td></tr>"
        )
    lines.append("</table>")
    return page("Golden metrics", "".join(lines))


def _stat_json(history: MetricsHistory) -> Page:
    rows = [{**dataclasses.asdict(r), "success_rate": r.success_rate} for r in history.latest()]
    return 200, "application/json", json.dumps(rows, indent=2).encode()


def stat_routes(history: MetricsHistory) -> dict[str, PageRoute]:
    return {
        "/stat": lambda _rest, q: _stat_html(history, q),
        "/stat.json": lambda _rest, _q: _stat_json(history),
    }
