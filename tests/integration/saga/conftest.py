"""Fixtures: three participant processes (shared by the module, reset per test) and
``start_orchestrator()`` running ``grpcmesh saga`` on a fresh SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.saga.helpers import Orchestrator, Participants, start_orchestrator, start_participants
from tests.support.postgres import postgres_dsn, postgres_server
from tests.support.procs import ProcessGroup

__all__ = ["postgres_dsn", "postgres_server"]


@pytest.fixture(scope="module")
def participant_procs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Participants]:
    tmp = tmp_path_factory.mktemp("participants")
    group = ProcessGroup(tmp)
    try:
        yield start_participants(group, tmp)
    finally:
        group.stop_all()


@pytest.fixture
async def participants(participant_procs: Participants) -> AsyncIterator[Participants]:
    for p in participant_procs.values():
        await p.control("Reset")
    yield participant_procs
    for p in participant_procs.values():
        await p.control("Reset")  # unblocks anything a failed test left waiting


@pytest.fixture
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The orchestrator's database: SQLite, or ``parametrize("db", ["postgres"], indirect=True)``."""
    if getattr(request, "param", "sqlite") == "postgres":
        dsn: str = request.getfixturevalue("postgres_dsn")
        return dsn
    return f"sqlite://{tmp_path / 'sagas.db'}"


@pytest.fixture
async def orchestrators(
    procs: ProcessGroup, participants: Participants, db: str
) -> AsyncIterator[Callable[..., Orchestrator]]:
    """``start(port=None)``: one more ``grpcmesh saga`` on the test's database."""
    started: list[Orchestrator] = []

    def start(port: int | None = None) -> Orchestrator:
        orch = start_orchestrator(procs, db, participants.registry, port)
        started.append(orch)
        return orch

    yield start
    for orch in started:
        await orch.close()


@pytest.fixture
def orchestrator(orchestrators: Callable[..., Orchestrator]) -> Orchestrator:
    return orchestrators()
