"""Token buckets with an injected clock: burst, refill, Retry-After, independent keys."""

from __future__ import annotations

import pytest

from grpcmesh.services.gateway.ratelimit import Decision, Limit, MemoryLimiter, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refuse_with_time_to_next_token() -> None:
    bucket = TokenBucket(Limit(rate=2.0, burst=3), now=0.0)
    assert [bucket.take(0.0).allowed for _ in range(3)] == [True, True, True]
    refused = bucket.take(0.0)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(0.5)
    assert bucket.take(0.25).retry_after == pytest.approx(0.25)
    assert bucket.take(0.5).allowed


def test_refill_is_capped_at_burst() -> None:
    bucket = TokenBucket(Limit(rate=10.0, burst=2), now=0.0)
    bucket.take(0.0)
    bucket.take(0.0)
    assert [bucket.take(100.0).allowed for _ in range(3)] == [True, True, False]


def test_clock_going_backwards_does_not_mint_tokens() -> None:
    bucket = TokenBucket(Limit(rate=1.0, burst=1), now=10.0)
    assert bucket.take(10.0).allowed
    assert not bucket.take(5.0).allowed


@pytest.mark.parametrize(("seconds", "header"), [(0.01, "1"), (1.0, "1"), (1.2, "2"), (30.0, "30")])
def test_retry_after_header_rounds_up(seconds: float, header: str) -> None:
    assert Decision(False, seconds).retry_after_header == header


async def test_memory_limiter_keys_are_independent() -> None:
    clock = Clock()
    limiter = MemoryLimiter(clock)
    limit = Limit(rate=1.0, burst=1)
    assert (await limiter.acquire("sub:alice|Append", limit)).allowed
    assert not (await limiter.acquire("sub:alice|Append", limit)).allowed
    assert (await limiter.acquire("sub:bob|Append", limit)).allowed
    assert (await limiter.acquire("sub:alice|ReadStream", limit)).allowed
    clock.now += 1.0
    assert (await limiter.acquire("sub:alice|Append", limit)).allowed


def test_memory_limiter_bounds_its_keys() -> None:
    limiter = MemoryLimiter(Clock(), max_keys=2)
    limit = Limit(rate=1.0, burst=1)
    for key in ("a", "b", "c"):
        limiter.take(key, limit)
    assert limiter.take("a", limit).allowed  # "a" was evicted: a fresh bucket


def test_changed_limit_starts_a_new_bucket() -> None:
    limiter = MemoryLimiter(Clock())
    assert limiter.take("k", Limit(1.0, 1)).allowed
    assert limiter.take("k", Limit(5.0, 5)).allowed


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
def test_bad_limits_rejected(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="rate limit"):
        Limit(rate, burst)
