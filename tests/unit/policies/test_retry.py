"""Retry budget and retry decisions, with a fake clock."""

from __future__ import annotations

import json

import grpc
import pytest

from grpcmesh.sdk.failures import PUSHBACK, Kind, classify_error
from grpcmesh.sdk.retry import NOT_REACHED, Retries, RetryBudget, RetryConfig, RetryPolicy, never_reached
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


def retries(config: RetryConfig | None = None, *, idempotent: bool = True, **kw: object) -> Retries:
    policy = RetryPolicy(config or RetryConfig())
    r = policy.start("/echo.v1.Echo/Unary", idempotent=idempotent, deadline=None, **kw)  # type: ignore[arg-type]
    r.attempts = 1
    return r


def decide(r: Retries, e: grpc.aio.AioRpcError) -> float | None:
    kind, pushback = classify_error(e)
    return r.delay(kind, e.code(), pushback)


def test_by_default_only_unavailable_is_retried_for_idempotent_methods() -> None:
    assert decide(retries(), err(grpc.StatusCode.UNAVAILABLE, "Socket closed")) is not None
    for code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.INVALID_ARGUMENT):
        assert decide(retries(), err(code)) is None, code
    assert decide(retries(), err(grpc.StatusCode.DEADLINE_EXCEEDED)) is None


def test_internal_and_unknown_only_when_configured() -> None:
    config = RetryConfig(retry_codes=frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL}))
    assert decide(retries(config), err(grpc.StatusCode.INTERNAL)) is not None
    assert decide(retries(config), err(grpc.StatusCode.UNKNOWN)) is None


def test_non_idempotent_only_when_never_reached() -> None:
    assert decide(retries(idempotent=False), err(grpc.StatusCode.UNAVAILABLE, "Socket closed")) is None
    assert decide(retries(idempotent=False), err(grpc.StatusCode.INTERNAL)) is None
    reached_not = err(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses")
    assert decide(retries(idempotent=False), reached_not) is not None
    marked = err(grpc.StatusCode.UNAVAILABLE, "x", ((NOT_REACHED, "1"),))
    assert decide(retries(idempotent=False), marked) is not None


def test_never_reached_only_for_unavailable() -> None:
    assert not never_reached(err(grpc.StatusCode.INTERNAL, "failed to connect"))
    assert never_reached(err(grpc.StatusCode.UNAVAILABLE, "Connection refused"))


def test_pushback_value_replaces_backoff_and_negative_or_malformed_stops() -> None:
    config = RetryConfig(max_attempts=5, backoff_base_s=0.0, backoff_max_s=0.0)
    assert decide(retries(config), err(grpc.StatusCode.UNAVAILABLE, "x", ((PUSHBACK, "200"),))) == 0.2
    for bad in ("-1", "soon", "", "1.5"):
        assert decide(retries(config), err(grpc.StatusCode.UNAVAILABLE, "x", ((PUSHBACK, bad),))) is None, bad


def test_stops_at_max_attempts() -> None:
    r = retries(RetryConfig(max_attempts=2))
    assert decide(r, err(grpc.StatusCode.UNAVAILABLE)) is not None
    r.attempts = 2
    assert decide(r, err(grpc.StatusCode.UNAVAILABLE)) is None


def test_does_not_retry_past_the_deadline() -> None:
    clock = FakeClock()
    policy = RetryPolicy(RetryConfig(max_attempts=5, backoff_base_s=1.0, backoff_max_s=1.0))
    r = policy.start("/s/M", idempotent=True, deadline=clock.now, clock=clock)
    r.attempts = 1
    assert decide(r, err(grpc.StatusCode.UNAVAILABLE)) is None


def test_respects_the_budget() -> None:
    r = retries(RetryConfig(max_attempts=3, budget_ratio=0.0, budget_min_per_s=0.0))
    assert decide(r, err(grpc.StatusCode.UNAVAILABLE)) is None
    assert r.policy.budget.denied == 1


def test_service_config_retry_policy_is_honoured_per_method() -> None:
    doc = {
        "methodConfig": [
            {
                "name": [{"service": "echo.v1.Echo", "method": "Create"}],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.01s",
                    "maxBackoff": "0.02s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["INTERNAL", 2],
                },
            }
        ]
    }
    policy = RetryPolicy(RetryConfig(service_config=json.dumps(doc)))
    create = policy.start("/echo.v1.Echo/Create", idempotent=False, deadline=None)
    create.attempts = 3
    assert (
        create.delay(Kind.APPLICATION, grpc.StatusCode.UNKNOWN) is not None
    )  # named: idempotency not needed
    create.attempts = 4
    assert create.delay(Kind.APPLICATION, grpc.StatusCode.INTERNAL) is None  # maxAttempts reached
    other = policy.start("/echo.v1.Echo/Unary", idempotent=True, deadline=None)
    other.attempts = 1
    assert other.delay(Kind.APPLICATION, grpc.StatusCode.INTERNAL) is None  # the default rules


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"maxAttempts": 1}, "maxAttempts"),
        ({"initialBackoff": "0s"}, "initialBackoff"),
        ({"maxBackoff": "fast"}, "maxBackoff"),
        ({"backoffMultiplier": 0}, "backoffMultiplier"),
        ({"retryableStatusCodes": ["NOPE"]}, "retryableStatusCodes"),
    ],
)
def test_service_config_errors_name_the_field(policy: dict[str, object], message: str) -> None:
    base: dict[str, object] = {
        "maxAttempts": 3,
        "initialBackoff": "0.1s",
        "maxBackoff": "1s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }
    doc = {"methodConfig": [{"name": [{"service": "s"}], "retryPolicy": {**base, **policy}}]}
    with pytest.raises(ValueError, match=message):
        RetryConfig(service_config=json.dumps(doc))
