"""The balancer port and the per-endpoint load statistics it reads.

A balancer only chooses among candidates it is handed; the cluster decides
which endpoints are candidates (resolved, not excluded, breaker not OPEN), so
policies stay small and are tested with fakes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

__all__ = ["Balancer", "HasLoad", "LoadStats"]


class LoadStats:
    """In-flight count and peak-sensitive EWMA of latency for one endpoint.

    Peak EWMA (as Linkerd's balancer uses): a slower-than-average response is
    adopted at once, faster ones decay the average over ``tau`` seconds, so a
    struggling endpoint loses traffic quickly and wins it back gradually.
    """

    __slots__ = ("_clock", "_stamp", "_tau", "ewma", "in_flight")

    def __init__(
        self, *, tau: float = 10.0, initial: float = 0.005, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.in_flight = 0
        self.ewma = initial
        self._tau = tau
        self._clock = clock
        self._stamp = clock()

    def observe(self, latency_s: float) -> None:
        now = self._clock()
        if latency_s > self.ewma:
            self.ewma = latency_s
        else:
            w = math.exp(-(now - self._stamp) / self._tau)
            self.ewma = self.ewma * w + latency_s * (1.0 - w)
        self._stamp = now

    @property
    def cost(self) -> float:
        """Expected wait of one more request: EWMA latency x (in-flight + 1).

        The average decays while an endpoint is idle (as if observing 0 ms), so
        an endpoint that lost the comparison once is tried again later instead
        of being starved by a stale estimate.
        """
        idle = self._clock() - self._stamp
        ewma = self.ewma * math.exp(-idle / self._tau) if idle > 0 else self.ewma
        return ewma * (self.in_flight + 1)


class HasLoad(Protocol):
    @property
    def load(self) -> LoadStats: ...


T = TypeVar("T", bound=HasLoad)


class Balancer(Protocol):
    """Chooses one of ``candidates`` (never empty)."""

    name: str

    def pick(self, candidates: Sequence[T]) -> T: ...
