"""The highest committed event-store position a process knows of, as something to wait on.

Shared by the event store (wakes live subscribers after a commit) and the query bus
(a read-your-writes query waits for its projector's checkpoint).
"""

from __future__ import annotations

import asyncio

from grpcmesh.sdk.waiting import wait_set

__all__ = ["HeadWatch"]


class HeadWatch:
    """The highest committed position known in this process; wakes waiters when it moves."""

    def __init__(self) -> None:
        self.head = 0
        self._moved = asyncio.Event()

    def publish(self, head: int) -> None:
        if head > self.head:
            self.head = head
            moved, self._moved = self._moved, asyncio.Event()
            moved.set()

    async def wait_beyond(self, position: int, poll_after: float) -> None:
        """Returns when the head passes ``position``, or after ``poll_after`` s (the polling fallback)."""
        if self.head > position:
            return
        await wait_set(self._moved, poll_after)
