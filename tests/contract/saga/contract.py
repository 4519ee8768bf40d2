"""The one contract of the saga orchestrator's ``SagaStore`` port; each adapter subclasses it.

A subclass provides ``new_store(request)`` (an unopened store on a fresh database);
``reopen`` opens a second instance on the same database, as a restarted process would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from grpcmesh.services.saga.domain import SagaRecord, SagaStatus, StepRecord, StepStatus, describe
from grpcmesh.services.saga.store.base import SagaStore, VersionConflict


def record(saga_id: str, key: str = "", **changes: object) -> SagaRecord:
    base = SagaRecord(
        saga_id=saga_id,
        definition="order",
        idempotency_key=key or f"key-{saga_id}",
        input={"sku": "a-1", "qty": 2.0, "nested": {"x": [1.0, "y"]}},
        steps=(StepRecord("reserve"), StepRecord("charge")),
        created_at=1000.0,
        updated_at=1000.0,
    )
    return base if not changes else base.evolve(**changes)


async def save(store: SagaStore, rec: SagaRecord) -> None:
    """Saves ``rec`` with the history event of its transition from the stored version."""
    await store.save(rec, describe(await store.get(rec.saga_id), rec))


class SagaStoreContract:
    def new_store(self, request: pytest.FixtureRequest) -> SagaStore:
        raise NotImplementedError

    @pytest.fixture
    async def store(self, request: pytest.FixtureRequest) -> AsyncIterator[SagaStore]:
        store = self.new_store(request)
        await store.open()
        yield store
        await store.close()

    async def reopen(self, request: pytest.FixtureRequest) -> SagaStore:
        store = self.new_store(request)
        await store.open()
        return store

    async def test_create_then_get_round_trips_every_field(self, store: SagaStore) -> None:
        rec = record("s1")
        stored, created = await store.create(rec)
        assert created
        assert stored == rec
        assert await store.get("s1") == rec
        assert await store.get("nope") is None

    async def test_create_is_idempotent_by_key(self, store: SagaStore) -> None:
        first, _ = await store.create(record("s1", key="order-7"))
        again, created = await store.create(record("s2", key="order-7"))
        assert not created
        assert again.saga_id == "s1" == first.saga_id
        assert await store.get("s2") is None

    async def test_create_with_events_stores_them_as_its_history(self, store: SagaStore) -> None:
        """The orchestrator creates a saga with its first step RUNNING: two versions, one commit."""
        initial = record("s1", key="order-8")
        started = initial.with_step(0, status=StepStatus.RUNNING, attempts=1)
        stored, created = await store.create(started, describe(None, initial), describe(initial, started))
        assert created
        assert await store.get("s1") == stored == started
        history = await store.history("s1")
        assert [(e.version, e.step, e.step_status) for e in history] == [
            (1, "", None),
            (2, "reserve", StepStatus.RUNNING),
        ]
        again, created = await store.create(record("s2", key="order-8"))
        assert not created
        assert again == started
        assert len(await store.history("s1")) == 2

    async def test_save_is_a_compare_and_set_on_version(self, store: SagaStore) -> None:
        rec, _ = await store.create(record("s1"))
        nxt = rec.with_step(0, status=StepStatus.RUNNING, attempts=1)
        await save(store, nxt)
        assert await store.get("s1") == nxt
        with pytest.raises(VersionConflict):
            await save(store, nxt)  # stored is already at nxt.version
        with pytest.raises(VersionConflict):
            await save(store, rec.evolve().evolve().evolve())  # skips versions
        assert (await store.get("s1")) == nxt

    async def test_saved_state_survives_a_reopen(
        self, store: SagaStore, request: pytest.FixtureRequest
    ) -> None:
        rec, _ = await store.create(record("s1"))
        done = rec.with_step(0, status=StepStatus.SUCCEEDED, result={"id": "r-1"})
        await save(store, done)
        other = await self.reopen(request)
        try:
            assert await other.get("s1") == done
        finally:
            await other.close()

    async def test_unfinished_lists_running_and_compensating_oldest_first(self, store: SagaStore) -> None:
        for sid in ("a", "b", "c", "d"):
            await store.create(record(sid))
        b = await store.get("b")
        c = await store.get("c")
        d = await store.get("d")
        assert b
        assert c
        assert d
        await save(store, b.evolve(status=SagaStatus.COMPLETED))
        await save(store, c.evolve(status=SagaStatus.COMPENSATING))
        await save(store, d.evolve(status=SagaStatus.FAILED))
        assert [r.saga_id for r in await store.unfinished()] == ["a", "c"]

    async def test_page_in_creation_order_with_status_filter(self, store: SagaStore) -> None:
        for sid in ("a", "b", "c", "d", "e"):
            await store.create(record(sid))
        c = await store.get("c")
        assert c
        await save(store, c.evolve(status=SagaStatus.COMPLETED))
        first = await store.page(None, 0, 2)
        assert [r.saga_id for _, r in first] == ["a", "b"]
        rest = await store.page(None, first[-1][0], 10)
        assert [r.saga_id for _, r in rest] == ["c", "d", "e"]
        running = await store.page(SagaStatus.RUNNING, 0, 10)
        assert [r.saga_id for _, r in running] == ["a", "b", "d", "e"]
        assert [r.saga_id for _, r in await store.page(SagaStatus.COMPLETED, 0, 10)] == ["c"]
        assert await store.page(SagaStatus.ABORTED, 0, 10) == []

    async def test_history_records_every_transition_atomically(self, store: SagaStore) -> None:
        rec, _ = await store.create(record("s1"))
        running = rec.with_step(0, status=StepStatus.RUNNING, attempts=1)
        await save(store, running)
        failed = running.with_step(
            0, status=StepStatus.FAILED, error="boom", saga_status=SagaStatus.COMPENSATING
        )
        await save(store, failed)
        with pytest.raises(VersionConflict):
            await store.save(running, describe(rec, running))  # a stale write adds no event
        events = await store.history("s1")
        assert [e.version for e in events] == [1, 2, 3]
        assert (events[0].status, events[0].step) == (SagaStatus.RUNNING, "")
        assert (events[1].step, events[1].step_status, events[1].attempt) == (
            "reserve",
            StepStatus.RUNNING,
            1,
        )
        assert (events[2].status, events[2].step_status, events[2].error) == (
            SagaStatus.COMPENSATING,
            StepStatus.FAILED,
            "boom",
        )
        assert events[2].at == failed.updated_at
        assert await store.history("other") == []

    async def test_consecutive_transitions_commit_together_an_event_each(self, store: SagaStore) -> None:
        rec, _ = await store.create(record("s1"))
        running = rec.with_step(0, status=StepStatus.RUNNING, attempts=1)
        done = running.with_step(0, status=StepStatus.SUCCEEDED, result={"r": 1.0})
        nxt = done.with_step(1, status=StepStatus.RUNNING, attempts=1)
        await store.save(running, describe(rec, running))
        with pytest.raises(VersionConflict):  # based on version 1, but the store is at 2
            await store.save(done, describe(rec, running), describe(running, done))
        await store.save(nxt, describe(running, done), describe(done, nxt))
        assert await store.get("s1") == nxt
        events = await store.history("s1")
        assert [(e.version, e.step, e.step_status) for e in events[1:]] == [
            (2, "reserve", StepStatus.RUNNING),
            (3, "reserve", StepStatus.SUCCEEDED),
            (4, "charge", StepStatus.RUNNING),
        ]

    async def test_concurrent_writes_commit_each_and_a_conflict_fails_alone(self, store: SagaStore) -> None:
        created = await asyncio.gather(*(store.create(record(f"s{i}")) for i in range(10)))
        assert all(ok for _, ok in created)
        nexts = [rec.with_step(0, status=StepStatus.RUNNING, attempts=1) for rec, _ in created]
        stale = created[0][0].evolve(error="stale")  # also version 2: loses to nexts[0]
        outcomes = await asyncio.gather(
            *(store.save(n, describe(rec, n)) for (rec, _), n in zip(created, nexts, strict=True)),
            store.save(stale, describe(created[0][0], stale)),
            store.create(record("dup", key="key-s3")),
            return_exceptions=True,
        )
        assert outcomes[:10] == [None] * 10
        assert isinstance(outcomes[10], VersionConflict)
        assert outcomes[11] == (nexts[3], False) or outcomes[11] == (created[3][0], False)
        for n in nexts:
            assert await store.get(n.saga_id) == n
            assert [e.version for e in await store.history(n.saga_id)] == [1, 2]
