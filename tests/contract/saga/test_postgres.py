"""The saga store contract on the PostgreSQL adapter (a real server, a fresh database per test)."""

from __future__ import annotations

import asyncio

import pytest

from grpcmesh.services.saga.store.base import SagaStore
from grpcmesh.services.saga.store.postgres import PostgresSagaStore
from tests.contract.saga.contract import SagaStoreContract, record

pytestmark = pytest.mark.postgres


class TestPostgresSagaStore(SagaStoreContract):
    def new_store(self, request: pytest.FixtureRequest) -> SagaStore:
        return PostgresSagaStore(request.getfixturevalue("postgres_dsn"), pool_size=2)

    async def test_racing_creates_with_one_key_agree_on_one_saga(
        self, store: SagaStore, request: pytest.FixtureRequest
    ) -> None:
        other = await self.reopen(request)
        try:
            results = await asyncio.gather(
                *(s.create(record(f"s{i}", key="shared")) for i, s in enumerate([store, other] * 4))
            )
        finally:
            await other.close()
        assert len({r.saga_id for r, _ in results}) == 1
        assert sum(created for _, created in results) == 1
