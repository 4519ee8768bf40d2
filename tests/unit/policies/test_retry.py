"""Retry budget and retry decisions, with a fake clock."""

from __future__ import annotations

import grpc
import pytest

from grpcmesh.sdk.retry import NOT_REACHED, RetryBudget, RetryConfig, RetryPolicy, never_reached
from tests.unit.policies.fakes import FakeClock


def err(
    code: grpc.StatusCode, details: str = "", trailers: tuple[tuple[str, str], ...] = ()
) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailers), details, None)


def test_budget_is_ratio_of_requests_plus_floor() -> None:
    clock = FakeClock()
    budget = RetryBudget(
        RetryConfig(budget_ratio=0.2, budget_min_per_s=0.5, budget_window_s=10.0), clock=clock
    )
    for _ in range(100):
        budget.record_request()
    allowed = 0
    while budget.try_acquire():
        allowed += 1
    assert allowed == 25  # 20% of 100 + 0.5/s x 10 s
    assert budget.denied == 1


def test_budget_refills_as_the_window_slides() -> None:
    clock = FakeClock()
    budget = RetryBudget(
        RetryConfig(budget_ratio=0.2, budget_min_per_s=0.0, budget_window_s=10.0), clock=clock
    )
    for _ in range(10):
        budget.record_request()
    assert budget.try_acquire()
    assert budget.try_acquire()
    assert not budget.try_acquire()
    clock.advance(11.0)
    for _ in range(5):
        budget.record_request()
    assert budget.try_acquire()
    assert budget.retries_total == 3


def test_idempotent_methods_retry_configured_codes() -> None:
    policy = RetryPolicy(RetryConfig())
    assert policy.retryable(err(grpc.StatusCode.UNAVAILABLE, "Socket closed"), idempotent=True)
    assert policy.retryable(err(grpc.StatusCode.INTERNAL), idempotent=True)
    assert not policy.retryable(err(grpc.StatusCode.INVALID_ARGUMENT), idempotent=True)
    assert not policy.retryable(err(grpc.StatusCode.DEADLINE_EXCEEDED), idempotent=True)


def test_non_idempotent_only_when_never_reached() -> None:
    policy = RetryPolicy(RetryConfig())
    assert not policy.retryable(err(grpc.StatusCode.UNAVAILABLE, "Socket closed"), idempotent=False)
    assert not policy.retryable(err(grpc.StatusCode.INTERNAL), idempotent=False)
    assert policy.retryable(
        err(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses"), idempotent=False
    )
    assert policy.retryable(err(grpc.StatusCode.UNAVAILABLE, "x", ((NOT_REACHED, "1"),)), idempotent=False)


def test_never_reached_only_for_unavailable() -> None:
    assert not never_reached(err(grpc.StatusCode.INTERNAL, "failed to connect"))
    assert never_reached(err(grpc.StatusCode.UNAVAILABLE, "Connection refused"))


class Refusing:
    """An attempt that always fails with a never-reached UNAVAILABLE, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        raise err(grpc.StatusCode.UNAVAILABLE, f"refused {self.calls}")


async def test_run_retries_until_success_within_attempts() -> None:
    policy = RetryPolicy(RetryConfig(max_attempts=3, backoff_base_s=0.0, backoff_max_s=0.0))
    outcomes = [
        err(grpc.StatusCode.UNAVAILABLE, "failed to connect"),
        err(grpc.StatusCode.UNAVAILABLE, "refused"),
        "ok",
    ]
    calls = 0

    async def attempt() -> str:
        nonlocal calls
        calls += 1
        out = outcomes.pop(0)
        if isinstance(out, Exception):
            raise out
        return out

    assert await policy.run(attempt, idempotent=True, deadline=None) == "ok"
    assert calls == 3
    assert policy.budget.retries_total == 2


async def test_run_stops_at_max_attempts_and_reraises_last() -> None:
    policy = RetryPolicy(RetryConfig(max_attempts=2, backoff_base_s=0.0, backoff_max_s=0.0))
    attempt = Refusing()
    with pytest.raises(grpc.aio.AioRpcError, match="refused 2"):
        await policy.run(attempt, idempotent=True, deadline=None)
    assert attempt.calls == 2


async def test_run_does_not_retry_past_the_deadline() -> None:
    clock = FakeClock()
    policy = RetryPolicy(RetryConfig(max_attempts=5, backoff_base_s=1.0, backoff_max_s=1.0))
    attempt = Refusing()
    with pytest.raises(grpc.aio.AioRpcError):
        await policy.run(attempt, idempotent=True, deadline=clock.now, clock=clock)
    assert attempt.calls == 1  # no time left for another attempt


async def test_run_respects_the_budget() -> None:
    policy = RetryPolicy(
        RetryConfig(max_attempts=3, budget_ratio=0.0, budget_min_per_s=0.0, backoff_base_s=0.0)
    )
    calls = 0

    async def attempt() -> str:
        nonlocal calls
        calls += 1
        raise err(grpc.StatusCode.UNAVAILABLE, "refused")

    with pytest.raises(grpc.aio.AioRpcError):
        await policy.run(attempt, idempotent=True, deadline=None)
    assert calls == 1
    assert policy.budget.denied == 1
