"""Token-bucket rate limits per (client, route): in-process, or shared through Redis.

A bucket holds up to ``burst`` tokens and refills at ``rate`` per second; a request
takes one token or is refused with the seconds until one will be there (the 429's
``Retry-After``). The in-process limiter takes an injected clock so tests drive
time; the Redis limiter runs the same arithmetic in one Lua script (atomic across
gateways, Redis' own clock) and lets idle buckets expire.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Decision", "Limit", "Limiter", "MemoryLimiter", "RedisLimiter", "TokenBucket"]


@dataclass(frozen=True)
class Limit:
    """``rate`` tokens per second, at most ``burst`` saved up."""

    rate: float
    burst: int

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError(f"rate limit needs rate > 0 and burst >= 1, got {self.rate}/{self.burst}")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float = 0.0  # seconds until a token is available (0 when allowed)

    @property
    def retry_after_header(self) -> str:
        """Whole seconds, rounded up, at least 1 (RFC 9110 delay-seconds)."""
        return str(max(1, math.ceil(self.retry_after)))


class Limiter(Protocol):
    async def acquire(self, key: str, limit: Limit) -> Decision: ...

    async def close(self) -> None: ...


class TokenBucket:
    """One bucket; pure arithmetic on the times it is given."""

    def __init__(self, limit: Limit, now: float) -> None:
        self.limit = limit
        self.tokens = float(limit.burst)
        self.updated = now

    def take(self, now: float) -> Decision:
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(float(self.limit.burst), self.tokens + elapsed * self.limit.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return Decision(True)
        return Decision(False, (1.0 - self.tokens) / self.limit.rate)


class MemoryLimiter:
    """Buckets in this process, least recently used dropped beyond ``max_keys``."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    async def acquire(self, key: str, limit: Limit) -> Decision:
        return self.take(key, limit)

    def take(self, key: str, limit: Limit) -> Decision:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None or bucket.limit != limit:
            bucket = self._buckets[key] = TokenBucket(limit, now)
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(now)

    async def close(self) -> None:
        self._buckets.clear()


# KEYS[1] bucket; ARGV rate, burst. Returns {allowed (0/1), retry_after_ms}.
_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {allowed, wait}
"""


class RedisLimiter:
    """Buckets in Redis (``redis://host:port/db``), shared by every gateway using it."""

    def __init__(self, url: str, prefix: str = "grpcmesh:gw:rl:") -> None:
        import redis.asyncio as aioredis

        self._redis: Any = aioredis.Redis.from_url(url)
        self._script: Any = self._redis.register_script(_SCRIPT)
        self._prefix = prefix

    async def acquire(self, key: str, limit: Limit) -> Decision:
        allowed, wait_ms = await self._script(keys=[self._prefix + key], args=[limit.rate, limit.burst])
        return Decision(bool(int(allowed)), int(wait_ms) / 1000.0)

    async def close(self) -> None:
        await self._redis.aclose()
