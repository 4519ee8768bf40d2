"""Cluster health: app answers never eject, ejection is capped, panic mode uses every endpoint.

A real :class:`Cluster` over a fixed resolver with a fake clock; no call is
made (channels are created but never used), so this is pure policy.
"""

from __future__ import annotations

import grpc
import pytest

from grpcmesh.sdk.breaker import BreakerConfig, BreakerState
from grpcmesh.sdk.cluster import Cluster, ClusterConfig
from grpcmesh.sdk.discovery import Endpoint, MemoryResolver
from grpcmesh.sdk.failures import Kind
from tests.unit.policies.fakes import FakeClock

C = grpc.StatusCode


async def cluster_of(n: int, clock: FakeClock, **breaker: object) -> Cluster:
    eps = [Endpoint("127.0.0.1", 1 + i, id=f"e{i}") for i in range(n)]
    cfg = ClusterConfig(breaker=BreakerConfig(**{"consecutive_failures": 2, "cool_down_s": 30.0, **breaker}))  # type: ignore[arg-type]
    cluster = Cluster("svc", MemoryResolver({"svc": eps}), cfg, clock=clock)
    await cluster.start()
    return cluster


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def fail(cluster: Cluster, port: int, kind: Kind, code: grpc.StatusCode, times: int) -> None:
    (state,) = [s for s in cluster.endpoints if s.endpoint.port == port]
    for _ in range(times):
        state.load.in_flight += 1
        cluster.settle(state, kind, code)


def ports(cluster: Cluster, n: int = 60) -> set[int]:
    seen = set()
    for _ in range(n):
        state = cluster.choose()
        seen.add(state.endpoint.port)
        cluster.settle(state, Kind.CANCELLED, C.CANCELLED)
    return seen


async def test_one_endpoint_is_never_cut_off_by_app_answers(clock: FakeClock) -> None:
    cluster = await cluster_of(1, clock)
    try:
        fail(cluster, 1, Kind.APPLICATION, C.UNKNOWN, 50)
        fail(cluster, 1, Kind.APPLICATION, C.INTERNAL, 50)
        assert cluster.endpoints[0].breaker.state is BreakerState.CLOSED
        fail(cluster, 1, Kind.ENDPOINT, C.UNAVAILABLE, 5)  # really broken: ejected ...
        assert cluster.endpoints[0].breaker.state is BreakerState.OPEN
        assert ports(cluster, 5) == {1}  # ... but panic mode still sends to it
        assert cluster.snapshot()["panic"] is True
    finally:
        await cluster.close()


async def test_broken_endpoint_is_ejected_and_avoided(clock: FakeClock) -> None:
    cluster = await cluster_of(3, clock)
    try:
        fail(cluster, 2, Kind.NOT_REACHED, C.UNAVAILABLE, 2)
        assert ports(cluster) == {1, 3}
        snap = cluster.snapshot()
        assert snap["open_breakers"] == 1
        assert snap["panic"] is False
        assert snap["outlier"]["max_ejection_percent"] == 50.0
        assert snap["outlier"]["panic_threshold_percent"] == 50.0
    finally:
        await cluster.close()


async def test_max_ejection_percent_keeps_the_rest_in_rotation(clock: FakeClock) -> None:
    cluster = await cluster_of(3, clock)  # 50 % of 3: one endpoint at most
    try:
        for port in (1, 2, 3):
            fail(cluster, port, Kind.NOT_REACHED, C.UNAVAILABLE, 4)
        states = [s.breaker.state for s in cluster.endpoints]
        assert states.count(BreakerState.OPEN) == 1
        assert len(ports(cluster)) == 2
    finally:
        await cluster.close()


async def test_panic_threshold_balances_over_all_when_too_few_are_healthy(clock: FakeClock) -> None:
    cluster = await cluster_of(3, clock, max_ejection_percent=100.0, panic_threshold_percent=50.0)
    try:
        fail(cluster, 1, Kind.NOT_REACHED, C.UNAVAILABLE, 2)
        assert ports(cluster) == {2, 3}  # 2 of 3 healthy: above the threshold
        fail(cluster, 2, Kind.NOT_REACHED, C.UNAVAILABLE, 2)
        assert ports(cluster) == {1, 2, 3}  # 1 of 3 healthy: panic, all endpoints
        assert cluster.snapshot()["panic_picks"] > 0
    finally:
        await cluster.close()


async def test_without_panic_mode_everything_ejected_fails_fast(clock: FakeClock) -> None:
    cluster = await cluster_of(2, clock, max_ejection_percent=100.0, panic_threshold_percent=0.0)
    try:
        for port in (1, 2):
            fail(cluster, port, Kind.NOT_REACHED, C.UNAVAILABLE, 2)
        with pytest.raises(grpc.aio.AioRpcError, match="breaker open"):
            cluster.choose()
    finally:
        await cluster.close()


async def test_attempt_sequence_tries_another_endpoint_and_settles_once(clock: FakeClock) -> None:
    cluster = await cluster_of(3, clock)
    try:
        seq = cluster.attempts("/svc/M", idempotent=True, deadline=None)
        first = seq.next()
        seq.settle(Kind.NOT_REACHED, C.UNAVAILABLE)
        seq.settle(Kind.NOT_REACHED, C.UNAVAILABLE)  # a second settle is a no-op
        assert first.load.in_flight == 0
        assert seq.retry_delay(Kind.NOT_REACHED, C.UNAVAILABLE) is not None
        second = seq.next()
        assert second.endpoint != first.endpoint
        clock.advance(0.05)
        seq.responded()  # the EWMA sees time to the response, not the stream's life
        clock.advance(30.0)
        seq.settle(Kind.OK, C.OK)
        assert second.load.ewma == pytest.approx(0.05)
        assert seq.attempts == 2
    finally:
        await cluster.close()
