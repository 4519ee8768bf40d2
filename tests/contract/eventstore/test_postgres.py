"""The storage contract on the PostgreSQL adapter (a real server, a fresh database per test)."""

from __future__ import annotations

import pytest

from grpcmesh.services.eventstore.storage.base import Storage
from grpcmesh.services.eventstore.storage.postgres import PostgresStorage
from tests.contract.eventstore.contract import StorageContract

pytestmark = pytest.mark.postgres


class TestPostgresStorage(StorageContract):
    cross_instance_poll = 60.0  # only LISTEN/NOTIFY can wake the subscriber within the test's bound

    def new_storage(self, request: pytest.FixtureRequest) -> Storage:
        return PostgresStorage(request.getfixturevalue("postgres_dsn"), pool_size=4)
