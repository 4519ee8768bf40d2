"""The event store over a real socket: validation, conflicts, reads, subscriptions, backpressure."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest

from grpcmesh.api.v1 import eventstore_pb2 as pb
from grpcmesh.sdk.errors import (
    Aborted,
    AlreadyExists,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    from_rpc_error,
)
from tests.integration.eventstore.helpers import append, error_metadata, event


def sid() -> str:
    return f"order-{uuid.uuid4().hex[:8]}"


async def finish(call: object) -> int:
    """Awaits a unary call or drains a streaming one; returns how many messages arrived."""
    if not hasattr(call, "__aiter__"):
        await call  # type: ignore[misc]
        return 1
    return len([m async for m in call])  # type: ignore[attr-defined]


async def fails(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await finish(call)
    return info.value


@pytest.fixture
async def stub(start_eventstore, stub_for, sqlite_url):  # type: ignore[no-untyped-def]
    server = start_eventstore(sqlite_url, "--max-event-bytes", "2048", "--max-batch", "50")
    return stub_for(server)


async def test_invalid_requests_name_the_field(stub) -> None:  # type: ignore[no-untyped-def]
    cases = [
        (append("$system", [event()]), "stream_id"),
        (append("has space", [event()]), "stream_id"),
        (append("", [event()]), "stream_id"),
        (append(sid(), []), "events"),
        (append(sid(), [pb.ProposedEvent(id="not-a-uuid", type="T")]), "events[0].id"),
        (append(sid(), [event(), pb.ProposedEvent(id=str(uuid.uuid4()))]), "events[1].type"),
        (append(sid(), [event(data=b"x" * 4096)]), "events[0].data"),
        (append(sid(), [event() for _ in range(51)]), "events"),
    ]
    dup = event()
    cases.append((append(sid(), [dup, dup]), "events[1].id"))
    for request, field in cases:
        err = from_rpc_error(await fails(stub.Append(request)))
        assert isinstance(err, InvalidArgument), err
        assert field in err.field_violations(), (field, err.field_violations())
    err = from_rpc_error(await fails(stub.ReadStream(pb.ReadStreamRequest(stream_id="$all"))))
    assert isinstance(err, InvalidArgument)
    assert "stream_id" in err.field_violations()
    err = from_rpc_error(await fails(stub.Subscribe(pb.SubscribeRequest(stream_prefixes=["ok", ""]))))
    assert isinstance(err, InvalidArgument)
    assert "stream_prefixes[1]" in err.field_violations()


async def test_wrong_expected_revision_is_aborted_with_actual(stub) -> None:  # type: ignore[no-untyped-def]
    s = sid()
    await stub.Append(append(s, [event(), event()], "no_stream"))
    err = from_rpc_error(await fails(stub.Append(append(s, [event()], 5))))
    assert isinstance(err, Aborted)
    assert error_metadata(err) == {"stream_id": s, "expected": "5", "actual": "1"}
    missing = sid()
    err = from_rpc_error(await fails(stub.Append(append(missing, [event()], "stream_exists"))))
    assert isinstance(err, Aborted)
    assert error_metadata(err)["actual"] == "no_stream"


async def test_append_is_idempotent_and_reads_come_back(stub) -> None:  # type: ignore[no-untyped-def]
    s = sid()
    batch = [event("Created", b'{"n":1}', corr="c1"), event("Paid")]
    first = await stub.Append(append(s, batch, "no_stream"))
    assert (first.next_revision, first.duplicate) == (1, False)
    again = await stub.Append(append(s, batch, "no_stream"))
    assert (again.next_revision, again.position, again.duplicate) == (1, first.position, True)
    err = from_rpc_error(await fails(stub.Append(append(s, [batch[1], batch[0]]))))
    assert isinstance(err, AlreadyExists)
    await stub.Append(append(s, [event("Shipped")], 1))

    forwards = [e async for e in stub.ReadStream(pb.ReadStreamRequest(stream_id=s))]
    assert [(e.revision, e.type) for e in forwards] == [(0, "Created"), (1, "Paid"), (2, "Shipped")]
    assert forwards[0].metadata["corr"] == "c1"
    assert forwards[0].data == b'{"n":1}'
    assert forwards[0].recorded_at.seconds > 0
    backwards = [
        e.revision
        async for e in stub.ReadStream(
            pb.ReadStreamRequest(stream_id=s, direction=pb.DIRECTION_BACKWARDS, from_revision=1)
        )
    ]
    assert backwards == [1, 0]
    everything = [e.position async for e in stub.ReadAll(pb.ReadAllRequest(from_position=1, max_count=2))]
    assert everything == [1, 2]
    err = from_rpc_error(await fails(stub.ReadStream(pb.ReadStreamRequest(stream_id=sid()))))
    assert isinstance(err, NotFound)


async def test_subscription_catches_up_then_streams_live(stub) -> None:  # type: ignore[no-untyped-def]
    mine, other = sid(), sid()
    await stub.Append(append(mine, [event("A"), event("Noise"), event("B")]))
    await stub.Append(append(other, [event("A")]))
    call = stub.Subscribe(pb.SubscribeRequest(stream_prefixes=[mine], event_types=["A", "B", "C"]))
    async with asyncio.timeout(20):
        got = [await call.read() for _ in range(3)]
        assert [m.event.type for m in got[:2]] == ["A", "B"]
        assert got[2].WhichOneof("content") == "caught_up"
        assert got[2].caught_up.position == 4
        await stub.Append(append(mine, [event("C")]))
        live = await call.read()
        assert (live.event.type, live.event.position, live.event.stream_id) == ("C", 5, mine)
    call.cancel()


async def test_batched_subscription_delivers_everything_in_order(stub) -> None:  # type: ignore[no-untyped-def]
    mine = sid()
    for _ in range(6):
        await stub.Append(append(mine, [event() for _ in range(50)]))
    call = stub.Subscribe(pb.SubscribeRequest(stream_prefixes=[mine], batch_size=64))
    positions: list[int] = []
    batches = 0
    async with asyncio.timeout(20):
        while True:
            message = await call.read()
            kind = message.WhichOneof("content")
            if kind == "caught_up":
                assert message.caught_up.position == 300
                break
            assert kind == "events"
            batches += 1
            assert 1 <= len(message.events.events) <= 64
            positions += [e.position for e in message.events.events]
        await stub.Append(append(mine, [event("Live")]))
        live = await call.read()
        assert [e.type for e in live.events.events] == ["Live"]
    call.cancel()
    assert positions == list(range(1, 301))
    assert batches < 300


async def test_slow_subscriber_is_disconnected(start_eventstore, stub_for, sqlite_url) -> None:  # type: ignore[no-untyped-def]
    server = start_eventstore(sqlite_url, "--subscriber-buffer-bytes", "1000000", "--poll-interval", "0.2")
    stub = stub_for(server)
    s = sid()
    call = stub.Subscribe(pb.SubscribeRequest(stream_prefixes=[s]))
    async with asyncio.timeout(60):
        first = await call.read()
        assert first.WhichOneof("content") == "caught_up"
        big = b"x" * 200_000  # the client stops reading: HTTP/2 windows fill, then the server buffer
        for _ in range(20):
            await stub.Append(append(s, [event(data=big) for _ in range(5)]))
        await asyncio.to_thread(server.proc.wait_output, "too slow", 30)
        received = 0

        async def drain() -> None:
            nonlocal received
            while (await call.read()) is not grpc.aio.EOF:
                received += 1

        with pytest.raises(grpc.aio.AioRpcError) as info:
            await drain()
        assert isinstance(from_rpc_error(info.value), ResourceExhausted)
        assert received < 100
    # the server is fine afterwards
    assert (await stub.Append(append(s, [event()]))).next_revision == 100


async def test_delete_stream_and_metadata(stub) -> None:  # type: ignore[no-untyped-def]
    s = sid()
    await stub.Append(append(s, [event(), event(), event()]))
    err = from_rpc_error(
        await fails(
            stub.DeleteStream(
                pb.DeleteStreamRequest(stream_id=s, expected_revision=pb.ExpectedRevision(exact=0))
            )
        )
    )
    assert isinstance(err, Aborted)
    assert error_metadata(err)["actual"] == "2"
    deleted = await stub.DeleteStream(pb.DeleteStreamRequest(stream_id=s))
    assert deleted.truncate_before == 3
    err = from_rpc_error(await fails(stub.ReadStream(pb.ReadStreamRequest(stream_id=s))))
    assert isinstance(err, NotFound)
    await stub.Append(append(s, [event("Back")], 2))
    assert [e.revision async for e in stub.ReadStream(pb.ReadStreamRequest(stream_id=s))] == [3]

    other = sid()
    await stub.Append(append(other, [event() for _ in range(5)]))
    meta = await stub.SetStreamMetadata(
        pb.SetStreamMetadataRequest(stream_id=other, metadata=pb.StreamMetadata(max_count=2))
    )
    assert meta.HasField("max_count")
    assert not meta.HasField("max_age_seconds")
    assert [e.revision async for e in stub.ReadStream(pb.ReadStreamRequest(stream_id=other))] == [3, 4]
    got = await stub.GetStreamMetadata(pb.GetStreamMetadataRequest(stream_id=other))
    assert got.max_count == 2
    err = from_rpc_error(await fails(stub.GetStreamMetadata(pb.GetStreamMetadataRequest(stream_id="$bad"))))
    assert isinstance(err, InvalidArgument)
    assert "stream_id" in err.field_violations()
