"""Which endpoint an attempt goes to: ejection cap, panic mode, then the balancer.

Kept apart from :mod:`grpcmesh.sdk.cluster` (which owns endpoints and their
lifecycle) so the rules that keep policies from switching a service off are
in one small place, Envoy's outlier-detection semantics:

- at most ``max_ejection_percent`` of the endpoints are ejected (breaker OPEN)
  at once, and always at least one may be;
- when fewer than ``panic_threshold_percent`` are healthy, ejections are
  ignored and the balancer chooses among every endpoint (0 turns this off);
- a lone endpoint is never cut off while panic mode is on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from typing import Any

from grpcmesh.sdk.balance import make_balancer
from grpcmesh.sdk.breaker import BreakerConfig, BreakerState
from grpcmesh.sdk.discovery import Endpoint
from grpcmesh.sdk.endpoint_state import EndpointState

__all__ = ["Picker"]

NoEndpoint = Callable[[str], Exception]


class Picker:
    """Chooses endpoints for a cluster, honouring breakers within the ejection cap and panic mode."""

    __slots__ = ("_balancer", "_config", "_panic", "panics")

    def __init__(self, balancer: str, config: BreakerConfig) -> None:
        self._balancer = make_balancer(balancer)
        self._config = config
        self._panic = config.panic_threshold_percent / 100.0
        self.panics = 0  # picks made in panic mode

    @property
    def balancer(self) -> str:
        return self._balancer.name

    def may_eject(self, states: Sequence[EndpointState]) -> bool:
        """Whether one more endpoint may be ejected (``max_ejection_percent``, at least one)."""
        cap = max(1, math.floor(len(states) * self._config.max_ejection_percent / 100.0))
        return sum(1 for s in states if s.breaker.state is BreakerState.OPEN) < cap

    def panicking(self, states: Sequence[EndpointState]) -> bool:
        healthy = sum(1 for s in states if not s.breaker.ejected())
        return bool(states) and healthy < self._panic * len(states)

    def pick(
        self, states: Sequence[EndpointState], exclude: Collection[Endpoint], none: NoEndpoint
    ) -> EndpointState:
        """An endpoint, not in ``exclude`` when possible; raises ``none(reason)`` if none can be tried."""
        if len(states) == 1:
            only = states[0]
            if not only.breaker.acquire() and self._panic <= 0.0:
                raise none("breaker open for every endpoint")
            return only
        if self.panicking(states):  # too few healthy: balance over every endpoint
            self.panics += 1
            return self._balancer.pick([s for s in states if s.endpoint not in exclude] or states)
        available = [s for s in states if s.breaker.available()]
        candidates = [s for s in available if s.endpoint not in exclude] or available
        if not candidates:
            raise none("breaker open for every endpoint")
        state = self._balancer.pick(candidates)
        state.breaker.acquire()
        return state

    def settings(self) -> dict[str, Any]:
        """The ejection rules in force (shown in /clusters so operators see the defaults)."""
        b = self._config
        return {
            "consecutive_failures": b.consecutive_failures,
            "failure_rate": b.failure_rate,
            "min_requests": b.min_requests,
            "cool_down_s": b.cool_down_s,
            "max_ejection_percent": b.max_ejection_percent,
            "panic_threshold_percent": b.panic_threshold_percent,
            "app_failure_codes": sorted(c.name for c in b.app_failure_codes),
            "counted": "connect failure, reset, GOAWAY, not reached, timeout, UNAVAILABLE",
        }
