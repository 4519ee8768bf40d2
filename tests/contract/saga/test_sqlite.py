"""The saga store contract on the SQLite adapter (a file per test)."""

from __future__ import annotations

import sqlite3

import pytest

from grpcmesh.services.saga.store.base import SagaStore
from grpcmesh.services.saga.store.factory import make_store
from grpcmesh.services.saga.store.sqlite import SQLiteSagaStore
from tests.contract.saga.contract import SagaStoreContract, record


class TestSQLiteSagaStore(SagaStoreContract):
    def new_store(self, request: pytest.FixtureRequest) -> SagaStore:
        return SQLiteSagaStore(str(request.getfixturevalue("tmp_path") / "sagas.db"))

    async def test_database_is_in_wal_mode(self, store: SagaStore) -> None:
        await store.create(record("s1"))
        assert isinstance(store, SQLiteSagaStore)
        db = sqlite3.connect(store.path)
        try:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            db.close()


def test_make_store_accepts_sqlite_urls_and_names_bad_ones() -> None:
    assert isinstance(make_store("sqlite:///tmp/x.db"), SQLiteSagaStore)
    with pytest.raises(ValueError, match="sqlite:///path"):
        make_store("sqlite://")
    with pytest.raises(ValueError, match="unsupported"):
        make_store("mysql://x")
