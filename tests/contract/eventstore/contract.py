"""The one contract of the event store's ``Storage`` port; each adapter subclasses it.

A subclass provides ``open_storage`` (an async factory that opens another instance on
the same database, as a second process would) and inherits every test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from grpcmesh.services.eventstore.domain import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    DuplicateEventId,
    ExpectedRevision,
    StreamMetadata,
    WrongExpectedRevision,
    exact,
)
from grpcmesh.services.eventstore.storage.base import Storage
from tests.contract.eventstore.contract_subscriptions import SubscriptionContract
from tests.contract.eventstore.events import OpenStorage, ev, stream

KINDS: dict[str, ExpectedRevision] = {
    "any": ANY,
    "no_stream": NO_STREAM,
    "stream_exists": STREAM_EXISTS,
    "exact_0": exact(0),
    "exact_2": exact(2),
    "exact_5": exact(5),
}
# stream state (None: no stream, else last revision) x expected kind -> accepted?
MATRIX = [
    (None, "any", True),
    (None, "no_stream", True),
    (None, "stream_exists", False),
    (None, "exact_0", False),
    (None, "exact_5", False),
    (0, "any", True),
    (0, "no_stream", False),
    (0, "stream_exists", True),
    (0, "exact_0", True),
    (0, "exact_2", False),
    (2, "any", True),
    (2, "no_stream", False),
    (2, "stream_exists", True),
    (2, "exact_2", True),
    (2, "exact_0", False),
    (2, "exact_5", False),
]


class StorageContract(SubscriptionContract):
    """Subclass and implement ``new_storage`` (an unopened adapter on this test's database)."""

    def new_storage(self, request: pytest.FixtureRequest) -> Storage:
        raise NotImplementedError

    @pytest.fixture
    async def open_storage(self, request: pytest.FixtureRequest) -> AsyncIterator[OpenStorage]:
        """Opens instances on the same database (as separate processes would); closes them after."""
        opened: list[Storage] = []

        async def open_one() -> Storage:
            store = self.new_storage(request)
            await store.open()
            opened.append(store)
            return store

        yield open_one
        for store in opened:
            await store.close()

    @pytest.fixture
    async def storage(self, open_storage: OpenStorage) -> Storage:
        return await open_storage()

    async def fill(self, storage: Storage, stream_id: str, last_revision: int | None) -> None:
        if last_revision is not None:
            await storage.append(stream_id, NO_STREAM, [ev() for _ in range(last_revision + 1)])

    # -- expected revision -----------------------------------------------------------------------
    @pytest.mark.parametrize(("state", "kind", "accepted"), MATRIX)
    async def test_expected_revision_matrix(
        self, storage: Storage, state: int | None, kind: str, accepted: bool
    ) -> None:
        sid = stream()
        await self.fill(storage, sid, state)
        events = [ev("A"), ev("B")]
        if accepted:
            result = await storage.append(sid, KINDS[kind], events)
            first = 0 if state is None else state + 1
            assert result.next_revision == first + 1
            assert not result.duplicate
            assert await storage.stream_revision(sid) == first + 1
        else:
            with pytest.raises(WrongExpectedRevision) as info:
                await storage.append(sid, KINDS[kind], events)
            assert info.value.actual == state
            assert info.value.stream_id == sid
            assert await storage.stream_revision(sid) == state

    # -- idempotency ----------------------------------------------------------------------------
    @pytest.mark.parametrize("kind", ["any", "no_stream", "stream_exists", "exact"])
    async def test_retry_of_same_append_returns_original_result(self, storage: Storage, kind: str) -> None:
        sid = stream()
        if kind in ("stream_exists", "exact"):
            await self.fill(storage, sid, 0)
        expected = {"any": ANY, "no_stream": NO_STREAM, "stream_exists": STREAM_EXISTS, "exact": exact(0)}[
            kind
        ]
        batch = [ev("A"), ev("B"), ev("C")]
        first = await storage.append(sid, expected, batch)
        again = await storage.append(sid, expected, batch)
        assert (again.next_revision, again.position, again.duplicate) == (
            first.next_revision,
            first.position,
            True,
        )
        # still idempotent after the stream moved on
        await storage.append(sid, ANY, [ev()])
        later = await storage.append(sid, expected, batch)
        assert (later.next_revision, later.position, later.duplicate) == (
            first.next_revision,
            first.position,
            True,
        )
        events = await storage.read_stream(sid)
        assert len({e.id for e in events}) == len(events) == first.next_revision + 2

    async def test_single_event_retry_is_idempotent(self, storage: Storage) -> None:
        sid, e = stream(), ev()
        first = await storage.append(sid, ANY, [e])
        assert await storage.append(sid, ANY, [e]) == type(first)(first.next_revision, first.position, True)

    async def test_partial_overlap_is_rejected_and_writes_nothing(self, storage: Storage) -> None:
        sid = stream()
        a, b = ev(), ev()
        await storage.append(sid, ANY, [a])
        with pytest.raises(DuplicateEventId) as info:
            await storage.append(sid, ANY, [b, a])
        assert info.value.index == 1
        assert [e.id for e in await storage.read_stream(sid)] == [a.id]

    async def test_event_ids_are_idempotency_keys_per_stream(self, storage: Storage) -> None:
        a = ev()
        first = await storage.append(stream(), ANY, [a])
        other = stream()
        result = await storage.append(other, ANY, [a])  # another stream: a new event, not a retry
        assert not result.duplicate
        assert result.position == first.position + 1
        assert [e.id for e in await storage.read_stream(other)] == [a.id]

    async def test_reordered_retry_is_rejected(self, storage: Storage) -> None:
        sid = stream()
        a, b = ev(), ev()
        await storage.append(sid, ANY, [a, b])
        with pytest.raises(DuplicateEventId):
            await storage.append(sid, ANY, [b, a])
        assert len(await storage.read_stream(sid)) == 2

    # -- atomic batch and ordering -----------------------------------------------------------------
    async def test_batch_is_atomic_and_contiguous(self, storage: Storage) -> None:
        sid = stream()
        before = await storage.head_position()
        batch = [ev(f"T{i}", bytes([i]) * 10, n=str(i)) for i in range(50)]
        result = await storage.append(sid, NO_STREAM, batch)
        assert result.next_revision == 49
        assert result.position == before + 50
        read = await storage.read_stream(sid)
        assert [(e.id, e.revision, e.position) for e in read] == [
            (p.id, i, before + 1 + i) for i, p in enumerate(batch)
        ]
        assert read[7].data == bytes([7]) * 10
        assert read[7].metadata == {"n": "7"}
        assert read[7].type == "T7"
        assert read[7].content_type == "application/json"
        assert read[7].recorded_at.year >= 2024

    async def test_failed_batch_writes_nothing(self, storage: Storage) -> None:
        sid = stream()
        taken = ev()
        await storage.append(sid, ANY, [taken])
        head = await storage.head_position()
        with pytest.raises(DuplicateEventId):
            await storage.append(sid, ANY, [ev(), ev(), taken])
        with pytest.raises(WrongExpectedRevision):
            await storage.append(sid, exact(3), [ev(), ev()])
        assert await storage.head_position() == head
        assert [e.id for e in await storage.read_stream(sid)] == [taken.id]

    async def test_read_stream_directions_and_limits(self, storage: Storage) -> None:
        sid = stream()
        await storage.append(sid, ANY, [ev(str(i)) for i in range(10)])
        assert [e.revision for e in await storage.read_stream(sid, from_revision=3, max_count=4)] == [
            3,
            4,
            5,
            6,
        ]
        assert [e.revision for e in await storage.read_stream(sid, backwards=True, max_count=3)] == [9, 8, 7]
        back = await storage.read_stream(sid, backwards=True, from_revision=2)
        assert [e.revision for e in back] == [2, 1, 0]
        assert await storage.read_stream(sid, from_revision=10) == []
        assert await storage.read_stream(stream()) == []

    async def test_read_all_is_gap_free_in_commit_order_with_filters(self, storage: Storage) -> None:
        start = await storage.head_position()
        a, b = "cart-" + stream(), "user-" + stream()
        for _i in range(5):
            await storage.append(a, ANY, [ev("Added"), ev("Removed")])
            await storage.append(b, ANY, [ev("Renamed")])
        everything = await storage.read_all(start, 100)
        assert [e.position for e in everything] == list(range(start + 1, start + 16))
        assert await storage.head_position() == start + 15
        page = await storage.read_all(start + 3, 4, upto=start + 5)
        assert [e.position for e in page] == [start + 4, start + 5]
        carts = await storage.read_all(start, 100, stream_prefixes=["cart-", "nope-"], event_types=["Added"])
        assert [e.type for e in carts] == ["Added"] * 5
        assert {e.stream_id for e in carts} == {a}
        assert len(await storage.read_all(start, 100, stream_prefixes=["user-"])) == 5

    async def test_survives_reopen(self, storage: Storage, open_storage: OpenStorage) -> None:
        sid = stream()
        result = await storage.append(sid, NO_STREAM, [ev(), ev()])
        await storage.close()
        again = await open_storage()
        assert [e.revision for e in await again.read_stream(sid)] == [0, 1]
        assert await again.head_position() >= result.position

    # -- stream metadata and soft delete --------------------------------------------------------
    async def test_soft_delete_hides_the_stream_and_revisions_continue(self, storage: Storage) -> None:
        sid = stream()
        await storage.append(sid, ANY, [ev(), ev(), ev()])
        head = await storage.head_position()
        with pytest.raises(WrongExpectedRevision):
            await storage.delete_stream(sid, exact(1))
        meta = await storage.delete_stream(sid, exact(2))
        assert meta == StreamMetadata(truncate_before=3)
        assert await storage.read_stream(sid) == []
        assert await storage.stream_revision(sid) == 2  # expected-revision checks still see the history
        assert len(await storage.read_all(head - 3, 10)) == 3  # the log keeps everything
        result = await storage.append(sid, exact(2), [ev("Again")])
        assert result.next_revision == 3
        assert [(e.revision, e.type) for e in await storage.read_stream(sid)] == [(3, "Again")]
        assert await storage.delete_stream(stream(), ANY) == StreamMetadata()  # nothing to delete

    async def test_max_count_and_truncate_before(self, storage: Storage) -> None:
        sid = stream()
        await storage.append(sid, ANY, [ev(str(i)) for i in range(10)])
        assert await storage.get_stream_metadata(sid) == StreamMetadata()
        await storage.set_stream_metadata(sid, StreamMetadata(max_count=4))
        assert [e.revision for e in await storage.read_stream(sid)] == [6, 7, 8, 9]
        assert [e.revision for e in await storage.read_stream(sid, backwards=True, max_count=2)] == [9, 8]
        await storage.set_stream_metadata(sid, StreamMetadata(max_count=4, truncate_before=8))
        assert [e.revision for e in await storage.read_stream(sid)] == [8, 9]
        assert await storage.get_stream_metadata(sid) == StreamMetadata(max_count=4, truncate_before=8)

    async def test_max_age_hides_old_events(self, storage: Storage) -> None:
        sid = stream()
        await storage.append(sid, ANY, [ev()])
        await storage.set_stream_metadata(sid, StreamMetadata(max_age_seconds=3600))
        assert len(await storage.read_stream(sid)) == 1
        await storage.set_stream_metadata(sid, StreamMetadata(max_age_seconds=0))
        assert await storage.read_stream(sid) == []

    # -- concurrency ----------------------------------------------------------------------------
    async def test_concurrent_writers_on_one_stream(
        self, storage: Storage, open_storage: OpenStorage
    ) -> None:
        """N writers x M appends, exact expected revision, retry on conflict: N*M events, no gaps."""
        writers, appends = 6, 15
        other = await open_storage()  # a second instance on the same database (another process)
        sid = stream()
        conflicts = 0

        async def writer(store: Storage, n: int) -> list[str]:
            nonlocal conflicts
            ids = []
            for _ in range(appends):
                e = ev(f"W{n}")
                while True:
                    current = await store.stream_revision(sid)
                    expected = NO_STREAM if current is None else exact(current)
                    try:
                        await store.append(sid, expected, [e])
                        break
                    except WrongExpectedRevision:
                        conflicts += 1
                ids.append(e.id)
            return ids

        written = await asyncio.gather(*(writer(storage if n % 2 else other, n) for n in range(writers)))
        events = await storage.read_stream(sid, max_count=10_000)
        assert [e.revision for e in events] == list(range(writers * appends))
        assert sorted(e.id for e in events) == sorted(i for ids in written for i in ids)
        positions = [e.position for e in events]
        assert positions == sorted(positions)
        assert len(set(positions)) == len(positions)
        whole = await storage.read_all(0, 100_000)
        assert [e.position for e in whole] == list(range(1, len(whole) + 1))
