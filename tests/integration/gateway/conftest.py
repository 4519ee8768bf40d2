"""Fixtures: a real event store process and a gateway in front of it (direct mode), redis-server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.eventstore.conftest import StartEventStore, sqlite_url, start_eventstore
from tests.support.gateway import GatewayProc, start_gateway
from tests.support.procs import ProcessGroup
from tests.support.redis import RedisServer, redis_server

__all__ = ["sqlite_url", "start_eventstore"]

StartGateway = Callable[..., GatewayProc]


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    yield from redis_server(tmp_path)


@pytest.fixture
def gateway_for(
    procs: ProcessGroup, tmp_path: Path, start_eventstore: StartEventStore, sqlite_url: str
) -> StartGateway:
    """``gateway_for(extra_toml)``: one event store (started on first use) and a gateway routed to it."""
    stores: list[int] = []

    def start(extra: str = "", *, auth: bool = True) -> GatewayProc:
        if not stores:
            stores.append(start_eventstore(sqlite_url).port)
        config = (
            extra + f'\n[discovery]\neventstore = ["127.0.0.1:{stores[0]}"]\n'
            '[services]\n"grpcmesh.api.v1.EventStore" = "eventstore"\n'
        )
        return start_gateway(procs, tmp_path, config, auth=auth)

    return start


@pytest.fixture
def gateway(gateway_for: StartGateway) -> GatewayProc:
    return gateway_for()
