"""One sidecar's view from its workers' (``--workers N``): Prometheus samples and /clusters merged.

Every worker keeps its own registry, pools and clusters; the supervisor scrapes each one's
private admin and serves the merge, so a dashboard sees one sidecar. Counters, histograms,
summaries and the additive gauges are summed sample by sample (same name, same labels); a
gauge that is a state rather than an amount (a breaker's state, resolved endpoints, a
certificate's expiry) cannot be summed, so each worker's sample is kept with a ``worker``
label. Pure functions: tested without processes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["ADDITIVE_GAUGES", "merge_clusters", "merge_metrics", "sum_counts"]

SUMMED_TYPES = frozenset({"counter", "histogram", "summary", "gaugehistogram"})
ADDITIVE_GAUGES = frozenset({"grpcmesh_in_flight"})  # amounts: the sidecar's total is the sum

Labels = tuple[tuple[str, str], ...]


def merge_metrics(texts: Sequence[str]) -> str:
    """The text exposition of all workers' scrapes (``texts[i]`` is worker ``i``'s) as one."""
    families: dict[str, tuple[str, str]] = {}  # name -> (type, help), first seen order
    samples: dict[str, dict[tuple[str, Labels], float]] = {}
    for worker, text in enumerate(texts):
        for family in text_string_to_metric_families(text):
            families.setdefault(family.name, (family.type, family.documentation))
            # ``*_created`` (a start time, its own gauge family in this format): one, the earliest
            summed = (
                family.type in SUMMED_TYPES
                or family.name in ADDITIVE_GAUGES
                or family.name.endswith("_created")
            )
            out = samples.setdefault(family.name, {})
            for sample in family.samples:
                labels = dict(sample.labels)
                if not summed:
                    labels["worker"] = str(worker)
                key = (sample.name, tuple(sorted(labels.items())))
                if sample.name.endswith("_created"):
                    out[key] = min(out.get(key, sample.value), sample.value)
                else:
                    out[key] = out.get(key, 0.0) + sample.value
    lines: list[str] = []
    for name, (kind, doc) in families.items():
        shown = f"{name}_total" if kind == "counter" else name  # as prometheus_client writes it
        lines.append(f"# HELP {shown} {_escape(doc, help_text=True)}")
        lines.append(f"# TYPE {shown} {kind}")
        for (sample_name, pairs), value in samples[name].items():
            lines.append(f"{sample_name}{_labels(pairs)} {_number(value)}")
    return "\n".join(lines) + "\n" if lines else ""


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels) + "}"


def _escape(value: str, *, help_text: bool = False) -> str:
    value = value.replace("\\", "\\\\").replace("\n", "\\n")
    return value if help_text else value.replace('"', '\\"')


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value)}.0"
    return repr(value)


def sum_counts(items: Sequence[Any]) -> Any:
    """Numbers summed through nested dicts (keys unioned); a non-number keeps the first value.

    For the counts in /clusters (connections, streams, in flight) where every worker holds
    part of the whole; booleans are not numbers here.
    """
    present = [i for i in items if i is not None]
    if not present:
        return None
    first = present[0]
    if all(isinstance(i, Mapping) for i in present):
        keys = dict.fromkeys(k for i in present for k in i)
        return {k: sum_counts([i.get(k) for i in present]) for k in keys}
    if all(isinstance(i, int | float) and not isinstance(i, bool) for i in present):
        return sum(present)
    return first


def merge_clusters(snapshots: Sequence[Mapping[str, Any]], pids: Sequence[int]) -> dict[str, Any]:
    """/clusters of the whole sidecar: totals over workers, then every worker's own snapshot."""
    requests: dict[str, int] = {}
    for snap in snapshots:
        for cluster in snap.get("outbound", []):
            name = str(cluster.get("service"))
            requests[name] = requests.get(name, 0) + int(cluster.get("requests_total", 0))
    inbound = [s.get("inbound", {}) for s in snapshots]
    first = snapshots[0] if snapshots else {}
    return {
        "service": first.get("service"),
        "ready": bool(snapshots) and all(s.get("ready") for s in snapshots),
        "workers": len(snapshots),
        "routes": first.get("routes"),
        "totals": {
            "outbound_requests": requests,
            "inbound_in_flight": sum(int(i.get("in_flight", 0)) for i in inbound),
            "inbound_rejected": sum(int(i.get("rejected", 0)) for i in inbound),
            "http2": sum_counts([s.get("http2") for s in snapshots]),
        },
        "per_worker": [
            {"worker": i, "pid": pid, **snap}
            for i, (snap, pid) in enumerate(zip(snapshots, pids, strict=True))
        ],
    }
