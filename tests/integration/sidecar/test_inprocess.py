"""The sidecar in-process with a resolver the test controls: endpoint churn and broken discovery."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from grpcmesh.sdk.discovery import Endpoint, MemoryResolver, Resolution
from grpcmesh.sidecar.app import Sidecar
from tests.support.echo import start_echo
from tests.support.inprocess import sidecar_config
from tests.support.procs import wait_for_async

E = "/echo.v1.Echo/"


async def test_removed_endpoint_finishes_its_calls_and_gets_no_new_ones() -> None:
    (sa, pa, echo_a), (sb, pb, echo_b) = await start_echo(), await start_echo()
    resolver = MemoryResolver({"echo": [Endpoint("127.0.0.1", pa)]})
    sidecar = Sidecar(sidecar_config(), resolver=resolver)
    await sidecar.start()
    md = (("x-mesh-service", "echo"),)
    try:
        async with grpc.aio.insecure_channel(sidecar.cfg.outbound) as ch:
            call = ch.unary_unary(E + "Unary")
            slow = asyncio.ensure_future(
                call(b"slow", metadata=(*md, ("x-echo-delay-ms", "800")), timeout=10)
            )
            await wait_for_async(lambda: _true(echo_a.calls["Unary"] >= 1), 5, what="slow call at A")
            await resolver.set("echo", [Endpoint("127.0.0.1", pb)])
            cluster = sidecar.clusters.get("echo")
            await wait_for_async(
                lambda: _true([s.endpoint.port for s in cluster.endpoints] == [pb]), 5, what="B"
            )
            assert await call(b"new", metadata=md, timeout=5) == b"new"
            assert (echo_a.calls["Unary"], echo_b.calls["Unary"]) == (1, 1)
            assert await slow == b"slow"  # A's connection was drained (GOAWAY), not cut
    finally:
        await sidecar.drain()
        await sa.stop(0)
        await sb.stop(0)


class BrokenResolver(MemoryResolver):
    """A discovery backend that errors (a registry client bug, an auth failure...)."""

    async def resolve(self, service: str) -> Resolution:
        raise RuntimeError("registry says 403")

    async def watch(self, service: str) -> AsyncIterator[Resolution]:
        raise RuntimeError("registry says 403")
        yield  # pragma: no cover


@pytest.mark.parametrize("md", [(("x-mesh-service", "echo"),), ()])
async def test_broken_discovery_is_unavailable_naming_it_not_a_hang(md: tuple[tuple[str, str], ...]) -> None:
    sidecar = Sidecar(sidecar_config(), resolver=BrokenResolver())
    await sidecar.start()
    try:
        async with grpc.aio.insecure_channel(sidecar.cfg.outbound) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await ch.unary_unary(E + "Unary")(b"x", metadata=md, timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "discovery failed: registry says 403" in (info.value.details() or "")
    finally:
        await sidecar.drain()


async def _true(value: bool) -> bool:
    return value
