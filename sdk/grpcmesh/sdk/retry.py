"""Retry policy (on tenacity) and the retry budget that keeps retries from piling on.

What may be retried:
- UNAVAILABLE when the request provably never reached the app (connect
  failure, breaker open, the remote sidecar could not reach its app): safe for
  any method;
- the configured codes, only for methods that are idempotent or free of side
  effects (proto ``idempotency_level`` or config).

How: on another endpoint when possible, exponential backoff with full jitter,
never past the caller's deadline, and only while the :class:`RetryBudget`
allows: retries stay below ``ratio`` of requests over a sliding window, plus a
small floor per second (the Envoy / Linkerd retry-budget model), so a failing
service sees at most ~1.2x its normal load instead of ``max_attempts``x.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from grpcmesh.sdk.window import SlidingCounter

__all__ = [
    "DEFAULT_RETRY_CODES",
    "NOT_REACHED",
    "RetryBudget",
    "RetryConfig",
    "RetryPolicy",
    "never_reached",
    "rpc_error",
]

T = TypeVar("T")

# Trailer a sidecar adds when it could not deliver the request to its app.
NOT_REACHED = "x-mesh-not-reached"

DEFAULT_RETRY_CODES: frozenset[grpc.StatusCode] = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
    }
)

# Details fragments grpc core uses when no byte left this process for the server.
_CONNECT_FAILURES = (
    "failed to connect",
    "connection refused",
    "connections to all backends failing",
    "no healthy endpoint",
    "breaker open",
    "no endpoints",
    "dns resolution failed",
)


@dataclass(frozen=True)
class RetryConfig:
    max_attempts: int = 3
    retry_codes: frozenset[grpc.StatusCode] = DEFAULT_RETRY_CODES
    backoff_base_s: float = 0.025
    backoff_max_s: float = 0.25
    budget_ratio: float = 0.2
    budget_min_per_s: float = 5.0
    budget_window_s: float = 10.0
    stream_replay_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("retry.max_attempts must be >= 1")
        if self.backoff_base_s < 0 or self.backoff_max_s < self.backoff_base_s:
            raise ValueError("retry.backoff_max_s must be >= retry.backoff_base_s >= 0")
        if self.budget_ratio < 0 or self.budget_min_per_s < 0 or self.budget_window_s <= 0:
            raise ValueError("retry.budget_ratio / budget_min_per_s must be >= 0, budget_window_s > 0")


def never_reached(err: grpc.aio.AioRpcError) -> bool:
    """True when ``err`` shows the request was never delivered to an application."""
    if err.code() is not grpc.StatusCode.UNAVAILABLE:
        return False
    trailers: Any = err.trailing_metadata() or ()
    for item in trailers:
        if item[0] == NOT_REACHED:
            return True
    details = (err.details() or "").lower()
    return any(frag in details for frag in _CONNECT_FAILURES)


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
    """Decides whether a failed attempt may be retried and drives the retry loop."""

    def __init__(self, config: RetryConfig = RetryConfig(), budget: RetryBudget | None = None) -> None:
        self.config = config
        self.budget = budget or RetryBudget(config)

    def retryable(self, err: BaseException, idempotent: bool) -> bool:
        """Whether this error class may be retried for this method (ignores budget)."""
        if not isinstance(err, grpc.aio.AioRpcError):
            return False
        return self.retryable_code(err.code(), idempotent=idempotent, not_reached=never_reached(err))

    def retryable_code(self, code: grpc.StatusCode, *, idempotent: bool, not_reached: bool) -> bool:
        """The same rule for callers that know the status and whether the app was reached."""
        return not_reached or (idempotent and code in self.config.retry_codes)

    def give_up(self, attempts: int, upcoming_sleep: float, deadline: float | None, now: float) -> bool:
        """Stop rule: attempts used up, the backoff would pass the deadline, or no budget left."""
        if attempts >= self.config.max_attempts:
            return True
        if deadline is not None and now + upcoming_sleep >= deadline:
            return True
        return not self.budget.try_acquire()

    def backoff(self, attempts: int) -> float:
        """Full-jitter exponential backoff before attempt ``attempts + 1``."""
        high = min(self.config.backoff_max_s, self.config.backoff_base_s * 2 ** (attempts - 1))
        return random.uniform(0.0, max(high, 0.0))

    def retrying(
        self,
        *,
        idempotent: bool,
        deadline: float | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> AsyncRetrying:
        """A tenacity loop: retry predicate, jittered backoff, stop on attempts/deadline/budget."""

        def stop(state: RetryCallState) -> bool:
            return self.give_up(state.attempt_number, state.upcoming_sleep, deadline, clock())

        def predicate(err: BaseException) -> bool:
            return self.retryable(err, idempotent)

        return AsyncRetrying(
            stop=stop,
            wait=lambda s: self.backoff(s.attempt_number),
            retry=retry_if_exception(predicate),
            reraise=True,
        )

    async def run(
        self,
        attempt: Callable[[], Awaitable[T]],
        *,
        idempotent: bool,
        deadline: float | None,
        clock: Callable[[], float] = time.monotonic,
        replayable: Callable[[], bool] | None = None,
    ) -> T:
        """Runs ``attempt`` once; on a retryable error, retries through :meth:`retrying`.

        The first attempt skips tenacity entirely (the common, successful case
        pays for nothing); its failure is replayed as tenacity's attempt 1 so
        backoff, attempt counting and the budget see the whole story.
        ``replayable`` says whether the request can still be sent again (a
        streamed request whose buffer overflowed cannot).
        """
        self.budget.record_request()
        try:
            return await attempt()
        except grpc.aio.AioRpcError as err:
            if (
                self.config.max_attempts <= 1
                or not self.retryable(err, idempotent)
                or (replayable is not None and not replayable())
            ):
                raise
            first: grpc.aio.AioRpcError | None = err
        async for state in self.retrying(idempotent=idempotent, deadline=deadline, clock=clock):
            with state:
                if first is not None:
                    failed, first = first, None
                    raise failed
                if replayable is not None and not replayable():
                    raise rpc_error(
                        grpc.StatusCode.UNAVAILABLE, "request stream too large to replay for a retry"
                    )
                return await attempt()
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    def snapshot(self) -> dict[str, Any]:
        requests, retries = self.budget.window()
        return {
            "window_requests": requests,
            "window_retries": retries,
            "retries_total": self.budget.retries_total,
            "budget_denied": self.budget.denied,
        }
