"""The SDK's Cluster over real sockets (the direct-mode path, no sidecar process)."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from grpcmesh.sdk.cluster import Cluster, ClusterConfig
from grpcmesh.sdk.discovery import Endpoint, MemoryResolver
from grpcmesh.sdk.retry import RetryConfig
from tests.support.echo import start_echo
from tests.support.procs import free_port, wait_for_async


def ep(port: int) -> Endpoint:
    return Endpoint("127.0.0.1", port)


def unary(payload: bytes = b"x", delay_ms: int = 0):  # type: ignore[no-untyped-def]
    md = (("x-echo-delay-ms", str(delay_ms)),) if delay_ms else ()

    async def call(channel: grpc.aio.Channel, timeout: float | None) -> bytes:
        reply: bytes = await channel.unary_unary("/echo.v1.Echo/Unary")(payload, metadata=md, timeout=timeout)
        return reply

    return call


async def test_removed_endpoint_is_drained_not_cut() -> None:
    (sa, pa, echo_a), (sb, pb, echo_b) = await start_echo(), await start_echo()
    resolver = MemoryResolver({"echo": [ep(pa)]})
    cluster = Cluster("echo", resolver, ClusterConfig(drain_s=5.0))
    try:
        slow = asyncio.create_task(cluster.invoke(unary(b"slow", delay_ms=600), idempotent=True, timeout=10))
        await wait_for_async(lambda: _true(echo_a.calls["Unary"] >= 1), 5, what="slow call at A")
        await resolver.set("echo", [ep(pb)])
        await wait_for_async(
            lambda: _true([s.endpoint.port for s in cluster.endpoints] == [pb]), 5, what="update"
        )
        assert await cluster.invoke(unary(b"new"), idempotent=True, timeout=5) == b"new"
        assert echo_b.calls["Unary"] == 1  # new calls go to the remaining endpoint
        assert await slow == b"slow"  # the in-flight call on the removed endpoint finished
    finally:
        await cluster.close()
        await sa.stop(0)
        await sb.stop(0)


async def test_nothing_resolves_is_unavailable_naming_the_service() -> None:
    cluster = Cluster("ghost", MemoryResolver())
    try:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await cluster.invoke(unary(), idempotent=True, timeout=1)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "ghost" in (info.value.details() or "")
    finally:
        await cluster.close()


async def test_connect_failure_retried_on_another_endpoint_even_if_not_idempotent() -> None:
    server, port, echo = await start_echo()
    dead = free_port()
    cluster = Cluster(
        "echo",
        MemoryResolver({"echo": [ep(dead), ep(port)]}),
        ClusterConfig(balancer="round_robin", retry=RetryConfig(max_attempts=2, backoff_base_s=0.001)),
    )
    try:
        for _ in range(4):
            assert await cluster.invoke(unary(), idempotent=False, timeout=5) == b"x"
        assert echo.calls["Unary"] == 4
        assert cluster.snapshot()["retry"]["retries_total"] >= 2
    finally:
        await cluster.close()
        await server.stop(0)


async def _true(value: object) -> bool:
    return bool(value)
