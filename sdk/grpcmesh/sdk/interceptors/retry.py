"""Client retry interceptor: tenacity backoff, idempotent methods only, within a budget.

Off by default when calls go through a sidecar (the sidecar already retries on
another endpoint; retrying at both layers multiplies load during an outage).
Only methods known to be idempotent are retried — declared in the proto
(``option idempotency_level``) or listed in :attr:`RetryPolicy.idempotent` —
and only while the retry budget allows: retries may add at most ``budget_ratio``
of the recent request volume (plus a small floor), which keeps a struggling
upstream from being hammered by its own clients.
"""

from __future__ import annotations

import collections
import fnmatch
import time
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, stop_any
from tenacity.stop import stop_base
from tenacity.wait import wait_exponential_jitter

from grpcmesh.sdk.interceptors.base import method_of, replace_details

__all__ = ["RetryBudget", "RetryInterceptor", "RetryPolicy", "declared_idempotent"]

_IDEMPOTENT_LEVELS = {
    descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS,
    descriptor_pb2.MethodOptions.IDEMPOTENT,
}


def declared_idempotent(method: str) -> bool:
    """Whether the proto of ``/pkg.Service/Method`` declares it idempotent (if it is loaded)."""
    service, _, name = method.lstrip("/").partition("/")
    try:
        svc = descriptor_pool.Default().FindServiceByName(service)
    except KeyError:
        return False
    found = svc.methods_by_name.get(name)
    return found is not None and found.GetOptions().idempotency_level in _IDEMPOTENT_LEVELS


@dataclass(frozen=True)
class RetryPolicy:
    """Which calls retry, how often and how fast."""

    max_attempts: int = 3
    initial_backoff: float = 0.025
    max_backoff: float = 1.0
    codes: frozenset[grpc.StatusCode] = frozenset({grpc.StatusCode.UNAVAILABLE})
    idempotent: tuple[str, ...] = ()
    """fnmatch patterns of full method paths, e.g. ``/shop.v1.Orders/Get*``."""
    budget_ratio: float = 0.2
    budget_min_per_second: float = 10.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"RetryPolicy.max_attempts must be >= 1, got {self.max_attempts}")
        if not 0 <= self.budget_ratio <= 1:
            raise ValueError(f"RetryPolicy.budget_ratio must be within [0, 1], got {self.budget_ratio}")

    def is_idempotent(self, method: str) -> bool:
        """Declared idempotent in its proto, or matched by :attr:`idempotent`."""
        return any(fnmatch.fnmatchcase(method, p) for p in self.idempotent) or declared_idempotent(method)


@dataclass
class RetryBudget:
    """Retries allowed: ``ratio`` times the requests in the last ``window`` seconds, plus a floor."""

    ratio: float = 0.2
    min_per_second: float = 10.0
    window: float = 10.0
    _requests: collections.deque[float] = field(default_factory=collections.deque, repr=False)
    _retries: collections.deque[float] = field(default_factory=collections.deque, repr=False)

    def _trim(self, now: float) -> None:
        for q in (self._requests, self._retries):
            while q and q[0] < now - self.window:
                q.popleft()

    def record_request(self) -> None:
        """Counts one original (non-retry) request."""
        self._requests.append(time.monotonic())

    def try_withdraw(self) -> bool:
        """Takes one retry from the budget; ``False`` when it is spent."""
        now = time.monotonic()
        self._trim(now)
        allowed = self.min_per_second * self.window + self.ratio * len(self._requests)
        if len(self._retries) >= allowed:
            return False
        self._retries.append(now)
        return True


class _StopAt(stop_base):
    """Stops retrying once the call's deadline has passed."""

    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline


class _Retryable(Exception):
    def __init__(self, call: Any) -> None:
        super().__init__("retryable status")
        self.call = call


class RetryInterceptor(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    """Retries failed unary calls of idempotent methods with jittered backoff."""

    def __init__(self, policy: RetryPolicy = RetryPolicy(), budget: RetryBudget | None = None) -> None:
        self.policy = policy
        self.budget = budget or RetryBudget(policy.budget_ratio, policy.budget_min_per_second)

    def _should_retry(self, exc: BaseException) -> bool:
        return isinstance(exc, _Retryable) and self.budget.try_withdraw()

    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        """Runs the call; on a retryable status of an idempotent method, tries again."""
        details: grpc.aio.ClientCallDetails = client_call_details
        self.budget.record_request()
        if not self.policy.is_idempotent(method_of(details)):
            return await continuation(details, request)
        deadline = None if details.timeout is None else time.monotonic() + details.timeout

        retrying = AsyncRetrying(
            stop=stop_any(stop_after_attempt(self.policy.max_attempts), _StopAt(deadline)),
            wait=wait_exponential_jitter(initial=self.policy.initial_backoff, max=self.policy.max_backoff),
            retry=retry_if_exception(self._should_retry),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
                    call = await continuation(replace_details(details, timeout=left), request)
                    if await call.code() in self.policy.codes:
                        raise _Retryable(call)
                    return call
        except _Retryable as last:
            return last.call
        raise AssertionError("unreachable: tenacity either returns or re-raises")  # pragma: no cover
