"""Prometheus metrics of the gateway, on a private registry served at ``/metrics``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

__all__ = ["GatewayMetrics"]


class GatewayMetrics:
    """Requests by route and HTTP status, latency by route, cache results."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "grpcmesh_gateway_requests",
            "HTTP requests answered, by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "grpcmesh_gateway_request_seconds", "Time to answer, by route", ["route"], registry=self.registry
        )
        self.cache = Counter(
            "grpcmesh_gateway_cache", "Cache lookups by result", ["result"], registry=self.registry
        )

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
