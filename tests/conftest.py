"""Shared fixtures: free ports, managed subprocesses, and the marker per folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.consul import ConsulAgent, consul_agent
from tests.support.procs import ProcessGroup, free_port

_FOLDER_MARKERS = {"unit", "contract", "integration", "e2e"}
# Every process a test starts inherits this: a crash in compiled code (the sidecar's HTTP/2 layer)
# leaves a Python traceback in that process's log instead of a silent exit.
os.environ.setdefault("PYTHONFAULTHANDLER", "1")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks each test with its folder (unit/contract/integration/e2e) for `-m` selection."""
    for item in items:
        for part in Path(str(item.fspath)).parts:
            if part in _FOLDER_MARKERS:
                item.add_marker(getattr(pytest.mark, part))


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[ProcessGroup]:
    """Start processes with ``procs.start(argv, name)``; all are stopped after the test."""
    group = ProcessGroup(tmp_path)
    try:
        yield group
    finally:
        group.stop_all()


@pytest.fixture
def consul(tmp_path: Path) -> Iterator[ConsulAgent]:
    """A started ``consul agent -dev`` on free ports; ``kill()``/``restart()`` for outages.

    Skips with a `make consul` hint when no binary is found; fails instead under CI.
    """
    yield from consul_agent(tmp_path)
