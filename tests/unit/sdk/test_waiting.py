"""Bounded waits and task shutdown that keep cancellations (the 3.11 ``wait_for`` trap)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from grpcmesh.sdk.waiting import cancel_and_wait, wait_set


async def test_wait_set_reports_whether_the_event_fired() -> None:
    event = asyncio.Event()
    assert await wait_set(event, 0.01) is False
    event.set()
    assert await wait_set(event, None) is True


async def test_wait_set_keeps_a_cancel_that_lands_as_the_event_fires() -> None:
    event = asyncio.Event()
    started = asyncio.Event()

    async def loop_forever() -> None:
        while True:
            started.set()
            await wait_set(event, 30.0)
            event.clear()

    task = asyncio.create_task(loop_forever())
    await wait_set(started, 5)
    event.set()
    task.cancel()  # same loop turn as the wake-up
    done, _ = await asyncio.wait({task}, timeout=5)
    assert task in done
    assert task.cancelled()


async def test_cancel_and_wait_stops_tasks_and_logs_one_that_had_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def fail() -> None:
        raise RuntimeError("boom")

    sleeper = asyncio.create_task(asyncio.Event().wait())
    failed = asyncio.create_task(fail(), name="failer")
    await asyncio.wait({failed}, timeout=5)
    with caplog.at_level(logging.WARNING, logger="grpcmesh.tasks"):
        await cancel_and_wait(sleeper, failed, None)
    assert sleeper.cancelled()
    assert "failer" in caplog.text
    assert "boom" in caplog.text


async def test_cancel_and_wait_does_not_swallow_the_callers_cancellation() -> None:
    stubborn_started = asyncio.Event()
    release = asyncio.Event()

    async def stubborn() -> None:  # takes a while to stop, like a task flushing on cancel
        try:
            stubborn_started.set()
            await asyncio.Event().wait()
        finally:
            await release.wait()

    inner = asyncio.create_task(stubborn())
    await wait_set(stubborn_started, 5)
    closer = asyncio.create_task(cancel_and_wait(inner))
    await asyncio.sleep(0)  # one turn: the closer is now waiting for the inner task
    closer.cancel()
    done, _ = await asyncio.wait({closer}, timeout=5)
    assert closer in done
    assert closer.cancelled()
    release.set()
    await asyncio.wait({inner}, timeout=5)
    assert inner.cancelled()
