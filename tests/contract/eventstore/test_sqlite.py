"""The storage contract on the SQLite adapter (a file per test)."""

from __future__ import annotations

import pytest

from grpcmesh.services.eventstore.storage.base import Storage
from grpcmesh.services.eventstore.storage.sqlite import SQLiteStorage
from tests.contract.eventstore.contract import StorageContract


class TestSQLiteStorage(StorageContract):
    def new_storage(self, request: pytest.FixtureRequest) -> Storage:
        return SQLiteStorage(request.getfixturevalue("tmp_path") / "events.db")
