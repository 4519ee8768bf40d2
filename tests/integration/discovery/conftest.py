"""Fixtures for discovery integration tests: a real Consul agent per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.consul import ConsulAgent, consul_agent


@pytest.fixture
def consul(tmp_path: Path) -> Iterator[ConsulAgent]:
    """A started ``consul agent -dev`` on free ports; ``kill()``/``restart()`` for outages."""
    yield from consul_agent(tmp_path)
