"""One endpoint as a cluster tracks it: channels, breaker, load statistics.

The unit the balancer chooses among and the admin page reports; kept apart
from :mod:`grpcmesh.sdk.cluster` so that module stays about picking and calling.
"""

from __future__ import annotations

from typing import Any

import grpc

from grpcmesh.sdk.balance import LoadStats
from grpcmesh.sdk.breaker import Breaker, BreakerState
from grpcmesh.sdk.discovery import Endpoint

__all__ = ["EndpointState"]


class EndpointState:
    """An endpoint with its channels, breaker and load statistics."""

    __slots__ = ("_next", "breaker", "channels", "draining", "endpoint", "load")

    def __init__(
        self, endpoint: Endpoint, channels: list[grpc.aio.Channel], breaker: Breaker, load: LoadStats
    ):
        self.endpoint = endpoint
        self.channels = channels
        self.breaker = breaker
        self.load = load
        self.draining = False
        self._next = 0

    def channel(self) -> grpc.aio.Channel:
        if len(self.channels) == 1:
            return self.channels[0]
        self._next = (self._next + 1) % len(self.channels)
        return self.channels[self._next]

    def snapshot(self) -> dict[str, Any]:
        return {
            "target": self.endpoint.target,
            "id": self.endpoint.id,
            "meta": dict(self.endpoint.meta),
            "tags": list(self.endpoint.tags),
            "breaker": self.breaker.snapshot(),
            "healthy": self.breaker.state is not BreakerState.OPEN and not self.draining,
            "ewma_ms": round(self.load.ewma * 1000.0, 3),
            "in_flight": self.load.in_flight,
        }
