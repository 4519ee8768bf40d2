"""HeadWatch: a waiter cancelled just as the head moves must stop (the subscription's aclose)."""

from __future__ import annotations

import asyncio

import pytest

from grpcmesh.services.common.headwatch import HeadWatch


@pytest.mark.parametrize("turns", range(6))
async def test_cancel_is_not_lost_when_it_lands_as_the_head_moves(turns: int) -> None:
    # asyncio.wait_for on 3.11 returns the inner result and drops a cancel that arrives
    # while the woken inner wait is finishing: the cancelled loop then ran forever.
    watch = HeadWatch()
    waiting = asyncio.Event()

    async def follow() -> None:
        while True:
            waiting.set()
            await watch.wait_beyond(watch.head, poll_after=30.0)

    task = asyncio.create_task(follow())
    await asyncio.wait_for(waiting.wait(), 5)
    watch.publish(1)
    for _ in range(turns):  # let the wake-up get that far through the loop before the cancel
        await asyncio.sleep(0)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=5)
    assert task in done
    assert task.cancelled()


async def test_wait_beyond_returns_on_publish_and_on_poll_timeout() -> None:
    watch = HeadWatch()
    waiter = asyncio.create_task(watch.wait_beyond(0, poll_after=30.0))
    watch.publish(3)
    await asyncio.wait_for(waiter, 5)
    assert watch.head == 3
    await asyncio.wait_for(watch.wait_beyond(3, poll_after=0.01), 5)  # nothing moved: the poll fallback
    await asyncio.wait_for(watch.wait_beyond(2, poll_after=30.0), 5)  # already beyond: at once
