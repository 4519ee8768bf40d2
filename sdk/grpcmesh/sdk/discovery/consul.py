"""Consul resolver: a bounded number of connections to the agent, whatever the number of services.

How it works, and why:

* **One change feed** (:mod:`~grpcmesh.sdk.discovery.consul_feed`). A single
  blocking query on ``/v1/health/state/any`` (held up to ``wait``) returns the
  checks when any check changes; each watched service's digest is compared
  with the previous answer's, and only services whose digest changed are
  re-read. While few services are watched the query names them in a
  server-side filter, so its answers are the size of what is watched. One held
  connection serves 10 or 10,000 watched services; the old design held one
  connection per service, starved past py-consul's 100 and hit Consul's
  ``http_max_conns_per_client`` (429 to the whole host) at 200.
* **Targeted reads**, ``/v1/health/service/<name>?passing``, run on at most
  ``max_reads`` connections, taken from a priority queue
  (:class:`~grpcmesh.sdk.discovery.watch_table.WatchTable`): a never-seen
  service's first read goes ahead of change reads and the background resync,
  so a first call costs about one agent round trip. Connections to the agent
  are therefore at most ``max_reads + 1`` (:attr:`ConsulSettings.max_connections`).
* **No lookup per call.** ``resolve`` reads the service's cached snapshot;
  only its first ``resolve`` waits (bounded) for the first read.
* **Bounded memory.** A service nobody watches and nobody resolved for
  ``idle_ttl`` is forgotten; past ``max_services`` the least recently used goes.
* **Outage = stale, not failure.** On an agent error the last endpoints stay,
  marked ``stale``; the feed retries with backoff and jitter and, once back,
  re-reads the services left stale and those whose digest moved meanwhile.
* **The feed is a ``?stale`` read by default** (``stale_feed``): any server
  answers it, so thousands of processes' feeds spread over the servers
  instead of all sitting on the leader. The targeted reads stay consistent
  (leader), so a change the feed reports is never read back older.
* What the feed cannot see (an instance re-registered in place with a new
  address, or a service without any check) is caught by a low-priority re-read
  of every watched service each ``resync_interval``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

from grpcmesh.sdk.discovery.base import Resolution
from grpcmesh.sdk.discovery.consul_client import consul_client
from grpcmesh.sdk.discovery.consul_feed import ChangeFeed
from grpcmesh.sdk.discovery.consul_http import AgentError, AgentHTTP
from grpcmesh.sdk.discovery.consul_settings import ConsulSettings
from grpcmesh.sdk.discovery.consul_state import ConsulStats, backoff_delay, endpoints_from_health
from grpcmesh.sdk.discovery.watch_table import CHANGE, FIRST, RESYNC, WatchEntry, WatchTable
from grpcmesh.sdk.waiting import cancel_and_wait, wait_set

__all__ = [
    "ConsulResolver",
    "ConsulSettings",
    "ConsulStats",
    "backoff_delay",
    "consul_client",
    "endpoints_from_health",
]

log = logging.getLogger("grpcmesh.discovery.consul")


class ConsulResolver:
    """:class:`~grpcmesh.sdk.discovery.Resolver` backed by a Consul agent."""

    def __init__(
        self, url: str = "http://127.0.0.1:8500", settings: ConsulSettings | None = None, **overrides: Any
    ) -> None:
        self.url = url
        self.settings = dataclasses.replace(settings or ConsulSettings(), **overrides)
        self.stats = ConsulStats()
        self.last_error: str | None = None
        self._http: AgentHTTP | None = None
        self._table: WatchTable | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._retries: dict[str, asyncio.TimerHandle] = {}  # service -> pending retry of its read
        self._feed: ChangeFeed | None = None
        self._closed = False

    @property
    def datacenter(self) -> str | None:
        return self.settings.datacenter

    @property
    def tag(self) -> str | None:
        return self.settings.tag

    @property
    def wait(self) -> str:
        return self.settings.wait

    @property
    def watched(self) -> int:
        """Number of services currently watched."""
        return len(self._table) if self._table is not None else 0

    @property
    def pending_reads(self) -> int:
        """Targeted reads waiting for a free connection."""
        return self._table.pending if self._table is not None else 0

    @property
    def evictions(self) -> int:
        return self._table.evictions if self._table is not None else 0

    def _count_request(self) -> None:
        self.stats.http_requests += 1

    def _start(self) -> WatchTable:
        """Creates the client and the tasks on first use, inside the running loop."""
        if self._closed:
            raise RuntimeError("ConsulResolver is closed")
        if self._table is None:
            s = self.settings
            self._table = WatchTable(max_services=s.max_services, idle_ttl=s.idle_ttl)
            self._http = AgentHTTP(
                self.url, max_connections=s.max_connections, token=s.token, on_request=self._count_request
            )
            self._feed = ChangeFeed(self._http, self._table, s, self.stats, self._failed)
            self._tasks = [asyncio.create_task(self._feed.run(), name="consul-feed")]
            readers = [asyncio.create_task(self._reader(), name="consul-read") for _ in range(s.max_reads)]
            self._tasks += readers
            upkeep = self._table.upkeep(s.resync_interval)
            self._tasks.append(asyncio.create_task(upkeep, name="consul-upkeep"))
        return self._table

    def _use(self, service: str) -> WatchEntry:
        table = self._start()
        entry, created = table.use(service)
        if created:
            table.schedule(entry, FIRST)
            assert self._feed is not None
            self._feed.watching(service)
        return entry

    async def resolve(self, service: str) -> Resolution:
        """The cached snapshot; waits (bounded) only for a service's very first answer."""
        entry = self._use(service)
        if not entry.pub.ready.is_set():
            await wait_set(entry.pub.ready, self.settings.first_answer_timeout)
        if not entry.pub.ready.is_set():
            return Resolution(service, (), stale=True)
        return entry.pub.current

    async def watch(self, service: str) -> AsyncIterator[Resolution]:
        """The current snapshot, then one per change (endpoints or staleness).

        A watched service is never expired for idleness; past ``max_services``
        it may still be dropped, which ends this iterator.
        """
        entry = self._use(service)
        entry.watchers += 1
        try:
            async for resolution in entry.pub.changes():
                yield resolution
        finally:
            entry.watchers -= 1
            entry.last_used = time.monotonic()

    # -- targeted reads ------------------------------------------------------------
    async def _reader(self) -> None:
        assert self._table is not None
        while True:
            entry = await self._table.next_read()
            try:
                await self._read(entry)
            finally:
                self._table.done_reading(entry)

    async def _read(self, entry: WatchEntry) -> None:
        """Reads one service. First and change reads are consistent (leader): the feed said
        it changed, so an older answer would be wrong until the next change. A resync read
        may come from any server (``?stale``) and is dropped if older than what we have."""
        assert self._http is not None
        s = self.settings
        resync = entry.reading_as == RESYNC
        path = "/v1/health/service/" + urllib.parse.quote(entry.service, safe="")
        params = {"passing": "1", "tag": s.tag, "dc": s.datacenter, "stale": "" if resync else None}
        self.stats.reads += 1
        try:
            index, answer = await self._http.get(path, params, seconds=s.read_timeout)
        except AgentError as err:
            entry.failures += 1
            self._failed(err, entry.pub.mark_stale() or entry.failures == 1, entry.service)
            self._retries[entry.service] = asyncio.get_running_loop().call_later(
                backoff_delay(entry.failures, cap=s.backoff_cap), self._retry, entry
            )
            return
        entry.failures = 0
        self.last_error = None
        if resync and index is not None and entry.read_index is not None and index < entry.read_index:
            return  # a server behind the one that answered last time
        entry.read_index = index
        if entry.pub.publish(endpoints_from_health(answer)):
            self.stats.changes += 1

    def _retry(self, entry: WatchEntry) -> None:
        self._retries.pop(entry.service, None)
        if self._table is not None and not self._closed:
            self._table.schedule(entry, CHANGE)

    def _failed(self, err: AgentError | None, loud: bool, what: str) -> None:
        if err is None:
            self.last_error = None
            return
        self.stats.errors += 1
        self.last_error = str(err)
        if loud:
            log.warning("consul query for %s failed (%s); serving last known endpoints", what, err)

    async def close(self) -> None:
        """Cancels the feed and the readers, ends watchers and closes the connections."""
        self._closed = True
        for handle in self._retries.values():
            handle.cancel()
        await cancel_and_wait(*self._tasks)
        if self._table is not None:
            self._table.close()
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def __aenter__(self) -> ConsulResolver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
