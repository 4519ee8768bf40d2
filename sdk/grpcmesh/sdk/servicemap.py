"""The service map: which services call which, from the client spans in the span store.

An edge is (caller, callee) over a window ending now, with its request rate,
error rate and latency percentiles as the caller saw them (client spans: what
the caller waited for, retries included). A sidecar's outbound span names both
ends (``mesh.source``, ``mesh.service``); an SDK client span names its own
service and the proto service it called (``rpc.service``). Reading is one
range search on ``spans_start`` bounded by ``MAX_SPANS``; each edge carries the
search that lists its traces, so pages and tests link to them the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from grpcmesh.sdk.spansearch import TraceQuery
from grpcmesh.sdk.spanstore import connect

__all__ = ["Edge", "ServiceMap", "percentile", "service_map"]

MAX_SPANS = 200_000
SIDECAR_SUFFIX = "-sidecar"


@dataclass(frozen=True)
class Edge:
    caller: str
    callee: str
    via: str  # the attribute naming the callee: "mesh.service" (a sidecar) or "rpc.service" (an SDK)
    caller_service: str  # the span store's service name of the caller's spans
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    window_s: float

    @property
    def rps(self) -> float:
        return self.requests / self.window_s

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def traces(self, errors_only: bool = False) -> TraceQuery:
        """The search listing this edge's traces (newest first)."""
        return TraceQuery(
            service=self.caller_service, attributes=((self.via, self.callee),), errors_only=errors_only
        )


@dataclass(frozen=True)
class ServiceMap:
    edges: tuple[Edge, ...]
    window_s: float
    truncated: bool  # more than MAX_SPANS client spans in the window: the oldest were not read

    @property
    def services(self) -> tuple[str, ...]:
        return tuple(sorted({e.caller for e in self.edges} | {e.callee for e in self.edges}))


def percentile(sorted_values: list[int], q: float) -> int:
    """The nearest-rank percentile ``q`` (0..1) of an ascending list (0 when empty)."""
    if not sorted_values:
        return 0
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _strip(service: str) -> str:
    return service[: -len(SIDECAR_SUFFIX)] if service.endswith(SIDECAR_SUFFIX) else service


def service_map(path: str | Path, window_s: float, now_ns: int) -> ServiceMap:
    """The edges seen in client spans that started within ``window_s`` before ``now_ns``."""
    if window_s <= 0:
        raise ValueError(f"window: must be > 0 seconds, got {window_s}")
    conn = connect(path)
    try:
        rows = conn.execute(
            "SELECT service, json_extract(attributes, '$.\"mesh.source\"'),"
            " json_extract(attributes, '$.\"mesh.service\"'), json_extract(attributes, '$.\"rpc.service\"'),"
            " end_ns - start_ns, status_code = 'ERROR'"
            " FROM spans INDEXED BY spans_start WHERE start_ns >= ? AND start_ns <= ? AND kind = 'CLIENT'"
            " ORDER BY start_ns DESC LIMIT ?",
            (now_ns - int(window_s * 1e9), now_ns, MAX_SPANS + 1),
        ).fetchall()
    finally:
        conn.close()
    truncated = len(rows) > MAX_SPANS
    groups: dict[tuple[str, str, str, str], tuple[list[int], list[int]]] = {}
    for service, source, mesh_callee, rpc_callee, duration, error in rows[:MAX_SPANS]:
        via, callee = ("mesh.service", mesh_callee) if mesh_callee else ("rpc.service", rpc_callee)
        if not callee:
            continue
        durations, errors = groups.setdefault(
            (source or _strip(service), str(callee), via, service), ([], [])
        )
        durations.append(duration)
        errors.append(error)
    edges = []
    for (caller, callee, via, caller_service), (durations, errors) in sorted(groups.items()):
        durations.sort()
        edges.append(
            Edge(
                caller=caller,
                callee=callee,
                via=via,
                caller_service=caller_service,
                requests=len(durations),
                errors=sum(errors),
                p50_ms=percentile(durations, 0.50) / 1e6,
                p99_ms=percentile(durations, 0.99) / 1e6,
                window_s=window_s,
            )
        )
    return ServiceMap(tuple(edges), window_s, truncated)
