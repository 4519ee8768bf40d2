"""merge.py: what the admin of a multi-worker sidecar shows, from its workers' scrapes."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from grpcmesh.sidecar.merge import merge_clusters, merge_metrics, sum_counts


def scrape(calls: int, in_flight: int, breaker: int) -> str:
    reg = CollectorRegistry()
    Counter("grpcmesh_requests", "calls", ["code"], registry=reg).labels("OK").inc(calls)
    hist = Histogram("grpcmesh_request_duration_seconds", "latency", registry=reg, buckets=(0.1, 1.0))
    for _ in range(calls):
        hist.observe(0.05)
    Gauge("grpcmesh_in_flight", "in flight", ["direction"], registry=reg).labels("outbound").set(in_flight)
    Gauge("grpcmesh_breaker_state", "state", ["endpoint"], registry=reg).labels("a:1").set(breaker)
    return generate_latest(reg).decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def test_counters_histograms_and_amounts_are_summed_states_are_labelled() -> None:
    merged = samples(merge_metrics([scrape(3, 1, 0), scrape(4, 2, 2)]))
    assert merged[("grpcmesh_requests_total", (("code", "OK"),))] == 7
    assert merged[("grpcmesh_request_duration_seconds_count", ())] == 7
    assert merged[("grpcmesh_request_duration_seconds_bucket", (("le", "0.1"),))] == 7
    assert merged[("grpcmesh_in_flight", (("direction", "outbound"),))] == 3
    assert merged[("grpcmesh_breaker_state", (("endpoint", "a:1"), ("worker", "0")))] == 0
    assert merged[("grpcmesh_breaker_state", (("endpoint", "a:1"), ("worker", "1")))] == 2
    assert not any(labels == (("endpoint", "a:1"),) for _, labels in merged)


def test_created_is_the_earliest_and_types_survive() -> None:
    text = merge_metrics([scrape(1, 0, 0), scrape(1, 0, 0)])
    assert "# TYPE grpcmesh_requests_total counter" in text
    assert "# TYPE grpcmesh_request_duration_seconds histogram" in text
    created = [v for (name, _), v in samples(text).items() if name == "grpcmesh_requests_created"]
    assert len(created) == 1
    assert created[0] > 0  # a timestamp, not the sum of two


def test_label_values_are_escaped() -> None:
    reg = CollectorRegistry()
    Gauge("g", "h", ["m"], registry=reg).labels('a"b\\c\nd').set(1)
    merged = samples(merge_metrics([generate_latest(reg).decode()]))
    assert merged[("g", (("m", 'a"b\\c\nd'), ("worker", "0")))] == 1


def test_no_scrape_no_text() -> None:
    assert merge_metrics([]) == ""


def test_sum_counts_sums_numbers_and_keeps_the_rest() -> None:
    got = sum_counts([{"a": {"n": 1, "ok": True}, "s": "x"}, {"a": {"n": 2, "ok": False, "m": 5}, "s": "y"}])
    assert got == {"a": {"n": 3, "ok": True, "m": 5}, "s": "x"}


def test_merge_clusters_totals_and_per_worker() -> None:
    snap = {
        "service": "s",
        "ready": True,
        "routes": {},
        "outbound": [{"service": "echo", "requests_total": 2}],
        "inbound": {"in_flight": 1, "rejected": 0},
        "http2": {"outbound_listener": {"connections": 3}},
    }
    merged = merge_clusters([snap, {**snap, "ready": False}], [10, 11])
    assert merged["ready"] is False
    assert merged["totals"]["outbound_requests"] == {"echo": 4}
    assert merged["totals"]["inbound_in_flight"] == 2
    assert merged["totals"]["http2"] == {"outbound_listener": {"connections": 6}}
    assert [(w["worker"], w["pid"]) for w in merged["per_worker"]] == [(0, 10), (1, 11)]
