"""An orchestrator over a fresh SQLite file and a scripted fake step caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from grpcmesh.services.saga.engine import Orchestrator
from tests.unit.saga.fakes import FakeCaller, orchestrator


@pytest.fixture
def caller() -> FakeCaller:
    return FakeCaller()


@pytest.fixture
async def orch(tmp_path: Path, caller: FakeCaller) -> AsyncIterator[Orchestrator]:
    engine, store = orchestrator(tmp_path, caller)
    await store.open()
    yield engine
    await engine.close()
    await store.close()
