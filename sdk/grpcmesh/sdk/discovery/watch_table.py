"""The services a resolver watches: LRU/TTL expiry and a prioritised queue of reads.

Each watched service has one :class:`Published` snapshot. Reads of services
are queued by priority so that a first call (``FIRST``) is served by the next
free reader, ahead of reads caused by changes (``CHANGE``) and the slow
background re-read (``RESYNC``): a first call waits for at most one read in
progress, never for a backlog. A service already queued is not queued twice;
one changed while being read is read once more afterwards.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field

from grpcmesh.sdk.discovery.published import Published

__all__ = ["CHANGE", "FIRST", "RESYNC", "WatchEntry", "WatchTable"]

FIRST, CHANGE, RESYNC = 0, 1, 2


@dataclass(slots=True, eq=False)
class WatchEntry:
    """Book-keeping of one watched service (mutated by the resolver's tasks, one loop)."""

    pub: Published
    last_used: float = field(default_factory=time.monotonic)
    watchers: int = 0
    read_index: int | None = None
    """``X-Consul-Index`` of the last successful read; None before the first one."""
    queued: int | None = None
    reading: bool = False
    reading_as: int = FIRST
    """Priority of the read in progress (a resync read may be served by any server)."""
    dirty: bool = False
    failures: int = 0

    @property
    def service(self) -> str:
        return self.pub.service


class WatchTable:
    """Watched services in least-recently-used order, plus their read queue."""

    def __init__(self, *, max_services: int, idle_ttl: float) -> None:
        self.max_services = max_services
        self.idle_ttl = idle_ttl
        self.evictions = 0
        self._entries: OrderedDict[str, WatchEntry] = OrderedDict()
        self._queue: asyncio.PriorityQueue[tuple[int, int, str]] = asyncio.PriorityQueue()
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[WatchEntry]:
        return iter(list(self._entries.values()))

    def __contains__(self, service: object) -> bool:
        return service in self._entries

    @property
    def pending(self) -> int:
        """Reads queued (an upper bound: superseded entries are skipped when reached)."""
        return self._queue.qsize()

    def get(self, service: str) -> WatchEntry | None:
        return self._entries.get(service)

    def use(self, service: str) -> tuple[WatchEntry, bool]:
        """The entry of ``service`` marked as just used, and whether it was created now."""
        entry = self._entries.get(service)
        created = entry is None
        if entry is None:
            entry = self._entries[service] = WatchEntry(Published(service))
            self._evict_over_cap(keep=service)
        self._entries.move_to_end(service)
        entry.last_used = time.monotonic()
        return entry, created

    def _evict_over_cap(self, keep: str) -> None:
        """Drops least recently used services past ``max_services``; idle ones first."""
        excess = len(self._entries) - self.max_services
        if excess <= 0:
            return
        others = [e for e in self._entries.values() if e.service != keep]
        idle = [e for e in others if e.watchers == 0][:excess]
        victims = idle + [e for e in others if e.watchers > 0][: excess - len(idle)]
        for entry in victims:
            self.drop(entry.service)

    def expire(self, now: float | None = None) -> list[str]:
        """Drops services nobody watches and nobody resolved for ``idle_ttl`` seconds."""
        limit = (time.monotonic() if now is None else now) - self.idle_ttl
        gone = [e.service for e in self._entries.values() if e.watchers == 0 and e.last_used < limit]
        for service in gone:
            self.drop(service)
        return gone

    def drop(self, service: str) -> None:
        """Forgets ``service``; its watchers end (a watcher that comes back starts afresh)."""
        entry = self._entries.pop(service, None)
        if entry is not None:
            entry.queued = None
            entry.pub.close()
            self.evictions += 1

    def schedule(self, entry: WatchEntry, priority: int) -> None:
        """Queues a read of ``entry`` unless one at this priority or better is already due."""
        if self._entries.get(entry.service) is not entry:
            return
        if entry.reading:
            entry.dirty = True
            return
        if entry.queued is not None and entry.queued <= priority:
            return
        entry.queued = priority
        self._queue.put_nowait((priority, next(self._seq), entry.service))

    async def next_read(self) -> WatchEntry:
        """The next entry to read, marked as being read (skips dropped or re-prioritised ones)."""
        while True:
            priority, _, service = await self._queue.get()
            entry = self._entries.get(service)
            if entry is not None and entry.queued == priority and not entry.reading:
                entry.queued = None
                entry.reading = True
                entry.reading_as = priority
                return entry

    def done_reading(self, entry: WatchEntry) -> None:
        """Ends a read; a change seen meanwhile queues one more."""
        entry.reading = False
        if entry.dirty:
            entry.dirty = False
            self.schedule(entry, CHANGE)

    async def upkeep(self, resync_interval: float) -> None:
        """Runs for ever: expires idle services, and queues every service for a low-priority
        re-read each ``resync_interval`` seconds (0: never)."""
        tick = min(30.0, max(0.5, self.idle_ttl / 4))
        if resync_interval:
            tick = min(tick, max(0.5, resync_interval / 4))
        last_resync = time.monotonic()
        while True:
            await asyncio.sleep(tick)
            self.expire()
            if resync_interval and time.monotonic() - last_resync >= resync_interval:
                last_resync = time.monotonic()
                for entry in self:
                    self.schedule(entry, RESYNC)

    def close(self) -> None:
        for service in list(self._entries):
            self.drop(service)
        self.evictions = 0
