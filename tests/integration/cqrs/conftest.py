"""Fixtures: event store, command bus and query bus as real processes, and SDK clients to them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from grpcmesh.api.v1 import commandbus_pb2_grpc as cb_grpc
from grpcmesh.api.v1 import eventstore_pb2_grpc as es_grpc
from grpcmesh.api.v1 import querybus_pb2_grpc as qb_grpc
from grpcmesh.sdk import AsyncMeshClient
from tests.support.procs import ProcessGroup, ServiceProc, start_service


@dataclass
class Stubs:
    commands: cb_grpc.CommandBusStub
    queries: qb_grpc.QueryBusStub
    events: es_grpc.EventStoreStub


@dataclass
class Mesh:
    """The three services of one test; restart the query bus with :meth:`start_querybus`."""

    procs: ProcessGroup
    tmp: Path
    eventstore: ServiceProc
    commandbus: ServiceProc
    querybus: ServiceProc | None = None

    def start_querybus(self, port: int | None = None) -> ServiceProc:
        self.querybus = start_service(
            self.procs,
            "querybus",
            "--eventstore",
            self.eventstore.address,
            "--db",
            str(self.tmp / "readmodels.db"),
            port=port or (self.querybus.port if self.querybus else None),
        )
        return self.querybus


def _mesh(procs: ProcessGroup, tmp: Path) -> Mesh:
    eventstore = start_service(procs, "eventstore", "--db", f"sqlite://{tmp / 'events.db'}")
    commandbus = start_service(procs, "commandbus", "--eventstore", eventstore.address)
    m = Mesh(procs, tmp, eventstore, commandbus)
    m.start_querybus()
    return m


@pytest.fixture
def mesh(procs: ProcessGroup, tmp_path: Path) -> Mesh:
    """A mesh of this test only (for tests that stop or restart a process)."""
    return _mesh(procs, tmp_path)


@pytest.fixture(scope="module")
def shared_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    """One mesh per test module; tests keep apart by using their own orders."""
    tmp = tmp_path_factory.mktemp("cqrs")
    group = ProcessGroup(tmp)
    try:
        yield _mesh(group, tmp)
    finally:
        group.stop_all()


@asynccontextmanager
async def connect(mesh: Mesh) -> AsyncIterator[Stubs]:
    """SDK stubs (direct mode) to the mesh's three services."""
    assert mesh.querybus is not None
    discovery = {
        "commandbus": [mesh.commandbus.address],
        "querybus": [mesh.querybus.address],
        "eventstore": [mesh.eventstore.address],
    }
    async with AsyncMeshClient("tests", discovery=discovery, timeout=10, retry=False) as client:
        yield Stubs(
            client.stub(cb_grpc.CommandBusStub, target="commandbus"),
            client.stub(qb_grpc.QueryBusStub, target="querybus"),
            client.stub(es_grpc.EventStoreStub, target="eventstore"),
        )


@pytest.fixture
async def stubs(shared_mesh: Mesh) -> AsyncIterator[Stubs]:
    async with connect(shared_mesh) as s:
        yield s
