"""The saga store contract on the SQLite adapter (a file per test)."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest

from grpcmesh.services.saga.domain import StepStatus, describe
from grpcmesh.services.saga.store.base import SagaStore, VersionConflict
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

    async def test_a_failing_write_in_a_group_commit_fails_alone(self, store: SagaStore) -> None:
        """Writes that share a transaction: one failing half-way (after it wrote) is rolled back
        and fails; the others still commit, and a version conflict fails alone as well."""
        assert isinstance(store, SQLiteSagaStore)
        made = [(await store.create(record(f"s{i}")))[0] for i in range(4)]
        moved = [r.with_step(0, status=StepStatus.RUNNING, attempts=1) for r in made]
        broken = moved[1]

        def half_written(db: sqlite3.Connection) -> None:
            db.execute("UPDATE sagas SET status = 'FAILED' WHERE saga_id = ?", (broken.saga_id,))
            raise sqlite3.IntegrityError("half-way")

        groups: list[int] = []
        commit_group = store._commit_group

        def counted(bodies: list[Any]) -> Any:
            groups.append(len(bodies))
            return commit_group(bodies)

        store._commit_group = counted  # type: ignore[method-assign]
        stale = moved[2].evolve(error="stale")  # a second version 2 of s2
        outcomes = await asyncio.gather(  # queued before the writer runs: one group
            store.save(moved[0], describe(made[0], moved[0])),
            store._write(half_written),
            store.save(stale, describe(made[2], stale)),
            store.save(moved[2], describe(made[2], moved[2])),
            store.save(moved[3], describe(made[3], moved[3])),
            return_exceptions=True,
        )
        assert groups == [5]
        assert outcomes[0] is None
        assert isinstance(outcomes[1], sqlite3.IntegrityError)
        assert [type(o) for o in outcomes[2:4]].count(VersionConflict) == 1
        assert outcomes[4] is None
        assert (await store.get(broken.saga_id)) == made[1]  # nothing of the failed write stayed
        assert (await store.get(moved[0].saga_id)) == moved[0]
        assert (await store.get(moved[3].saga_id)) == moved[3]


def test_make_store_accepts_sqlite_urls_and_names_bad_ones() -> None:
    assert isinstance(make_store("sqlite:///tmp/x.db"), SQLiteSagaStore)
    with pytest.raises(ValueError, match="sqlite:///path"):
        make_store("sqlite://")
    with pytest.raises(ValueError, match="unsupported"):
        make_store("mysql://x")
