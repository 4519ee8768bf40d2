"""Scrape-time metrics from cluster state: endpoints, breaker states, retries, in-flight.

Why a module of its own: it subclasses prometheus_client's ``Collector``, and
the per-call modules next to it are compiled by mypyc, which needs every base
class's type; this one runs once per scrape and stays interpreted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from grpcmesh.sdk.cluster import Cluster

__all__ = ["ClusterCollector"]


class ClusterCollector(Collector):
    """Scrape-time metrics from cluster state: endpoints, breaker states, retries, in-flight."""

    def __init__(self, clusters: Callable[[], Iterable[Cluster]], inflight: Callable[[], dict[str, int]]):
        self._clusters = clusters
        self._inflight = inflight

    def collect(self) -> Iterable[Any]:
        endpoints = GaugeMetricFamily(
            "grpcmesh_endpoints", "Resolved endpoints per service.", labels=["service"]
        )
        breaker = GaugeMetricFamily(
            "grpcmesh_breaker_state",
            "Breaker state per endpoint: 0 closed, 1 half-open, 2 open.",
            labels=["service", "endpoint"],
        )
        retries = CounterMetricFamily("grpcmesh_retries", "Retries sent per service.", labels=["service"])
        denied = CounterMetricFamily(
            "grpcmesh_retry_budget_denied", "Retries refused by the retry budget.", labels=["service"]
        )
        for cluster in self._clusters():
            states = cluster.endpoints
            endpoints.add_metric([cluster.service], len(states))
            for s in states:
                breaker.add_metric([cluster.service, s.endpoint.target], int(s.breaker.state))
            retries.add_metric([cluster.service], cluster.retry.budget.retries_total)
            denied.add_metric([cluster.service], cluster.retry.budget.denied)
        inflight = GaugeMetricFamily(
            "grpcmesh_in_flight", "Calls in flight per listener.", labels=["direction"]
        )
        for direction, n in self._inflight().items():
            inflight.add_metric([direction], n)
        yield from (endpoints, breaker, retries, denied, inflight)
