"""Fixtures: the event store as a real subprocess (``grpcmesh eventstore``) and a client stub."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest

from grpcmesh.api.v1 import eventstore_pb2_grpc as pb_grpc
from tests.support.postgres import postgres_dsn, postgres_server
from tests.support.procs import ProcessGroup, ServiceProc, start_service

__all__ = ["EventStoreProc", "postgres_dsn", "postgres_server"]


EventStoreProc = ServiceProc

StartEventStore = Callable[..., EventStoreProc]


@pytest.fixture
def start_eventstore(procs: ProcessGroup) -> StartEventStore:
    """``start(db_url, *flags)`` runs ``grpcmesh eventstore`` and waits for 'listening on'."""

    def start(db: str, *flags: str, port: int | None = None) -> EventStoreProc:
        return start_service(procs, "eventstore", "--db", db, *flags, port=port)

    return start


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path / 'events.db'}"


@pytest.fixture
async def stub_for() -> AsyncIterator[Callable[[EventStoreProc], pb_grpc.EventStoreStub]]:
    channels: list[grpc.aio.Channel] = []

    def make(server: EventStoreProc) -> pb_grpc.EventStoreStub:
        channel = grpc.aio.insecure_channel(server.target)
        channels.append(channel)
        return pb_grpc.EventStoreStub(channel)

    yield make
    for channel in channels:
        await channel.close()
