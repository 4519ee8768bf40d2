"""Large messages and long streams through a sidecar pair: HTTP/2 flow control end to end.

The data plane credits a sender only when its bytes were written onward, so
these calls pass only if window updates flow correctly in both directions,
across both hops, and when several large calls share one connection.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from tests.integration.sidecar.conftest import Pair
from tests.support.mesh import admin_get, start_echo_proc, start_sidecar
from tests.support.procs import ProcessGroup, wait_for_async

E = "/echo.v1.Echo/"
LIMIT = 16 << 20
OPTIONS = [("grpc.max_send_message_length", LIMIT), ("grpc.max_receive_message_length", LIMIT)]


@pytest.fixture(scope="module")
def big_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    group = ProcessGroup(Path(tmp_path_factory.mktemp("flow")))
    try:
        echo = start_echo_proc(group, "big")
        server = start_sidecar(group, "echo", echo.target)
        # breakers off: the mixed-load test makes deadline failures on purpose
        quiet = {"cluster": {"breaker": {"consecutive_failures": 1_000_000, "min_requests": 1_000_000}}}
        client = start_sidecar(
            group, "client", "127.0.0.1:1", "--endpoints", f"echo=127.0.0.1:{server.inbound}", config=quiet
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


async def test_mixed_load_with_cancels_deadlines_and_errors_leaves_no_stream_behind(big_pair: Pair) -> None:
    """Every way a call can end, all at once; afterwards no stream is left open in either sidecar."""
    async with grpc.aio.insecure_channel(big_pair.outbound) as ch:
        unary = ch.unary_unary(E + "Unary")

        async def ok(i: int) -> str:
            body = f"u{i}".encode()
            return "ok" if await unary(body, timeout=20) == body else "wrong"

        async def cancelled_stream() -> str:
            call = ch.unary_stream(E + "ServerStream")(
                b"s", metadata=(("x-echo-count", "100000"),), timeout=20
            )
            await call.read()
            call.cancel()
            return "cancelled"

        async def bidi(i: int) -> str:
            msgs = [f"b{i}.{j}".encode() for j in range(3)]

            async def reqs() -> AsyncIterator[bytes]:
                for m in msgs:
                    yield m

            got = [m async for m in ch.stream_stream(E + "Bidi")(reqs(), timeout=20)]
            return "ok" if got == msgs else "wrong"

        async def expect(md: tuple[tuple[str, str], ...], timeout: float) -> str:
            try:
                await unary(b"x", metadata=md, timeout=timeout)
            except grpc.aio.AioRpcError as err:
                return err.code().name
            return "no error"

        jobs = [ok(i) for i in range(100)]
        jobs += [cancelled_stream() for _ in range(30)]
        jobs += [bidi(i) for i in range(30)]
        jobs += [expect((("x-echo-delay-ms", "3000"),), 0.3) for _ in range(20)]
        jobs += [expect((("x-echo-fail", "NOT_FOUND"),), 20) for _ in range(20)]
        outcomes = Counter(await asyncio.gather(*jobs))
    assert outcomes == {"ok": 130, "cancelled": 30, "DEADLINE_EXCEEDED": 20, "NOT_FOUND": 20}

    def open_streams(port: int) -> int:
        snapshot = json.loads(admin_get(port, "/clusters")[1])
        h2 = snapshot["http2"]
        upstream = sum(p["streams"] for p in h2["upstream"].values())
        return int(h2["outbound_listener"]["streams"] + h2["inbound_listener"]["streams"] + upstream)

    for sidecar in (big_pair.client, big_pair.server):
        await wait_for_async(lambda s=sidecar: _zero(open_streams(s.admin)), 10, what="streams to close")
    async with grpc.aio.insecure_channel(big_pair.outbound) as ch:
        assert await ch.unary_unary(E + "Unary")(b"after", timeout=10) == b"after"


async def _zero(n: int) -> bool:
    return n == 0
