"""Catch-up subscriptions: replay from a position, mark the head, then follow live.

There is no separate live feed to splice in: the subscription only ever reads the
log by global position (``position > last delivered``), first in pages up to the
head it saw at the start, then again each time it is woken. Positions are
gap-free in commit order, so nothing is missed or repeated at the boundary.

Wake-ups come from the storage's in-process :class:`HeadWatch` (set after each
local commit, or by a PostgreSQL NOTIFY from another process), and a polling
timeout covers anything a notification missed; every wake-up is followed by a read.

Memory is bounded in bytes, not events (a subscriber that stops reading must cost
little whatever the event size):

* pages are cut to about ``page_bytes`` (the page size adapts to the largest event
  of the previous page), and during replay the next page is read only once the
  consumer has taken the previous one -- the consumer is the gRPC writer, whose
  ``context.write`` waits for the client's HTTP/2 flow-control window, so a client
  that stops reading stops the replay;
* once live, events wait in a buffer of at most ``buffer_bytes``; a consumer that
  falls further behind ends the subscription with :class:`SubscriberTooSlow`
  (the client resumes from the last position it received), as KurrentDB drops
  slow live subscribers instead of growing memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from grpcmesh.sdk.waiting import cancel_and_wait
from grpcmesh.services.eventstore.domain import CaughtUp, EventStoreError, RecordedEvent
from grpcmesh.services.eventstore.storage.base import Storage

__all__ = ["Item", "SubscriberTooSlow", "Subscription", "SubscriptionConfig", "event_bytes", "page_count"]

Item: TypeAlias = RecordedEvent | CaughtUp

_OVERHEAD = 512  # bytes a buffered event costs beyond its fields (tuple, str/bytes headers, timestamp)


@dataclass(frozen=True, slots=True)
class SubscriptionConfig:
    page_size: int = 500  # most events per storage read
    page_bytes: int = 64 * 1024  # a page is cut to about this many bytes (at least one event)
    buffer_bytes: int = 1024 * 1024  # bytes a live subscriber may lag before it is cut off
    poll_interval: float = 1.0
    max_subscriptions: int = 1000  # server-wide; more answer RESOURCE_EXHAUSTED
    # Server-wide catch-ups moving at once: with hundreds replaying at full speed, an Append waits
    # behind every one of them on the event loop; the rest queue (FIFO) for a slot, page by page.
    max_replaying: int = 16
    replay_hold: float = 0.5  # seconds a slot waits for its client to take the page before it is freed


class SubscriberTooSlow(EventStoreError):
    """The consumer fell more than ``buffer_bytes`` behind the live log."""


@dataclass(frozen=True, slots=True)
class _End:
    error: BaseException | None


def event_bytes(event: RecordedEvent) -> int:
    """What holding ``event`` in memory costs, roughly."""
    meta = sum(len(k) + len(v) for k, v in event.metadata.items()) if event.metadata else 0
    return (
        len(event.data) + len(event.type) + len(event.stream_id) + len(event.content_type) + meta + _OVERHEAD
    )


def page_count(largest: int, page_bytes: int, most: int) -> int:
    """Rows for the next storage read: about ``page_bytes`` given the largest event seen lately."""
    return max(1, min(most, page_bytes // max(largest, 1)))


class _ByteQueue:
    """FIFO that counts the bytes it holds; the producer waits for room, the consumer for items."""

    def __init__(self) -> None:
        self._items: deque[tuple[Item | _End, int]] = deque()
        self.bytes = 0
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()

    def put(self, item: Item | _End, size: int = 0) -> None:
        self._items.append((item, size))
        self.bytes += size
        self._readable.set()

    def push_front(self, item: _End) -> None:
        self._items.appendleft((item, 0))
        self._readable.set()

    def get_nowait(self) -> Item | _End | None:
        if not self._items:
            return None
        item, size = self._items.popleft()
        self.bytes -= size
        self._writable.set()
        return item

    async def get(self) -> Item | _End:
        while not self._items:
            self._readable.clear()
            await self._readable.wait()
        item = self.get_nowait()
        assert item is not None
        return item

    async def wait_room(self, limit: int) -> None:
        """Returns once the queue holds less than ``limit`` bytes."""
        while self.bytes >= limit:
            self._writable.clear()
            await self._writable.wait()

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0


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
        replay_slots: asyncio.Semaphore | None = None,
    ) -> None:
        self._storage = storage
        self._position = after_position
        self._prefixes = tuple(stream_prefixes)
        self._types = tuple(event_types)
        self._config = config
        self._on_overflow = on_overflow
        self._slots = replay_slots
        self._queue = _ByteQueue()
        self._task: asyncio.Task[None] | None = None
        self._largest = config.page_bytes  # largest event of the last page (first page: one event)
        self.overflowed = False

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Item:
        if self._task is None:
            self._task = asyncio.create_task(self._produce(), name="eventstore-subscription")
        item = await self._queue.get()
        if isinstance(item, _End):
            self._queue.push_front(item)  # keep ending on further calls
            if item.error is not None:
                raise item.error
            raise StopAsyncIteration
        return item

    async def next_batch(self, limit: int) -> list[Item]:
        """At least one item, plus whatever else is already buffered (up to ``limit``).

        A batch ends after a :class:`CaughtUp`, so the marker is never hidden inside one.
        """
        items = [await self.__anext__()]
        while len(items) < limit and not isinstance(items[-1], CaughtUp):
            item = self._queue.get_nowait()
            if item is None:
                break
            if isinstance(item, _End):
                self._queue.push_front(item)  # raised by the next call
                break
            items.append(item)
        return items

    async def aclose(self) -> None:
        await cancel_and_wait(self._task)
        self._queue.clear()

    async def _produce(self) -> None:
        try:
            head = await self._storage.head_position()
            await self._pump(head, live=False)
            self._queue.put(CaughtUp(max(head, self._position)))
            while True:
                await self._storage.watch.wait_beyond(self._position, self._config.poll_interval)
                await self._pump(await self._storage.head_position(), live=True)
        except SubscriberTooSlow as err:
            self.overflowed = True
            self._queue.clear()  # the subscription is over: free the buffer at once
            self._queue.put(_End(err))
            if self._on_overflow is not None:
                self._on_overflow()
        except Exception as err:
            self._queue.put(_End(err))

    async def _pump(self, head: int, *, live: bool) -> None:
        """Delivers everything in ``(position, head]``, page by page."""
        cfg = self._config
        while self._position < head:
            if live:
                page, size = await self._read(head)
                self._enqueue(page)
                if self._queue.bytes > cfg.buffer_bytes:
                    raise SubscriberTooSlow(
                        f"subscriber fell more than {cfg.buffer_bytes} bytes behind the live log; "
                        "subscribe again from the last position received"
                    )
            else:  # replay: read the next page only when the consumer took the last one
                await self._queue.wait_room(1)
                page, size = await self._replay_page(head)
            self._position = page[-1].position if len(page) == size else head

    async def _replay_page(self, head: int) -> tuple[list[RecordedEvent], int]:
        """One catch-up page, read and handed over inside a server-wide replay slot (if any)."""
        if self._slots is None:
            page, size = await self._read(head)
            self._enqueue(page)
            return page, size
        async with self._slots:
            page, size = await self._read(head)
            self._enqueue(page)
            with contextlib.suppress(TimeoutError):  # a client that stops reading frees its slot
                async with asyncio.timeout(self._config.replay_hold):
                    await self._queue.wait_room(1)
        return page, size

    async def _read(self, head: int) -> tuple[list[RecordedEvent], int]:
        """The next page in ``(position, head]`` and the row count asked for."""
        size = page_count(self._largest, self._config.page_bytes, self._config.page_size)
        page = await self._storage.read_all(
            self._position, size, upto=head, stream_prefixes=self._prefixes, event_types=self._types
        )
        return page, size

    def _enqueue(self, page: list[RecordedEvent]) -> None:
        self._largest = max((event_bytes(e) for e in page), default=self._largest)
        for event in page:
            self._queue.put(event, event_bytes(event))
