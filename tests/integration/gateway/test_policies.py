"""Rate limits (in-process and shared through a real redis-server) and the response cache."""

from __future__ import annotations

import base64
import uuid

from grpcmesh.services.gateway.ratelimit import Limit, RedisLimiter
from tests.integration.gateway.conftest import StartGateway
from tests.support.gateway import make_token
from tests.support.procs import wait_for_async
from tests.support.redis import RedisServer

READ = "/v1/streams/cached"


def body() -> dict[str, object]:
    return {"events": [{"id": str(uuid.uuid4()), "type": "T", "data": base64.b64encode(b"{}").decode()}]}


async def test_rate_limit_429_with_retry_after(gateway_for: StartGateway) -> None:
    gateway = gateway_for("[rate_limit]\nrate = 0.01\nburst = 3\n")
    alice, bob = make_token("alice"), make_token("bob")
    statuses = [(await gateway.request("GET", "/v1/streams/rl", token=alice)).status for _ in range(3)]
    assert statuses == [404, 404, 404]  # allowed through to the store (no such stream)
    limited = await gateway.request("GET", "/v1/streams/rl", token=alice)
    assert limited.status == 429
    assert limited.json()["code"] == "RESOURCE_EXHAUSTED"
    assert 60 <= int(limited.headers["Retry-After"]) <= 100  # 1 token at 0.01/s
    # Buckets are per (subject, route): bob and alice's other route are untouched.
    assert (await gateway.request("GET", "/v1/streams/rl", token=bob)).status == 404
    assert (await gateway.request("POST", "/v1/streams/rl", token=alice, body=body())).status == 200


async def test_redis_limiter_is_shared_by_gateways(gateway_for: StartGateway, redis: RedisServer) -> None:
    config = f'[rate_limit]\nrate = 0.01\nburst = 3\nbackend = "{redis.url}"\n'
    one, two = gateway_for(config), gateway_for(config)
    token = make_token("dave")
    statuses = [
        (await gw.request("GET", "/v1/streams/shared", token=token)).status for gw in (one, two, one, two)
    ]
    assert statuses == [404, 404, 404, 429]
    limited = await one.request("GET", "/v1/streams/shared", token=token)
    assert limited.status == 429
    assert int(limited.headers["Retry-After"]) >= 60


async def test_cache_hit_then_no_cache_bypass(gateway_for: StartGateway) -> None:
    gateway = gateway_for("[cache]\nttl = 60\n")
    alice = make_token("alice")
    assert (await gateway.request("POST", READ, token=alice, body=body())).status == 200
    first = await gateway.request("GET", READ, token=alice)
    assert first.headers["X-Cache"] == "MISS"
    second = await gateway.request("GET", READ, token=alice)
    assert second.headers["X-Cache"] == "HIT"
    assert second.text == first.text

    # A write the cached answer does not know about yet:
    assert (await gateway.request("POST", READ, token=alice, body=body())).status == 200
    stale = await gateway.request("GET", READ, token=alice)
    assert stale.headers["X-Cache"] == "HIT"
    assert len(stale.json()) == 1
    fresh = await gateway.request("GET", READ, token=alice, headers={"Cache-Control": "no-cache"})
    assert fresh.headers["X-Cache"] == "BYPASS"
    assert len(fresh.json()) == 2
    refreshed = await gateway.request("GET", READ, token=alice)  # no-cache stored the fresh answer
    assert refreshed.headers["X-Cache"] == "HIT"
    assert len(refreshed.json()) == 2

    # Another subject never sees alice's entry; other query strings are other entries.
    assert (await gateway.request("GET", READ, token=make_token("bob"))).headers["X-Cache"] == "MISS"
    assert (await gateway.request("GET", READ + "?maxCount=1", token=alice)).headers["X-Cache"] == "MISS"
    # Writes are never cached; errors are not stored.
    assert "X-Cache" not in (await gateway.request("POST", READ, token=alice, body=body())).headers
    assert (await gateway.request("GET", "/v1/streams/nope", token=alice)).status == 404
    assert (await gateway.request("GET", "/v1/streams/nope", token=alice)).headers.get("X-Cache") is None


async def test_redis_bucket_refills(redis: RedisServer) -> None:
    limiter = RedisLimiter(redis.url, prefix=f"test:{uuid.uuid4()}:")
    try:
        limit = Limit(rate=20.0, burst=1)
        assert (await limiter.acquire("k", limit)).allowed
        refused = await limiter.acquire("k", limit)
        assert not refused.allowed
        assert 0 < refused.retry_after <= 0.05 + 0.001
        assert (await limiter.acquire("other", limit)).allowed  # keys are separate buckets

        async def allowed_again() -> bool:
            return (await limiter.acquire("k", limit)).allowed

        await wait_for_async(allowed_again, timeout=5, interval=0.01, what="the Redis bucket to refill")
    finally:
        await limiter.close()


async def test_anonymous_callers_are_keyed_by_forwarded_address(gateway_for: StartGateway) -> None:
    gateway = gateway_for(
        "trust_forwarded_for = true\naccess_log = true\n"
        '[routes."grpcmesh.api.v1.EventStore.ReadStream"]\npublic = true\nrate = 0.01\nburst = 1\n'
    )

    async def status(ip: str) -> int:
        return (await gateway.request("GET", "/v1/streams/anon", headers={"X-Forwarded-For": ip})).status

    assert await status("203.0.113.7") == 404
    assert await status("203.0.113.7, 10.0.0.1") == 429  # the first hop is the client
    assert await status("198.51.100.2") == 404
    gateway.proc.wait_output("GET /v1/streams/anon 429", timeout=10)  # access log line
