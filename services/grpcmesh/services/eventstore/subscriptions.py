"""Catch-up subscriptions: replay from a position, mark the head, then follow live.

There is no separate live feed to splice in: the subscription only ever reads the
log by global position (``position > last delivered``), first in pages up to the
head it saw at the start, then again each time it is woken. Positions are
gap-free in commit order, so nothing is missed or repeated at the boundary.

Wake-ups come from the storage's in-process :class:`HeadWatch` (set after each
local commit, or by a PostgreSQL NOTIFY from another process), and a polling
timeout covers anything a notification missed; every wake-up is followed by a read.

Backpressure: events wait for the consumer in a bounded queue. During replay the
reader simply waits for room; once live, a full queue means the consumer is more
than ``buffer`` events behind, and the subscription ends with
:class:`SubscriberTooSlow` instead of growing memory (the client resumes from the
last position it received).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from grpcmesh.sdk.waiting import cancel_and_wait
from grpcmesh.services.eventstore.domain import CaughtUp, EventStoreError, RecordedEvent
from grpcmesh.services.eventstore.storage.base import Storage

__all__ = ["Item", "SubscriberTooSlow", "Subscription", "SubscriptionConfig"]

Item: TypeAlias = RecordedEvent | CaughtUp


@dataclass(frozen=True, slots=True)
class SubscriptionConfig:
    page_size: int = 500
    buffer: int = 10_000
    poll_interval: float = 1.0


class SubscriberTooSlow(EventStoreError):
    """The consumer fell more than ``buffer`` events behind the live log."""


@dataclass(frozen=True, slots=True)
class _End:
    error: BaseException | None


class Subscription:
    """Async iterator of :class:`RecordedEvent` and one :class:`CaughtUp`; ``aclose()`` when done."""

    def __init__(
        self,
        storage: Storage,
        after_position: int = 0,
        *,
        stream_prefixes: Sequence[str] = (),
        event_types: Sequence[str] = (),
        config: SubscriptionConfig = SubscriptionConfig(),
        on_overflow: Callable[[], None] | None = None,
    ) -> None:
        self._storage = storage
        self._position = after_position
        self._prefixes = tuple(stream_prefixes)
        self._types = tuple(event_types)
        self._config = config
        self._on_overflow = on_overflow
        self._queue: asyncio.Queue[Item | _End] = asyncio.Queue(maxsize=config.buffer)
        self._task: asyncio.Task[None] | None = None
        self.overflowed = False

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Item:
        if self._task is None:
            self._task = asyncio.create_task(self._produce(), name="eventstore-subscription")
        item = await self._queue.get()
        if isinstance(item, _End):
            self._queue.put_nowait(item)  # keep ending on further calls
            if item.error is not None:
                raise item.error
            raise StopAsyncIteration
        return item

    async def next_batch(self, limit: int) -> list[Item]:
        """At least one item, plus whatever else is already buffered (up to ``limit``).

        A batch ends after a :class:`CaughtUp`, so the marker is never hidden inside one.
        """
        items = [await self.__anext__()]
        while len(items) < limit and not isinstance(items[-1], CaughtUp) and not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, _End):
                self._queue.put_nowait(item)  # raised by the next call
                break
            items.append(item)
        return items

    async def aclose(self) -> None:
        await cancel_and_wait(self._task)

    async def _produce(self) -> None:
        try:
            head = await self._storage.head_position()
            await self._pump(head, live=False)
            await self._queue.put(CaughtUp(max(head, self._position)))
            while True:
                await self._storage.watch.wait_beyond(self._position, self._config.poll_interval)
                await self._pump(await self._storage.head_position(), live=True)
        except SubscriberTooSlow as err:
            self.overflowed = True
            while not self._queue.empty():  # the subscription is over: free the buffer at once
                self._queue.get_nowait()
            self._queue.put_nowait(_End(err))
            if self._on_overflow is not None:
                self._on_overflow()
        except Exception as err:
            await self._queue.put(_End(err))

    async def _pump(self, head: int, *, live: bool) -> None:
        """Delivers everything in ``(position, head]``, page by page."""
        size = self._config.page_size
        while self._position < head:
            page = await self._storage.read_all(
                self._position, size, upto=head, stream_prefixes=self._prefixes, event_types=self._types
            )
            for event in page:
                if not live:
                    await self._queue.put(event)
                elif self._queue.full():
                    raise SubscriberTooSlow(
                        f"subscriber fell more than {self._config.buffer} events behind the live log; "
                        "subscribe again from the last position received"
                    )
                else:
                    self._queue.put_nowait(event)
            self._position = page[-1].position if len(page) == size else head
