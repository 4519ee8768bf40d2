"""MeshClient over real sockets: both modes, all call kinds, the sync facade, retries, bad use."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from grpcmesh.sdk import (
    AsyncMeshClient,
    ClientClosedError,
    MeshClient,
    NotFound,
    RetryConfig,
    Unavailable,
)
from grpcmesh.sdk.headers import MESH_SERVICE, MESH_SOURCE, REQUEST_ID, request_id_var
from tests.support.chain import Chain, HopStub
from tests.support.procs import free_port, wait_for_async

# -- sidecar mode ---------------------------------------------------------------------------
# No sidecar here: the "sidecar" address points straight at hop a, which ignores the
# authority. That exercises the sidecar-mode client path (a pooled channel per target,
# no client retries by default) without the proxy; test_chain routes through real sidecars.


async def test_sidecar_mode_sends_only_the_request_id_and_reuses_channels(chain: Chain) -> None:
    async with AsyncMeshClient(service="checkout", sidecar=chain.address("a")) as client:
        await client.ready(timeout=5)
        first = client.stub(HopStub, target="orders")
        second = client.stub(HopStub, target="orders")
        assert await first.Get({}) == {"hop": "a"}
        assert await second.Get({}) == {"hop": "a"}
        assert client.channel("orders") is client.channel("orders")
    md = chain.seen[0].metadata
    assert md[REQUEST_ID]
    # the target is the channel's :authority and the sidecar stamps the source itself
    assert MESH_SERVICE not in md
    assert MESH_SOURCE not in md


async def test_a_target_that_cannot_be_an_authority_travels_as_a_header(chain: Chain) -> None:
    """``3d-print`` looks like an address to the sidecar's router, so it names itself."""
    async with AsyncMeshClient(service="checkout", sidecar=chain.address("a")) as client:
        assert await client.stub(HopStub, target="3d-print").Get({}) == {"hop": "a"}
    assert chain.seen[0].metadata[MESH_SERVICE] == "3d-print"


async def test_sidecar_mode_does_not_retry_by_default(chain: Chain) -> None:
    chain.hops["a"].unavailable_first = 1
    async with AsyncMeshClient(sidecar=chain.address("a")) as client:
        with pytest.raises(Unavailable, match="a warming up"):
            await client.stub(HopStub, target="orders").Get({})
    assert len(chain.seen) == 1


async def test_retry_interceptor_retries_idempotent_methods_when_enabled(chain: Chain) -> None:
    chain.hops["a"].unavailable_first = 2
    async with AsyncMeshClient(
        sidecar=chain.address("a"), retry=RetryConfig(max_attempts=3), idempotent=["/chain.v1.Hop/Get"]
    ) as client:
        assert await client.stub(HopStub, target="orders").Get({}, timeout=5) == {"hop": "a"}
    assert len(chain.seen) == 3
    assert len({s.request_id for s in chain.seen}) == 1  # one logical call, one id


async def test_retry_interceptor_leaves_non_idempotent_methods_alone(chain: Chain) -> None:
    chain.hops["a"].unavailable_first = 1
    async with AsyncMeshClient(sidecar=chain.address("a"), retry=True) as client:
        stub = client.stub(HopStub, target="orders")
        with pytest.raises(Unavailable):
            await stub.Get({})  # Get is not declared idempotent: the app saw it, no retry
    assert len(chain.seen) == 1


# -- direct mode: streams -----------------------------------------------------------------


async def test_server_streaming_and_its_typed_error(chain: Chain) -> None:
    async with AsyncMeshClient(discovery=chain.resolver) as client:
        stub = client.stub(HopStub, target="b")
        assert [m["i"] async for m in stub.Count({"n": 4})] == [0, 1, 2, 3]
        got: list[int] = []

        async def drain() -> None:
            async for m in stub.Count({"n": 2, "fail": "b"}):
                got.append(m["i"])

        with pytest.raises(NotFound, match="no more items") as caught:
            await drain()
        assert got == [0, 1]
        assert caught.value.request_id


async def test_bidi_stream_with_write_and_read(chain: Chain) -> None:
    async with AsyncMeshClient(discovery=chain.resolver) as client:
        call = client.stub(HopStub, target="c").Echo()
        await call.write({"n": 1})
        assert (await call.read())["echo"] == {"n": 1}
        await call.write({"n": 2})
        await call.done_writing()
        assert (await call.read())["echo"] == {"n": 2}

        async def requests():
            for i in range(3):
                yield i

        assert [m["echo"] async for m in client.stub(HopStub, target="c").Echo(requests())] == [0, 1, 2]


# -- the sync facade ------------------------------------------------------------------------


async def test_sync_client_carries_the_callers_context(chain: Chain) -> None:
    def work() -> tuple[dict[str, object], list[int]]:
        token = request_id_var.set("req-sync-1")
        try:
            with MeshClient("sync-app", discovery=chain.resolver) as client:
                stub = client.stub(HopStub, target="a")
                reply = stub.Call({"hops": ["b"]}, timeout=5)
                items = [m["i"] for m in stub.Count({"n": 3})]
            return reply, items
        finally:
            request_id_var.reset(token)

    reply, items = await asyncio.to_thread(work)
    assert reply == {"path": ["a", "b"]}
    assert items == [0, 1, 2]
    assert {s.request_id for s in chain.seen} == {"req-sync-1"}


