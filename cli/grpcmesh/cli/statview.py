"""Scrapes and tables for ``grpcmesh stat``: sidecars' ``/metrics`` into golden-metric rows.

Several sidecars may serve one service (replicas): their counters and buckets
are summed per (direction, service, method) before the interval is taken, so a
service's row covers all of them. An unreachable sidecar is one clear error.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict

from grpcmesh.cli.errors import CommandError
from grpcmesh.sdk.golden import GoldenRow, Snapshot, golden_rows, parse_metrics

__all__ = ["render_golden", "scrape", "scrape_all"]


def scrape(admin: str, timeout: float = 5.0) -> str:
    address = admin if "://" in admin else f"http://{admin}"
    try:
        with urllib.request.urlopen(f"{address.rstrip('/')}/metrics", timeout=timeout) as resp:
            return str(resp.read().decode())
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise CommandError(f"cannot scrape {admin}/metrics (a sidecar's --admin address?): {err}") from err


def scrape_all(admins: Sequence[str]) -> Snapshot:
    """One snapshot summing every sidecar's counters (replicas of a service add up)."""
    total = Snapshot(time.monotonic())
    for admin in admins:
        snap = parse_metrics(scrape(admin), total.at)
        for key, codes in snap.calls.items():
            mine = total.calls.setdefault(key, {})
            for code, value in codes.items():
                mine[code] = mine.get(code, 0.0) + value
        for key, buckets in snap.buckets.items():
            summed = dict(total.buckets.get(key, []))
            for le, count in buckets:
                summed[le] = summed.get(le, 0.0) + count
            total.buckets[key] = sorted(summed.items())
    return total


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}ms"


def render_golden(
    current: Snapshot, previous: Snapshot, direction: str, service: str | None, *, as_json: bool = False
) -> str:
    rows: list[GoldenRow] = [
        r for r in golden_rows(current, previous, (direction,)) if service is None or r.service == service
    ]
    if as_json:
        return json.dumps(
            [{**asdict(r), "success_rate": r.success_rate} for r in rows], separators=(",", ":"), default=str
        )
    header = (
        f"{'SERVICE':16} {'METHOD':40} {'SUCCESS':>8} {'RPS':>8} "
        + " ".join(f"{h:>9}" for h in ("P50", "P95", "P99"))
        + f" {'TOTAL':>8}"
    )
    lines = [header]
    for r in rows:
        rate = "-" if r.success_rate is None else f"{r.success_rate * 100:.2f}%"
        lines.append(
            f"{r.service[:16]:16} {r.method[:40]:40} {rate:>8} {r.rps:>8.1f} {_ms(r.p50_ms):>9} "
            f"{_ms(r.p95_ms):>9} {_ms(r.p99_ms):>9} {int(r.total):>8}"
        )
    if not rows:
        lines.append(f"(no {direction} calls yet)")
    return "\n".join(lines)
