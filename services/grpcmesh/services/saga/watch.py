"""Fan-out of committed saga transitions to Watch streams (in-process, per saga id).

Bounded, like every buffer of a service facing clients: at most ``max_watchers`` Watch
streams at once (one more is :class:`TooManyWatchers`), and each watcher holds at most
``max_pending`` transitions it has not sent yet; a watcher whose client stops reading
while the saga moves on is ended with :class:`WatcherTooSlow` (Watch again: it starts
from the current state), so a stalled client never makes the orchestrator hold more.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterator

from grpcmesh.services.saga.domain import SagaRecord

__all__ = ["MAX_PENDING", "MAX_WATCHERS", "TooManyWatchers", "WatchHub", "WatchQueue", "WatcherTooSlow"]

MAX_WATCHERS = 1000
MAX_PENDING = 64  # transitions; a record is at most ~256 KiB of input plus step results


class TooManyWatchers(Exception):
    """The server-wide limit of concurrent Watch streams is reached."""


class WatcherTooSlow(Exception):
    """A watcher fell more than ``max_pending`` transitions behind."""


class WatchQueue:
    """The transitions one watcher has not taken yet; ``get()`` raises once it overflowed."""

    def __init__(self, max_pending: int) -> None:
        self._records: deque[SagaRecord] = deque()
        self._max = max_pending
        self._ready = asyncio.Event()
        self.overflowed = False

    def put_nowait(self, record: SagaRecord) -> None:
        if self.overflowed:
            return
        if len(self._records) >= self._max:
            self.overflowed = True
            self._records.clear()  # nothing more will be sent: free it now
        else:
            self._records.append(record)
        self._ready.set()

    async def get(self) -> SagaRecord:
        while not self._records:
            if self.overflowed:
                raise WatcherTooSlow(
                    f"the watcher fell more than {self._max} transitions behind; Watch again"
                )
            self._ready.clear()
            await self._ready.wait()
        return self._records.popleft()


class WatchHub:
    def __init__(self, max_watchers: int = MAX_WATCHERS, max_pending: int = MAX_PENDING) -> None:
        self._queues: dict[str, set[WatchQueue]] = {}
        self._max_watchers = max_watchers
        self._max_pending = max_pending
        self.watchers = 0

    @contextlib.contextmanager
    def subscribe(self, saga_id: str) -> Iterator[WatchQueue]:
        """A queue of every record of ``saga_id`` committed while the block runs."""
        if self.watchers >= self._max_watchers:
            raise TooManyWatchers(
                f"too many concurrent Watch streams: the limit is {self._max_watchers}; retry later"
            )
        queue = WatchQueue(self._max_pending)
        self._queues.setdefault(saga_id, set()).add(queue)
        self.watchers += 1
        try:
            yield queue
        finally:
            self.watchers -= 1
            queues = self._queues.get(saga_id, set())
            queues.discard(queue)
            if not queues:
                self._queues.pop(saga_id, None)

    def publish(self, record: SagaRecord) -> None:
        for queue in self._queues.get(record.saga_id, ()):
            queue.put_nowait(record)
