"""Bounded waits that never swallow a cancellation.

``asyncio.wait_for`` on Python 3.11 returns the inner result when a cancellation lands
while the inner wait is finishing (CPython gh-86296, fixed in 3.12); a loop around it then
ignores ``task.cancel()`` for ever. That hung the event store's subscriptions on close.
``asyncio.timeout`` counts cancellations per task and has no such window, so every bounded
wait in grpcmesh goes through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

__all__ = ["cancel_and_wait", "wait_set"]

log = logging.getLogger("grpcmesh.tasks")


async def wait_set(event: asyncio.Event, seconds: float | None) -> bool:
    """Waits up to ``seconds`` (``None``: no bound) for ``event``; returns whether it is set."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancels background tasks and returns once they have all finished.

    Unlike ``suppress(CancelledError): await task`` this does not swallow a cancellation
    of the *caller* (a shutdown that is itself cancelled still stops). A task that had
    already failed is logged, since nobody else will ever look at its exception.
    """
    live = {task for task in tasks if task is not None}
    for task in live:
        task.cancel()
    if not live:
        return
    await asyncio.wait(live)
    for task in live:
        if not task.cancelled() and (err := task.exception()) is not None:
            log.warning("background task %s had failed: %r", task.get_name(), err)
