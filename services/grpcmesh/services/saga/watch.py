"""Fan-out of committed saga transitions to Watch streams (in-process, per saga id)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from grpcmesh.services.saga.domain import SagaRecord

__all__ = ["WatchHub"]


class WatchHub:
    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue[SagaRecord]]] = {}

    @contextlib.contextmanager
    def subscribe(self, saga_id: str) -> Iterator[asyncio.Queue[SagaRecord]]:
        """A queue of every record of ``saga_id`` committed while the block runs (unbounded:
        a saga has a bounded number of transitions)."""
        queue: asyncio.Queue[SagaRecord] = asyncio.Queue()
        self._queues.setdefault(saga_id, set()).add(queue)
        try:
            yield queue
        finally:
            queues = self._queues.get(saga_id, set())
            queues.discard(queue)
            if not queues:
                self._queues.pop(saga_id, None)

    def publish(self, record: SagaRecord) -> None:
        for queue in self._queues.get(record.saga_id, ()):
            queue.put_nowait(record)
