"""Golden metrics per service and method from a sidecar's Prometheus counters and histograms.

``grpcmesh stat`` and the sidecar's ``/stat`` page both take two scrapes of
``grpcmesh_requests_total`` and ``grpcmesh_request_duration_seconds`` and
report what happened between them: requests/s, success rate, and p50/p95/p99
interpolated within the histogram buckets exactly as Prometheus'
``histogram_quantile`` does, so the numbers agree with a dashboard built on
``/metrics``. Pure functions over the text format: no scrape here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["GoldenRow", "Snapshot", "golden_rows", "histogram_quantile", "parse_metrics"]

Key = tuple[str, str, str]  # (direction, service, method)
SUCCESS_CODES = frozenset({"OK"})


@dataclass
class Snapshot:
    """Counter values of one scrape: calls by key and code, latency buckets by key."""

    at: float  # seconds (the scraper's monotonic clock)
    calls: dict[Key, dict[str, float]] = field(default_factory=dict)
    buckets: dict[Key, list[tuple[float, float]]] = field(default_factory=dict)  # (le, cumulative count)


@dataclass(frozen=True)
class GoldenRow:
    direction: str
    service: str
    method: str
    requests: float  # calls in the interval
    successes: float
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    total: float  # calls since the sidecar started (the counter's value)

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.requests if self.requests else None


def parse_metrics(text: str, at: float) -> Snapshot:
    """The request counters and latency histograms of one ``/metrics`` text."""
    snap = Snapshot(at)
    for family in text_string_to_metric_families(text):
        if family.name not in ("grpcmesh_requests", "grpcmesh_request_duration_seconds"):
            continue
        for sample in family.samples:
            labels = sample.labels
            key = (labels.get("direction", ""), labels.get("service", ""), labels.get("method", ""))
            if sample.name == "grpcmesh_requests_total":
                snap.calls.setdefault(key, {})[labels.get("code", "")] = sample.value
            elif sample.name == "grpcmesh_request_duration_seconds_bucket":
                le = math.inf if labels["le"] in ("+Inf", "inf") else float(labels["le"])
                snap.buckets.setdefault(key, []).append((le, sample.value))
    for series in snap.buckets.values():
        series.sort()
    return snap


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus' ``histogram_quantile`` over cumulative (le, count) buckets; NaN when empty."""
    if not buckets or buckets[-1][1] <= 0:
        return math.nan
    total = buckets[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return lower_bound  # in the +Inf bucket: the highest finite bound
            if count == lower_count:
                return le
            return lower_bound + (le - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = le, count
    return lower_bound


def _delta_buckets(
    new: list[tuple[float, float]], old: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    before = dict(old)
    return [(le, count - before.get(le, 0.0)) for le, count in new]


def golden_rows(
    new: Snapshot, old: Snapshot | None, directions: Iterable[str] = ("inbound",)
) -> list[GoldenRow]:
    """One row per (direction, service, method) for the interval ``old`` → ``new``.

    Without ``old`` the interval is the sidecar's whole life (rates then are not meaningful: 0).
    """
    wanted = set(directions)
    seconds = new.at - old.at if old is not None else 0.0
    rows = []
    for key in sorted(set(new.calls) | set(new.buckets)):
        if key[0] not in wanted:
            continue
        codes = new.calls.get(key, {})
        before = old.calls.get(key, {}) if old is not None else {}
        requests = sum(codes.values()) - sum(before.values())
        successes = sum(v for c, v in codes.items() if c in SUCCESS_CODES) - sum(
            v for c, v in before.items() if c in SUCCESS_CODES
        )
        buckets = _delta_buckets(
            new.buckets.get(key, []), old.buckets.get(key, []) if old is not None else []
        )
        p50, p95, p99 = (histogram_quantile(q, buckets) * 1000 for q in (0.5, 0.95, 0.99))
        rows.append(
            GoldenRow(
                direction=key[0],
                service=key[1],
                method=key[2],
                requests=requests,
                successes=successes,
                rps=requests / seconds if seconds > 0 else 0.0,
                p50_ms=p50,
                p95_ms=p95,
                p99_ms=p99,
                total=sum(codes.values()),
            )
        )
    return rows