async def test_sync_client_raises_typed_errors_and_closed_error(chain: Chain) -> None:
    def work() -> None:
        client = MeshClient(discovery=chain.resolver)
        stub = client.stub(HopStub, target="a")
        with pytest.raises(Unavailable, match="'nowhere'"):
            client.stub(HopStub, target="nowhere").Get({})
        client.close()
        with pytest.raises(ClientClosedError, match="closed"):
            stub.Get({})

    await asyncio.to_thread(work)


# -- bad use ----------------------------------------------------------------------------------


async def test_stub_used_after_close_names_the_problem(chain: Chain) -> None:
    client = AsyncMeshClient(service="checkout", discovery=chain.resolver)
    stub = client.stub(HopStub, target="a")
    await client.close()
    with pytest.raises(ClientClosedError, match=r"is closed: cannot use /chain.v1.Hop/Get for target 'a'"):
        await stub.Get({})
    with pytest.raises(ClientClosedError, match="after close"):
        client.stub(HopStub, target="a")
    await client.close()  # idempotent


async def test_target_that_resolves_to_nothing_names_the_target(chain: Chain) -> None:
    async with AsyncMeshClient(discovery=chain.resolver) as client:
        with pytest.raises(
            Unavailable, match=r"service 'ghost': no endpoints registered \(discovery: MemoryResolver\)"
        ):
            await client.stub(HopStub, target="ghost").Get({})
        with pytest.raises(Unavailable, match="'ghost'"):
            async for _ in client.stub(HopStub, target="ghost").Count({}):
                pass


async def test_target_registered_but_emptied_names_the_target(chain: Chain) -> None:
    async with AsyncMeshClient(discovery=chain.resolver) as client:
        stub = client.stub(HopStub, target="c")
        assert await stub.Get({}) == {"hop": "c"}
        await chain.resolver.set("c", [])

        async def until_it_fails() -> None:
            for _ in range(250):  # the cluster applies the change from its watch, soon
                await stub.Get({})
                await asyncio.sleep(0.02)

        with pytest.raises(Unavailable, match="'c'"):
            await until_it_fails()


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("http://127.0.0.1:15001", "drop the URL scheme"),
        ("127.0.0.1", "missing port"),
        (":15001", "missing host"),
        ("127.0.0.1:99999", "port must be a number in 1..65535"),
        ("localhost:grpc", "port must be a number"),
        ("::1:15001", "put IPv6 hosts in brackets"),
    ],
)
async def test_invalid_sidecar_address_is_rejected_up_front(
    monkeypatch: pytest.MonkeyPatch, address: str, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        AsyncMeshClient(sidecar=address)
    assert repr(address) in str(caught.value)
    monkeypatch.setenv("GRPCMESH_SIDECAR", address)
    with pytest.raises(
        ValueError, match=f"GRPCMESH_SIDECAR={address!r}".replace(".", r"\.").replace("[", r"\[")
    ):
        MeshClient()


async def test_unreachable_sidecar_names_its_address() -> None:
    address = f"127.0.0.1:{free_port()}"
    async with AsyncMeshClient(sidecar=address) as client:
        with pytest.raises(Unavailable, match=f"sidecar at {address} .* not reachable"):
            await client.ready(timeout=0.3)
        with pytest.raises(Unavailable, match=address):
            await client.stub(HopStub, target="orders").Get({}, timeout=2)


async def test_other_bad_arguments_fail_with_a_message() -> None:
    with pytest.raises(ValueError, match="direct mode needs discovery="):
        AsyncMeshClient(direct=True)
    with pytest.raises(ValueError, match="timeout must be positive"):
        AsyncMeshClient(timeout=0)
    async with AsyncMeshClient(discovery={"a": ["127.0.0.1:1"]}) as client:
        with pytest.raises(ValueError, match="is not a service name"):
            client.stub(HopStub, target="a/b")
        with pytest.raises(ValueError, match="direct mode needs stub"):
            client.stub(HopStub)
    with pytest.raises(ValueError, match="is not host:port"):
        AsyncMeshClient(discovery={"a": ["nowhere"]})


async def test_cancel_stops_an_in_flight_call(chain: Chain) -> None:
    async with AsyncMeshClient(discovery=chain.resolver) as client:
        call = client.stub(HopStub, target="a").Call({"sleep": 30})
        waiter = asyncio.create_task(_await(call))

        async def started() -> bool:
            return bool(chain.seen)

        await wait_for_async(started, timeout=10, what="hop a to receive the call")
        assert call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert call.done()
        assert not call.cancel()
        assert await call.code() is grpc.StatusCode.CANCELLED


async def _await(call: object) -> object:
    return await call  # type: ignore[misc]


async def test_cancel_stops_an_open_stream(chain: Chain) -> None:
    async with AsyncMeshClient(discovery=chain.resolver) as client:
        call = client.stub(HopStub, target="b").Echo()
        await call.write({"n": 1})
        assert (await call.read())["echo"] == {"n": 1}
        assert not call.done()
        assert call.cancel()
        assert call.done()
        with pytest.raises(asyncio.CancelledError):
            await call.read()
        assert await call.code() is grpc.StatusCode.CANCELLED
