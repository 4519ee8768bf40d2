"""Subscription part of the storage contract: catch-up boundary, live wake-ups, backpressure.

Mixed into :class:`tests.contract.eventstore.contract.StorageContract`; uses its fixtures
(``storage``, ``open_storage``) and helpers.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from grpcmesh.services.eventstore.domain import ANY, CaughtUp, RecordedEvent
from grpcmesh.services.eventstore.storage.base import Storage
from grpcmesh.services.eventstore.subscriptions import SubscriberTooSlow, Subscription, SubscriptionConfig
from tests.contract.eventstore.events import OpenStorage, ev, stream


class SubscriptionContract:
    # Poll interval for a subscriber woken by a write in *another* instance: adapters that
    # push a hint across processes (PostgreSQL NOTIFY) set it high to prove the hint works.
    cross_instance_poll: float = 0.2

    # -- subscriptions --------------------------------------------------------------------------
    async def test_subscription_catch_up_boundary_exactly_once(self, storage: Storage) -> None:
        prefix = f"sub{uuid.uuid4().hex[:6]}-"
        start = await storage.head_position()
        for i in range(60):
            await storage.append(f"{prefix}{i % 3}", ANY, [ev("Seen"), ev("Ignored")])
        sub = Subscription(
            storage,
            start,
            stream_prefixes=[prefix],
            event_types=["Seen"],
            config=SubscriptionConfig(page_size=7, poll_interval=0.2),
        )
        got: list[RecordedEvent] = []
        marks: list[CaughtUp] = []
        total = 120

        async def write_more() -> None:  # writes while the subscriber is still replaying
            for i in range(total - 60):
                await storage.append(f"{prefix}{i % 3}", ANY, [ev("Seen"), ev("Ignored")])
                await storage.append(f"other-{i}", ANY, [ev("Seen")])

        writer: asyncio.Task[None] | None = None
        try:
            async with asyncio.timeout(30):
                async for item in sub:
                    if isinstance(item, CaughtUp):
                        marks.append(item)
                        continue
                    got.append(item)
                    if writer is None:
                        writer = asyncio.create_task(write_more())
                    if len(got) == total:
                        break
        finally:
            await sub.aclose()
            if writer is not None:
                await writer
        assert len(marks) == 1
        assert all(e.type == "Seen" and e.stream_id.startswith(prefix) for e in got)
        positions = [e.position for e in got]
        assert positions == sorted(positions)
        assert len(set(positions)) == total
        expected = [
            e.position
            for e in await storage.read_all(start, 10_000, stream_prefixes=[prefix])
            if e.type == "Seen"
        ]
        assert positions == expected

    async def test_subscription_marks_caught_up_then_goes_live(self, storage: Storage) -> None:
        sid = stream()
        await storage.append(sid, ANY, [ev()])
        head = await storage.head_position()
        sub = Subscription(
            storage, head - 1, stream_prefixes=[sid], config=SubscriptionConfig(poll_interval=5.0)
        )
        try:
            async with asyncio.timeout(10):
                first = await anext(sub)
                assert isinstance(first, RecordedEvent)
                assert first.position == head
                mark = await anext(sub)
                assert mark == CaughtUp(head)
                await storage.append(sid, ANY, [ev("Live")])
                live = await anext(sub)  # woken by the in-process watch, long before the 5 s poll
                assert isinstance(live, RecordedEvent)
                assert live.type == "Live"
        finally:
            await sub.aclose()

    async def test_many_concurrent_subscribers_each_get_everything_in_order(self, storage: Storage) -> None:
        prefix = f"many{uuid.uuid4().hex[:6]}-"
        start = await storage.head_position()
        subs = [
            Subscription(
                storage, start, stream_prefixes=[prefix], config=SubscriptionConfig(poll_interval=0.5)
            )
            for _ in range(20)
        ]
        total = 60

        async def collect(sub: Subscription) -> list[int]:
            positions: list[int] = []
            async for item in sub:
                if isinstance(item, RecordedEvent):
                    positions.append(item.position)
                    if len(positions) == total:
                        return positions
            return positions

        try:
            async with asyncio.timeout(30):
                readers = [asyncio.create_task(collect(sub)) for sub in subs]
                for i in range(total // 2):
                    await storage.append(f"{prefix}{i % 4}", ANY, [ev(), ev()])
                results = await asyncio.gather(*readers)
        finally:
            for sub in subs:
                await sub.aclose()
        expected = [e.position for e in await storage.read_all(start, 1000, stream_prefixes=[prefix])]
        assert len(expected) == total
        assert all(r == expected for r in results)

    async def test_live_wakeup_from_another_instance(
        self, storage: Storage, open_storage: OpenStorage
    ) -> None:
        writer = await open_storage()  # as another process would
        sid = stream()
        sub = Subscription(
            storage,
            await storage.head_position(),
            stream_prefixes=[sid],
            config=SubscriptionConfig(poll_interval=self.cross_instance_poll),
        )
        try:
            async with asyncio.timeout(10):
                assert isinstance(await anext(sub), CaughtUp)
                await writer.append(sid, ANY, [ev("Remote")])
                got = await anext(sub)
                assert isinstance(got, RecordedEvent)
                assert got.type == "Remote"
        finally:
            await sub.aclose()

    async def test_slow_live_subscriber_is_disconnected(self, storage: Storage) -> None:
        sid = stream()
        overflowed = asyncio.Event()
        sub = Subscription(
            storage,
            await storage.head_position(),
            stream_prefixes=[sid],
            config=SubscriptionConfig(buffer_bytes=3000, poll_interval=0.1),
            on_overflow=overflowed.set,
        )
        try:
            async with asyncio.timeout(10):
                assert isinstance(await anext(sub), CaughtUp)
                for _ in range(3):
                    await storage.append(sid, ANY, [ev() for _ in range(4)])
                await overflowed.wait()
                with pytest.raises(SubscriberTooSlow):
                    await anext(sub)
        finally:
            await sub.aclose()

    async def test_replay_slots_bound_catch_ups_and_a_stalled_client_frees_its_slot(
        self, storage: Storage
    ) -> None:
        """One replay slot: a subscriber that reads one event and stalls holds the slot only for
        ``replay_hold`` (without the hold limit it would keep it, and the other would never catch up)."""
        sid = stream()
        start = await storage.head_position()
        for _ in range(5):
            await storage.append(sid, ANY, [ev() for _ in range(10)])
        slots = asyncio.Semaphore(1)
        config = SubscriptionConfig(page_size=10, poll_interval=0.2, replay_hold=0.2)
        stalled = Subscription(storage, start, stream_prefixes=[sid], config=config, replay_slots=slots)
        reader = Subscription(storage, start, stream_prefixes=[sid], config=config, replay_slots=slots)
        try:
            async with asyncio.timeout(20):
                assert isinstance(await anext(stalled), RecordedEvent)  # then it stops reading
                got = 0
                async for item in reader:
                    if isinstance(item, CaughtUp):
                        break
                    got += 1
            assert got == 50
            assert not slots.locked()  # the stalled subscriber gave its slot back
        finally:
            await stalled.aclose()
            await reader.aclose()
