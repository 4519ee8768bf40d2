"""Per-endpoint circuit breaker (outlier ejection): stop sending to an instance that keeps failing.

Trips on N consecutive failures or on a failure rate over a sliding window
(only once the window holds a minimum number of requests). OPEN means ejected:
the cluster balances around it; after a cool-down, HALF_OPEN lets a bounded
number of probes through and closes again when they succeed. What counts as a
failure is decided by :mod:`grpcmesh.sdk.failures`: endpoint failures always,
an application's own answers only for the codes in ``app_failure_codes``
(none by default: an app answering UNKNOWN is a healthy app). The cluster caps
how many endpoints may be ejected at once (``max_ejection_percent``) and
ignores ejections when too few endpoints are healthy (``panic_threshold_percent``,
as Envoy does), so a breaker can slow a service down but never switch it off.

The clock is injected so the state machine is tested without sleeping.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from grpcmesh.sdk.window import SlidingCounter

__all__ = ["Breaker", "BreakerConfig", "BreakerState", "StateListener"]


class BreakerState(enum.IntEnum):
    """Numeric values are exported as the breaker-state gauge."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass(frozen=True)
class BreakerConfig:
    consecutive_failures: int = 5
    failure_rate: float = 0.5
    window_s: float = 10.0
    min_requests: int = 20
    cool_down_s: float = 5.0
    half_open_probes: int = 3
    app_failure_codes: frozenset[grpc.StatusCode] = frozenset()  # app answers that count against it
    max_ejection_percent: float = 50.0  # of a cluster's endpoints ejected at once (at least one)
    panic_threshold_percent: float = 50.0  # fewer healthy than this: balance over all endpoints

    def __post_init__(self) -> None:
        if self.consecutive_failures < 1:
            raise ValueError("breaker.consecutive_failures must be >= 1")
        if not 0.0 < self.failure_rate <= 1.0:
            raise ValueError("breaker.failure_rate must be in (0, 1]")
        if self.window_s <= 0 or self.cool_down_s < 0:
            raise ValueError("breaker.window_s must be > 0 and breaker.cool_down_s >= 0")
        if self.min_requests < 1 or self.half_open_probes < 1:
            raise ValueError("breaker.min_requests and breaker.half_open_probes must be >= 1")
        if not 0.0 <= self.max_ejection_percent <= 100.0:
            raise ValueError("breaker.max_ejection_percent must be within [0, 100]")
        if not 0.0 <= self.panic_threshold_percent <= 100.0:
            raise ValueError("breaker.panic_threshold_percent must be within [0, 100]")


# (old state, new state) → None; used for logs and metrics.
StateListener = Callable[["Breaker", BreakerState, BreakerState], None]

_REQUESTS, _FAILURES = 0, 1
_CLOSED, _HALF_OPEN, _OPEN = BreakerState.CLOSED, BreakerState.HALF_OPEN, BreakerState.OPEN  # fast lookups


class Breaker:
    """Circuit breaker state machine for one endpoint."""

    __slots__ = (
        "_allow_open",
        "_clock",
        "_consecutive",
        "_listener",
        "_opened_at",
        "_probe_successes",
        "_probes_in_flight",
        "_window",
        "config",
        "name",
        "state",
    )

    def __init__(
        self,
        config: BreakerConfig = BreakerConfig(),
        *,
        name: str = "",
        clock: Callable[[], float] = time.monotonic,
        on_change: StateListener | None = None,
        allow_open: Callable[[], bool] | None = None,
    ) -> None:
        self.config = config
        self._allow_open = allow_open  # the cluster's ejection cap
        self.name = name
        self.state = _CLOSED
        self._clock = clock
        self._listener = on_change
        self._consecutive = 0
        self._opened_at = 0.0
        self._probes_in_flight = 0
        self._probe_successes = 0
        self._window = SlidingCounter(config.window_s, 2, clock=clock)  # requests, failures

    # -- admission -----------------------------------------------------------------
    def available(self) -> bool:
        """Whether a call may be sent now (without reserving a probe slot)."""
        if self.state is _CLOSED:
            return True
        if self.state is _OPEN:
            if self._clock() - self._opened_at < self.config.cool_down_s:
                return False
            self._transition(_HALF_OPEN)
        return self._probes_in_flight < self.config.half_open_probes

    def acquire(self) -> bool:
        """Admits one call; in HALF_OPEN this takes one of the bounded probe slots."""
        if not self.available():
            return False
        if self.state is _HALF_OPEN:
            self._probes_in_flight += 1
        return True

    def ejected(self) -> bool:
        """OPEN and still cooling down (moves to HALF_OPEN once the cool-down is over)."""
        if self.state is not _OPEN:
            return False
        if self._clock() - self._opened_at < self.config.cool_down_s:
            return True
        self._transition(_HALF_OPEN)
        return False

    # -- outcomes ------------------------------------------------------------------
    def release(self) -> None:
        """An admitted call ended with an outcome that says nothing about the endpoint."""
        if self.state is _HALF_OPEN:
            self._probes_in_flight = max(0, self._probes_in_flight - 1)

    def record_outcome(self, failed: bool) -> None:
        """Records the outcome of an admitted call (``failed``: it counts against the endpoint)."""
        if self.state is _HALF_OPEN:
            self._probes_in_flight = max(0, self._probes_in_flight - 1)
            if failed:
                self._open()
            else:
                self._probe_successes += 1
                if self._probe_successes >= self.config.half_open_probes:
                    self._close()
            return
        if self.state is _OPEN:  # a call admitted before the trip finished
            return
        window = self._window
        window.add(_REQUESTS)
        if not failed:
            self._consecutive = 0
            return
        window.add(_FAILURES)
        self._consecutive += 1
        if self._consecutive >= self.config.consecutive_failures:
            self._open()
            return
        requests, failures = self.window_counts()
        if requests >= self.config.min_requests and failures >= self.config.failure_rate * requests:
            self._open()

    def window_counts(self) -> tuple[int, int]:
        """(requests, failures) over the sliding window."""
        requests, failures = self._window.totals()
        return requests, failures

    def snapshot(self) -> dict[str, object]:
        requests, failures = self.window_counts()
        return {
            "state": self.state.name,
            "consecutive_failures": self._consecutive,
            "window_requests": requests,
            "window_failures": failures,
        }

    # -- internals -----------------------------------------------------------------
    def _open(self) -> None:
        if self.state is _CLOSED and self._allow_open is not None and not self._allow_open():
            return  # the ejection cap is reached: stay in rotation
        self._opened_at = self._clock()
        self._transition(_OPEN)

    def _close(self) -> None:
        self._consecutive = 0
        self._window.reset()
        self._transition(_CLOSED)

    def _transition(self, new: BreakerState) -> None:
        old = self.state
        if old is new and new is not _OPEN:
            return
        self.state = new
        self._probes_in_flight = 0
        self._probe_successes = 0
        if self._listener is not None and old is not new:
            self._listener(self, old, new)
