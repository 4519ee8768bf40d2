"""The storage contract on the PostgreSQL adapter (a real server, a fresh database per test)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from grpcmesh.services.eventstore.storage.base import Storage
from grpcmesh.services.eventstore.storage.postgres import PostgresStorage
from tests.contract.eventstore.contract import OpenStorage, StorageContract

pytestmark = pytest.mark.postgres


class TestPostgresStorage(StorageContract):
    cross_instance_poll = 60.0  # only LISTEN/NOTIFY can wake the subscriber within the test's bound

    @pytest.fixture
    async def open_storage(self, postgres_dsn: str) -> AsyncIterator[OpenStorage]:
        opened: list[Storage] = []

        async def open_one() -> Storage:
            store = PostgresStorage(postgres_dsn, pool_size=4)
            await store.open()
            opened.append(store)
            return store

        yield open_one
        for store in opened:
            await store.close()
