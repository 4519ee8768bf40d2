"""Large messages and long streams through a sidecar pair: HTTP/2 flow control end to end.

The data plane credits a sender only when its bytes were written onward, so
these calls pass only if window updates flow correctly in both directions,
across both hops, and when several large calls share one connection.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from tests.integration.sidecar.conftest import Pair
from tests.support.mesh import start_echo_proc, start_sidecar
from tests.support.procs import ProcessGroup

E = "/echo.v1.Echo/"
LIMIT = 16 << 20
OPTIONS = [("grpc.max_send_message_length", LIMIT), ("grpc.max_receive_message_length", LIMIT)]


@pytest.fixture(scope="module")
def big_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    group = ProcessGroup(Path(tmp_path_factory.mktemp("flow")))
    try:
        echo = start_echo_proc(group, "big")
        server = start_sidecar(group, "echo", echo.target)
        client = start_sidecar(
            group, "client", "127.0.0.1:1", "--endpoints", f"echo=127.0.0.1:{server.inbound}"
        )
        yield Pair(echo, server, client)
    finally:
        group.stop_all()


def payload(size: int, seed: int) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest()
    return (block * (size // len(block) + 1))[:size]


async def test_large_unary_both_ways(big_pair: Pair) -> None:
    body = payload(6 << 20, 1)  # ~100x the default 64 KiB window
    async with grpc.aio.insecure_channel(big_pair.outbound, options=OPTIONS) as ch:
        assert await ch.unary_unary(E + "Unary")(body, timeout=30) == body


async def test_concurrent_large_calls_share_one_connection(big_pair: Pair) -> None:
    bodies = [payload(3 << 20, i) for i in range(6)]
    async with grpc.aio.insecure_channel(big_pair.outbound, options=OPTIONS) as ch:
        call = ch.unary_unary(E + "Unary")
        replies = await asyncio.gather(*(call(b, timeout=30) for b in bodies))
    assert replies == bodies


async def test_long_server_stream_of_large_messages(big_pair: Pair) -> None:
    body = payload(256 << 10, 7)
    async with grpc.aio.insecure_channel(big_pair.outbound, options=OPTIONS) as ch:
        call = ch.unary_stream(E + "ServerStream")(body, metadata=(("x-echo-count", "64"),), timeout=30)
        got = [m async for m in call]
    assert got == [body + str(i).encode() for i in range(64)]  # 16 MiB in order, none lost


async def test_bidi_of_large_messages(big_pair: Pair) -> None:
    bodies = [payload(512 << 10, 100 + i) for i in range(24)]

    async def requests() -> AsyncIterator[bytes]:
        for b in bodies:
            yield b

    async with grpc.aio.insecure_channel(big_pair.outbound, options=OPTIONS) as ch:
        call = ch.stream_stream(E + "Bidi")(requests(), timeout=30)
        got = [m async for m in call]
    assert got == bodies


async def test_routes_by_the_authority_the_app_dialled(big_pair: Pair) -> None:
    """No x-mesh-service, no [routes]: the name the app dialled (``:authority``) is the service."""
    options = [("grpc.default_authority", "echo")]
    async with grpc.aio.insecure_channel(big_pair.outbound, options=options) as ch:
        assert await ch.unary_unary(E + "Unary")(b"by-authority", timeout=10) == b"by-authority"
    options = [("grpc.default_authority", "ghost:8080")]
    async with grpc.aio.insecure_channel(big_pair.outbound, options=options) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await ch.unary_unary(E + "Unary")(b"x", timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "ghost" in (info.value.details() or "")
