"""Group commit: concurrent appends share one transaction and one fsync.

A durable commit costs one disk flush; appends from many clients arriving while
a flush is in progress are queued and committed together by the single writer,
each judged on its own (a conflicting append fails alone, without aborting the
group). Callers get their result only after the group's commit returned, so an
acknowledged append is on disk. Both adapters use this; only the
``commit_group`` function differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeAlias

from grpcmesh.services.eventstore.domain import AppendResult, EventStoreError
from grpcmesh.services.eventstore.storage.base import AppendCommand

__all__ = ["CommitGroup", "GroupCommitter", "Outcome"]

log = logging.getLogger("grpcmesh.eventstore.writer")

Outcome: TypeAlias = AppendResult | EventStoreError
# Commits the commands in one transaction: one outcome per command, and the new head position.
CommitGroup: TypeAlias = Callable[[Sequence[AppendCommand]], Awaitable[tuple[list[Outcome], int]]]

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
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
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
        except asyncio.CancelledError:
            raise
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
