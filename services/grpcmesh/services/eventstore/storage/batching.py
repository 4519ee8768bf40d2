"""Group commit: concurrent appends share one transaction and one fsync.

Two drivers of the same idea: :class:`GroupCommitter` for an async database driver
(a writer task), :class:`ThreadedGroupCommitter` for a blocking one (a writer thread
that wakes the event loop once per group, not once per append).

A durable commit costs one disk flush; appends from many clients arriving while
a flush is in progress are queued and committed together by the single writer,
each judged on its own (a conflicting append fails alone, without aborting the
group). Callers get their result only after the group's commit returned, so an
acknowledged append is on disk. Both adapters use this; only the
``commit_group`` function differs.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeAlias

from grpcmesh.sdk.waiting import cancel_and_wait
from grpcmesh.services.eventstore.domain import AppendResult, EventStoreError
from grpcmesh.services.eventstore.storage.base import AppendCommand

__all__ = ["CommitGroup", "CommitGroupSync", "GroupCommitter", "Outcome", "ThreadedGroupCommitter"]

log = logging.getLogger("grpcmesh.eventstore.writer")

Outcome: TypeAlias = AppendResult | EventStoreError
# Commits the commands in one transaction: one outcome per command, and the new head position.
CommitGroup: TypeAlias = Callable[[Sequence[AppendCommand]], Awaitable[tuple[list[Outcome], int]]]

CommitGroupSync: TypeAlias = Callable[[Sequence[AppendCommand]], tuple[list[Outcome], int]]

_Item: TypeAlias = tuple[AppendCommand, "asyncio.Future[AppendResult]"]


class GroupCommitter:
    """The single writer: drains the queue into groups of at most ``max_group`` appends."""

    def __init__(
        self, commit_group: CommitGroup, on_commit: Callable[[int], None], *, max_group: int = 256
    ) -> None:
        self._commit_group = commit_group
        self._on_commit = on_commit
        self._max_group = max_group
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="eventstore-writer")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        while not self._queue.empty():
            _, fut = self._queue.get_nowait()
            if not fut.done():
                fut.set_exception(ConnectionError("event store is closing"))

    async def submit(self, command: AppendCommand) -> AppendResult:
        if self._task is None:
            raise ConnectionError("event store is not open")
        fut: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((command, fut))
        return await fut

    async def _run(self) -> None:
        while True:
            group = [await self._queue.get()]
            while len(group) < self._max_group and not self._queue.empty():
                group.append(self._queue.get_nowait())
            await self._commit(group)

    async def _commit(self, group: list[_Item]) -> None:
        try:
            outcomes, head = await self._commit_group([cmd for cmd, _ in group])
        except Exception as err:
            if len(group) > 1:  # one bad append must not fail its neighbours: retry each alone
                log.warning("group commit of %d appends failed (%s); retrying one by one", len(group), err)
                for item in group:
                    await self._commit([item])
                return
            _settle(group[0][1], err)
            return
        self._on_commit(head)
        for (_, fut), outcome in zip(group, outcomes, strict=True):
            _settle(fut, outcome)


def _settle(fut: asyncio.Future[AppendResult], outcome: AppendResult | BaseException) -> None:
    if fut.done():  # the caller went away; the append is committed anyway
        return
    if isinstance(outcome, BaseException):
        fut.set_exception(outcome)
    else:
        fut.set_result(outcome)


class ThreadedGroupCommitter:
    """The single writer as a thread, for blocking drivers (sqlite3 releases the GIL while it works)."""

    def __init__(
        self, commit_group: CommitGroupSync, on_commit: Callable[[int], None], *, max_group: int = 256
    ) -> None:
        self._commit_group = commit_group
        self._on_commit = on_commit
        self._max_group = max_group
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="eventstore-writer", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._thread.join)
            self._thread = None

    async def submit(self, command: AppendCommand) -> AppendResult:
        if self._thread is None or self._loop is None:
            raise ConnectionError("event store is not open")
        fut: asyncio.Future[AppendResult] = self._loop.create_future()
        self._queue.put((command, fut))
        return await fut

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            group = [first]
            while len(group) < self._max_group:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                group.append(item)
            outcomes, head = self._commit(group)
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._deliver, group, outcomes, head)
        closing = ConnectionError("event store is closing")
        while not self._queue.empty():  # appends submitted after stop() began
            item = self._queue.get_nowait()
            if item is not None and self._loop is not None:
                self._loop.call_soon_threadsafe(_settle, item[1], closing)

    def _commit(self, group: list[_Item]) -> tuple[list[AppendResult | BaseException], int]:
        try:
            outcomes, head = self._commit_group([cmd for cmd, _ in group])
        except Exception as err:
            if len(group) == 1:
                return [err], 0
            log.warning("group commit of %d appends failed (%s); retrying one by one", len(group), err)
            singles = [self._commit([item]) for item in group]
            return [o for outs, _ in singles for o in outs], max(h for _, h in singles)
        return list(outcomes), head

    def _deliver(self, group: list[_Item], outcomes: list[AppendResult | BaseException], head: int) -> None:
        if head:
            self._on_commit(head)
        for (_, fut), outcome in zip(group, outcomes, strict=True):
            _settle(fut, outcome)
