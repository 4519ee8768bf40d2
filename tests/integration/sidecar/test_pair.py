"""All four call kinds through a real client+server sidecar pair, and what must survive the trip."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.integration.sidecar.conftest import Pair
from tests.support.procs import wait_for, wait_for_async

E = "/echo.v1.Echo/"


async def stats(target: str) -> dict[str, object]:
    async with grpc.aio.insecure_channel(target) as ch:
        return json.loads(await ch.unary_unary(E + "Stats")(b"", timeout=5))  # type: ignore[no-any-return]


async def gen(n: int, size: int = 8) -> AsyncIterator[bytes]:
    for i in range(n):
        yield f"m{i}".encode().ljust(size, b".")


async def test_unary_metadata_and_trailers_survive(pair: Pair) -> None:
    rid = str(uuid.uuid4())
    md = (("x-custom", "v1"), ("baggage", "k=v"), ("x-request-id", rid), ("x-bin-bin", b"\x00\x01"))
    async with grpc.aio.insecure_channel(pair.outbound) as ch:
        call = ch.unary_unary(E + "Unary")(b"hello", metadata=md, timeout=10)
        assert await call == b"hello"
        assert ("x-echo-served-by", "a") in tuple(await call.initial_metadata())
        trailers = tuple(await call.trailing_metadata())
    assert ("x-echo-trailer", "ok") in trailers
    seen = (await stats(pair.echo.target))["metadata"]
    assert isinstance(seen, dict)
    assert seen["x-custom"] == "v1"
    assert seen["baggage"] == "k=v"
    assert seen["x-request-id"] == rid  # kept, not replaced
    assert seen["x-bin-bin"] == "0001"
    assert seen["x-mesh-source"] == "client"
    assert seen["traceparent"].startswith("00-")
    # the same request id is in both sidecars' access logs
    wait_for(
        lambda: rid in pair.client.proc.output() and rid in pair.server.proc.output(),
        10,
        what="request id in logs",
    )


async def test_request_id_generated_when_missing(pair: Pair) -> None:
    async with grpc.aio.insecure_channel(pair.outbound) as ch:
        await ch.unary_unary(E + "Unary")(b"x", timeout=10)
    seen = (await stats(pair.echo.target))["metadata"]
    assert isinstance(seen, dict)
    uuid.UUID(seen["x-request-id"])


async def test_server_streaming(pair: Pair) -> None:
    async with grpc.aio.insecure_channel(pair.outbound) as ch:
        call = ch.unary_stream(E + "ServerStream")(b"s", metadata=(("x-echo-count", "50"),), timeout=10)
        got = [m async for m in call]
        assert got == [b"s" + str(i).encode() for i in range(50)]
        assert await call.code() == grpc.StatusCode.OK
        assert ("x-echo-trailer", "ok") in tuple(await call.trailing_metadata())


async def test_client_streaming(pair: Pair) -> None:
    async with grpc.aio.insecure_channel(pair.outbound) as ch:
        reply = await ch.stream_unary(E + "ClientStream")(gen(40), timeout=10)
    assert reply == b"|".join([f"m{i}".encode().ljust(8, b".") for i in range(40)])


async def test_bidi_streaming_interleaved(pair: Pair) -> None:
    async with grpc.aio.insecure_channel(pair.outbound) as ch:
        call = ch.stream_stream(E + "Bidi")(timeout=10)
        for i in range(20):  # ping-pong: each reply must arrive before the next request is sent
            await call.write(f"p{i}".encode())
            assert await call.read() == f"p{i}".encode()
        await call.done_writing()
        assert await call.read() is grpc.aio.EOF
        assert await call.code() == grpc.StatusCode.OK


async def test_rich_error_details_survive(pair: Pair) -> None:
    md = (("x-echo-fail", "INVALID_ARGUMENT"), ("x-echo-rich", "1"))
    async with grpc.aio.insecure_channel(pair.outbound) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await ch.unary_unary(E + "Unary")(b"x", metadata=md, timeout=10)
    err = info.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == "echo was told to fail"
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    assert bad.field_violations[0].field == "name"
    # the response headers the app sent before failing survive too
    assert dict(err.initial_metadata())["x-echo-served-by"] == "a"  # type: ignore[arg-type]


async def test_stream_error_keeps_code(pair: Pair) -> None:
    md = (("x-echo-fail", "NOT_FOUND"),)
    async with grpc.aio.insecure_channel(pair.outbound) as ch:
        call = ch.unary_stream(E + "ServerStream")(b"s", metadata=md, timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            _ = [m async for m in call]
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert "told to fail" in (info.value.details() or "")
    assert ("x-echo-trailer", "failed") in tuple(info.value.trailing_metadata() or ())


async def _cancelled(pair: Pair) -> int:
    value = (await stats(pair.echo.target))["cancelled"]
    assert isinstance(value, int)
    return value


async def _calls(pair: Pair, method: str) -> int:
    calls = (await stats(pair.echo.target))["calls"]
    assert isinstance(calls, dict)
    return int(calls.get(method, 0))


async def test_deadline_propagates_to_app(pair: Pair) -> None:
    before = await _cancelled(pair)
    async with grpc.aio.insecure_channel(pair.outbound) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await ch.unary_unary(E + "Wait")(b"x", timeout=0.5)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # the app's handler was ended by the propagated deadline, not left running
    await wait_for_async(lambda: _gt(_cancelled(pair), before), 10, what="app to see the deadline")


async def _gt(value: object, than: int) -> bool:
    assert asyncio.iscoroutine(value)
    return int(await value) > than


@pytest.mark.parametrize("method", ["Wait", "WaitStream"])
async def test_cancellation_reaches_app(pair: Pair, method: str) -> None:
    before = await _cancelled(pair)
    calls = await _calls(pair, method)
    async with grpc.aio.insecure_channel(pair.outbound) as ch:
        if method == "Wait":
            call = ch.unary_unary(E + method)(b"x", timeout=30)
        else:
            call = ch.stream_stream(E + method)(gen(1), timeout=30)
        await wait_for_async(lambda: _gt(_calls(pair, method), calls), 10, what="call to reach the app")
        call.cancel()
        await wait_for_async(lambda: _gt(_cancelled(pair), before), 10, what="cancellation to reach the app")


async def test_health_is_answered_by_asking_the_app(pair: Pair) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{pair.server.inbound}") as ch:
        reply = await health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_inbound_concurrency_limit(pair: Pair) -> None:
    """max-concurrency 4 on the server sidecar: the 5th concurrent call is refused at once."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{pair.server.inbound}") as ch:
        calls = await _calls(pair, "Wait")
        waiting = [ch.unary_unary(E + "Wait")(b"x", timeout=30) for _ in range(4)]
        await wait_for_async(lambda: _gt(_calls(pair, "Wait"), calls + 3), 10, what="4 calls in flight")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await ch.unary_unary(E + "Unary")(b"x", timeout=5)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_concurrency" in (info.value.details() or "")
        for c in waiting:
            c.cancel()
        # capacity comes back once they are gone
        await wait_for_async(lambda: _ok_unary(ch), 10, what="capacity after cancel")


async def _ok_unary(ch: grpc.aio.Channel) -> bool:
    try:
        await ch.unary_unary(E + "Unary")(b"x", timeout=5)
    except grpc.aio.AioRpcError:
        return False
    return True
