"""Retry rules as gRPC defines them, and the retry budget that keeps retries from piling on.

What may be retried (gRFC A6 and gRPC's transparent retry):
- a request that provably never reached an app (connect failure, refused
  stream, the remote sidecar could not reach its app): any method;
- a status in ``retry_codes`` (default UNAVAILABLE only) for methods that are
  idempotent or free of side effects (proto ``idempotency_level`` or config),
  or for any method a gRPC service config's ``retryPolicy`` names; INTERNAL /
  UNKNOWN are an app's answers and are retried only where config says so;
- never after the server's pushback (``grpc-retry-pushback-ms``) says stop;
  a pushback value replaces the backoff before the next attempt.

How: exponential backoff with full jitter (or the pushback), never past the
caller's deadline, and only while the :class:`RetryBudget` allows: retries
stay below ``ratio`` of requests over a sliding window plus a small floor per
second (the Envoy / Linkerd budget model), so a failing service sees at most
~1.2x its normal load instead of ``max_attempts``x. :class:`Retries` holds
one call's decisions; :mod:`grpcmesh.sdk.attempts` adds the endpoints.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from grpcmesh.sdk.failures import NOT_REACHED, Kind, never_reached
from grpcmesh.sdk.service_config import MethodRetry, parse_service_config
from grpcmesh.sdk.window import SlidingCounter

__all__ = [
    "DEFAULT_RETRY_CODES",
    "NOT_REACHED",
    "Retries",
    "RetryBudget",
    "RetryConfig",
    "RetryPolicy",
    "never_reached",
    "rpc_error",
]

DEFAULT_RETRY_CODES: frozenset[grpc.StatusCode] = frozenset({grpc.StatusCode.UNAVAILABLE})


@dataclass(frozen=True)
class RetryConfig:
    max_attempts: int = 3
    retry_codes: frozenset[grpc.StatusCode] = DEFAULT_RETRY_CODES
    backoff_base_s: float = 0.025
    backoff_max_s: float = 0.25
    backoff_multiplier: float = 2.0
    budget_ratio: float = 0.2
    budget_min_per_s: float = 5.0
    budget_window_s: float = 10.0
    stream_replay_bytes: int = 1 << 20
    service_config: str = ""  # JSON of a gRPC service config: methodConfig[].retryPolicy is honoured

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("retry.max_attempts must be >= 1")
        if self.backoff_base_s < 0 or self.backoff_max_s < self.backoff_base_s:
            raise ValueError("retry.backoff_max_s must be >= retry.backoff_base_s >= 0")
        if self.backoff_multiplier <= 0:
            raise ValueError("retry.backoff_multiplier must be > 0")
        if self.budget_ratio < 0 or self.budget_min_per_s < 0 or self.budget_window_s <= 0:
            raise ValueError("retry.budget_ratio / budget_min_per_s must be >= 0, budget_window_s > 0")
        _method_table(self.service_config)  # validates now, at the edge

    def default_rules(self) -> MethodRetry:
        return MethodRetry(
            self.max_attempts,
            self.backoff_base_s,
            self.backoff_max_s,
            self.backoff_multiplier,
            self.retry_codes,
        )


@functools.lru_cache(maxsize=64)
def _method_table(text: str) -> dict[str, MethodRetry]:
    return parse_service_config(text)


_REQUESTS, _RETRIES = 0, 1


class RetryBudget:
    """Sliding-window budget: retries <= ratio x requests + floor x window."""

    __slots__ = ("_floor", "_window", "denied", "ratio", "retries_total")

    def __init__(self, config: RetryConfig = RetryConfig(), *, clock: Callable[[], float] = time.monotonic):
        self.ratio = config.budget_ratio
        self._floor = config.budget_min_per_s * config.budget_window_s
        self._window = SlidingCounter(config.budget_window_s, 2, clock=clock)
        self.denied = 0
        self.retries_total = 0

    def record_request(self) -> None:
        """Counts one original (non-retry) request."""
        self._window.add(_REQUESTS)

    def window(self) -> tuple[int, int]:
        """(requests, retries) in the window."""
        requests, retries = self._window.totals()
        return requests, retries

    def try_acquire(self) -> bool:
        """Takes one retry from the budget; False (and counted as denied) when empty."""
        requests, retries = self.window()
        if retries + 1 > self.ratio * requests + self._floor:
            self.denied += 1
            return False
        self._window.add(_RETRIES)
        self.retries_total += 1
        return True


def rpc_error(
    code: grpc.StatusCode, details: str, trailers: Any = None, initial: Any = None
) -> grpc.aio.AioRpcError:
    """An ``AioRpcError`` made locally (fail-fast, deadline, replayed stream status)."""
    return grpc.aio.AioRpcError(
        code, initial or grpc.aio.Metadata(), trailers or grpc.aio.Metadata(), details, None
    )


class RetryPolicy:
    """A service's retry rules per method, and the budget its calls share."""

    def __init__(self, config: RetryConfig = RetryConfig(), budget: RetryBudget | None = None) -> None:
        self.config = config
        self.budget = budget or RetryBudget(config)
        self._default = config.default_rules()
        self._table = _method_table(config.service_config)
        self._rules: dict[str, MethodRetry] = {}

    def rules(self, method: str) -> MethodRetry:
        """The rules for ``/pkg.Service/Method``: its service-config entry, its service's, or the default."""
        if not self._table:
            return self._default
        found = self._rules.get(method)
        if found is None:
            table = self._table
            service = method[: method.rfind("/") + 1]
            found = table.get(method) or table.get(service) or table.get("") or self._default
            if len(self._rules) < 10_000:
                self._rules[method] = found
        return found

    def start(
        self,
        method: str,
        *,
        idempotent: bool,
        deadline: float | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> Retries:
        """The retry state of one new call (counted as a request in the budget)."""
        self.budget.record_request()
        return Retries(self, self.rules(method), idempotent, deadline, clock)

    def snapshot(self) -> dict[str, Any]:
        requests, retries = self.budget.window()
        return {
            "window_requests": requests,
            "window_retries": retries,
            "retries_total": self.budget.retries_total,
            "budget_denied": self.budget.denied,
            "retry_codes": sorted(c.name for c in self.config.retry_codes),
            "max_attempts": self.config.max_attempts,
            "service_config_methods": sorted(self._table),
        }


class Retries:
    """One call's retry decisions: attempts so far, backoff or pushback, budget, deadline."""

    __slots__ = ("_backoffs", "attempts", "clock", "deadline", "idempotent", "policy", "rules")

    def __init__(
        self,
        policy: RetryPolicy,
        rules: MethodRetry,
        idempotent: bool,
        deadline: float | None,
        clock: Callable[[], float],
    ) -> None:
        self.policy = policy
        self.rules = rules
        self.idempotent = idempotent
        self.deadline = deadline
        self.clock = clock
        self.attempts = 0
        self._backoffs = 0  # retries since the last pushback (gRFC A6 resets the backoff on one)

    def retryable(self, kind: Kind, code: grpc.StatusCode) -> bool:
        """Whether this outcome may be retried at all (attempts, budget and deadline aside)."""
        if kind is Kind.NOT_REACHED:
            return True
        if kind is not Kind.ENDPOINT and kind is not Kind.APPLICATION:
            return False
        return (self.idempotent or self.rules.explicit) and code in self.rules.codes

    def delay(self, kind: Kind, code: grpc.StatusCode, pushback: float | None = None) -> float | None:
        """Seconds to wait before the next attempt, or None: the outcome is final.

        Takes a retry from the budget when it says yes.
        """
        if not self.retryable(kind, code) or self.attempts >= self.rules.max_attempts:
            return None
        if pushback is not None:
            if pushback < 0:
                return None
            wait = pushback
            self._backoffs = 0
        else:
            self._backoffs += 1
            wait = self.rules.backoff(self._backoffs)
        if self.deadline is not None and self.clock() + wait >= self.deadline:
            return None
        if not self.policy.budget.try_acquire():
            return None
        return wait
