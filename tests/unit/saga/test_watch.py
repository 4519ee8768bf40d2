"""WatchHub bounds: concurrent watchers and transitions a watcher may lag."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from grpcmesh.services.saga.domain import SagaRecord
from grpcmesh.services.saga.watch import TooManyWatchers, WatcherTooSlow, WatchHub


def record(version: int, saga_id: str = "s-1") -> SagaRecord:
    base = SagaRecord(saga_id=saga_id, definition="d", idempotency_key="k", input={}, steps=())
    return dataclasses.replace(base, version=version)


async def test_a_watcher_gets_transitions_in_order() -> None:
    hub = WatchHub()
    with hub.subscribe("s-1") as queue:
        hub.publish(record(2))
        hub.publish(record(3, saga_id="other"))
        hub.publish(record(4))
        async with asyncio.timeout(5):
            assert [(await queue.get()).version for _ in range(2)] == [2, 4]
    assert hub.watchers == 0


async def test_a_watcher_too_far_behind_is_ended() -> None:
    hub = WatchHub(max_pending=3)
    with hub.subscribe("s-1") as queue:
        for v in range(2, 7):
            hub.publish(record(v))
        with pytest.raises(WatcherTooSlow, match="more than 3 transitions"):
            async with asyncio.timeout(5):
                await queue.get()


def test_watchers_beyond_the_limit_are_refused() -> None:
    hub = WatchHub(max_watchers=2)
    with hub.subscribe("a"), hub.subscribe("b"):
        refused = hub.subscribe("c")
        with pytest.raises(TooManyWatchers, match="limit is 2"):
            refused.__enter__()
    with hub.subscribe("c"):
        assert hub.watchers == 1
