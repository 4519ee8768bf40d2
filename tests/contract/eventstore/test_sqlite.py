"""The storage contract on the SQLite adapter (a file per test)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from grpcmesh.services.eventstore.storage.base import Storage
from grpcmesh.services.eventstore.storage.sqlite import SQLiteStorage
from tests.contract.eventstore.contract import OpenStorage, StorageContract


class TestSQLiteStorage(StorageContract):
    @pytest.fixture
    async def open_storage(self, tmp_path: Path) -> AsyncIterator[OpenStorage]:
        opened: list[Storage] = []

        async def open_one() -> Storage:
            store = SQLiteStorage(tmp_path / "events.db")
            await store.open()
            opened.append(store)
            return store

        yield open_one
        for store in opened:
            await store.close()
