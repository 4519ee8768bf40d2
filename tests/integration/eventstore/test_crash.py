"""Crash safety: SIGKILL the service in the middle of a write load, restart it, check the log.

Every append the service acknowledged must be there, at the revisions it reported,
and no batch may be there in part (appends that were in flight may be either
complete or absent). Positions stay gap-free.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass

import grpc
import pytest

from grpcmesh.api.v1 import eventstore_pb2 as pb
from tests.integration.eventstore.helpers import append, event


@dataclass(frozen=True)
class Ack:
    stream_id: str
    ids: tuple[str, ...]
    last_revision: int
    position: int


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_dsn"))
    return str(request.getfixturevalue("sqlite_url"))


async def write_load(stub, acks: list[Ack], writers: int = 8) -> None:  # type: ignore[no-untyped-def]
    """Appends batches of 1..10 events until the server goes away; records acknowledgements."""

    async def writer(n: int) -> None:
        rng = random.Random(n)
        stream_id = f"crash-{n}-{uuid.uuid4().hex[:6]}"
        last: int | None = None
        while True:
            batch_id, size = uuid.uuid4().hex, rng.randint(1, 10)
            events = [
                event("Loaded", b"y" * rng.randint(0, 3000), batch=batch_id, size=str(size))
                for _ in range(size)
            ]
            try:
                reply = await stub.Append(append(stream_id, events, "no_stream" if last is None else last))
            except grpc.aio.AioRpcError:
                return  # the server was killed
            last = reply.next_revision
            acks.append(Ack(stream_id, tuple(e.id for e in events), reply.next_revision, reply.position))

    await asyncio.gather(*(writer(n) for n in range(writers)))


async def read_everything(stub) -> list[pb.RecordedEvent]:  # type: ignore[no-untyped-def]
    everything: list[pb.RecordedEvent] = []
    while True:
        request = pb.ReadAllRequest(from_position=len(everything) + 1, max_count=5000)
        page = [e async for e in stub.ReadAll(request)]
        if not page:
            return everything
        everything += page


async def test_sigkill_during_writes_loses_no_acknowledged_append(start_eventstore, stub_for, db_url) -> None:  # type: ignore[no-untyped-def]
    server = start_eventstore(db_url)
    stub = stub_for(server)
    acks: list[Ack] = []
    load = asyncio.create_task(write_load(stub, acks))
    async with asyncio.timeout(60):
        while len(acks) < 300:
            assert not load.done(), "write load stopped early"
            await asyncio.sleep(0.01)
        server.proc.kill()  # SIGKILL while appends are in flight
        await load

    stub = stub_for(start_eventstore(db_url))
    async with asyncio.timeout(60):
        for ack in acks:
            first = ack.last_revision - len(ack.ids) + 1
            request = pb.ReadStreamRequest(
                stream_id=ack.stream_id, from_revision=first, max_count=len(ack.ids)
            )
            got = [e async for e in stub.ReadStream(request)]
            assert tuple(e.id for e in got) == ack.ids
            assert got[-1].position == ack.position
        everything = await read_everything(stub)
    assert len(everything) >= sum(len(a.ids) for a in acks)
    assert [e.position for e in everything] == list(range(1, len(everything) + 1))
    batches: dict[str, list[pb.RecordedEvent]] = defaultdict(list)
    for e in everything:
        batches[e.metadata["batch"]].append(e)
    partial = {b: len(es) for b, es in batches.items() if len(es) != int(es[0].metadata["size"])}
    assert not partial, f"partial batches after crash: {partial}"
