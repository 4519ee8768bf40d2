"""The orchestrator: Start/Get/List/Watch/Retry/Abort over a durable store, and resume on startup.

Owns the in-memory view of active sagas and serialises every transition of a
saga through one lock: the transition is committed to the store, then published
to watchers. One :class:`~.runner.SagaRunner` task per active saga makes the calls.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from grpcmesh.services.common.locks import KeyedLocks
from grpcmesh.services.saga.caller import StepCaller
from grpcmesh.services.saga.definitions import SagaDefinition
from grpcmesh.services.saga.domain import (
    InvalidRequest,
    SagaEvent,
    SagaNotFound,
    SagaRecord,
    SagaStatus,
    StepRecord,
    StepStatus,
    WrongState,
    describe,
)
from grpcmesh.services.saga.runner import AbortSignal, SagaRunner, start_step
from grpcmesh.services.saga.store.base import SagaStore
from grpcmesh.services.saga.watch import WatchHub

__all__ = ["Orchestrator"]

log = logging.getLogger("grpcmesh.saga")

_RETRY_MAX_S = 30.0
_UNDO_MARKS = frozenset({StepStatus.COMPENSATING, StepStatus.COMPENSATED, StepStatus.COMPENSATION_FAILED})


class Orchestrator:
    def __init__(
        self,
        store: SagaStore,
        definitions: Mapping[str, SagaDefinition],
        caller: StepCaller,
        *,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self._store = store
        self._definitions = dict(definitions)
        self._new_id = new_id
        self._runner = SagaRunner(self._commit, caller)
        self._hub = WatchHub()
        self._current: dict[str, SagaRecord] = {}
        self._locks = KeyedLocks()  # one transition of a saga at a time
        self._aborts: dict[str, AbortSignal] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._retry_in: dict[str, float] = {}  # saga -> its next wait before driving it again (_drive)
        self._retries: dict[str, asyncio.TimerHandle] = {}  # sagas waiting out that wait
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------------------

    async def resume(self) -> int:
        """Starts a runner for every RUNNING/COMPENSATING saga in the store; returns how many."""
        found = await self._drive_undriven()
        if found:
            log.info("resuming %d unfinished saga(s)", found)
        return found

    async def sweep(self) -> int:
        """Drives every unfinished saga in the store that nothing drives here; returns how many.

        The active orchestrator calls it now and then: a saga can reach the store without a
        runner here - a Start that the previous active one finished writing while it was
        already losing its lock, after this one had resumed what it found.
        """
        found = await self._drive_undriven()
        if found:
            log.warning("found %d unfinished saga(s) nothing was driving: driving them", found)
        return found

    async def _drive_undriven(self) -> int:
        found = 0
        for record in await self._store.unfinished():
            saga_id = record.saga_id
            if saga_id not in self._tasks and saga_id not in self._retries:
                self._current.setdefault(saga_id, record)  # never over a newer in-memory state
                self._spawn(saga_id)
                found += 1
        return found

    async def close(self) -> None:
        """Stops the runners; in-flight steps stay RUNNING in the store and are re-issued on resume."""
        self._closed = True
        for handle in self._retries.values():
            handle.cancel()
        self._retries.clear()
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def idle(self) -> None:
        """Waits until no runner is active (tests and drains)."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    # -- queries -------------------------------------------------------------------------------

    async def get(self, saga_id: str) -> SagaRecord:
        record = self._current.get(saga_id) or await self._store.get(saga_id)
        if record is None:
            raise SagaNotFound(saga_id)
        return record

    async def history(self, saga_id: str) -> list[SagaEvent]:
        """Every persisted transition of the saga, oldest first."""
        await self.get(saga_id)
        return await self._store.history(saga_id)

    async def page(
        self, status: SagaStatus | None, page_size: int, page_token: str
    ) -> tuple[list[SagaRecord], str]:
        after = _decode_token(page_token)
        rows = await self._store.page(status, after, page_size + 1)
        more = len(rows) > page_size
        rows = rows[:page_size]
        return [r for _, r in rows], (_encode_token(rows[-1][0]) if more else "")

    async def watch(self, saga_id: str) -> AsyncIterator[SagaRecord]:
        """The current record, then every committed transition, until a terminal one."""
        with self._hub.subscribe(saga_id) as queue:
            record = await self.get(saga_id)
            yield record
            while not record.terminal:
                nxt = await queue.get()
                if nxt.version > record.version:
                    record = nxt
                    yield record

    # -- commands ------------------------------------------------------------------------------

    async def start(self, definition: str, idempotency_key: str, saga_input: dict[str, Any]) -> SagaRecord:
        found = self._definitions.get(definition)
        if found is None:
            known = ", ".join(sorted(self._definitions)) or "none"
            raise InvalidRequest("definition", f"{definition!r} is not registered (known: {known})")
        for key in found.required_input:
            if key not in saga_input:
                raise InvalidRequest(f"input.{key}", f"is required by saga {definition!r}")
        saga_id, now = self._new_id(), time.time()
        record = SagaRecord(
            saga_id=saga_id,
            definition=definition,
            idempotency_key=idempotency_key or saga_id,
            input=saga_input,
            steps=tuple(StepRecord(name) for name in found.step_names()),
            created_at=now,
            updated_at=now,
        )
        if record.steps:  # the first step's RUNNING commits with the creation: 4 commits, not 5
            first = start_step(0)(record)
            stored, created = await self._store.create(first, describe(None, record), describe(record, first))
        else:
            stored, created = await self._store.create(record)
        if not created:
            if stored.definition != definition or stored.input != saga_input:
                raise InvalidRequest(
                    "idempotency_key",
                    f"already used by saga {stored.saga_id} with a different definition or input",
                )
            return await self.get(stored.saga_id)
        log.info("saga %s (%s) started, key %s", saga_id, definition, record.idempotency_key)
        self._current[saga_id] = stored
        self._spawn(saga_id, started=bool(record.steps))
        return stored

    async def abort(self, saga_id: str, reason: str) -> SagaRecord:
        def change(r: SagaRecord) -> SagaRecord:
            if r.status is not SagaStatus.RUNNING or r.abort_reason:
                state = f"{r.status.name}{' (aborting)' if r.abort_reason else ''}"
                raise WrongState(f"saga {saga_id} is {state}; only a RUNNING saga can be aborted")
            return r.evolve(abort_reason=reason or "aborted by operator")

        record = await self._commit(saga_id, change)
        self._aborts.setdefault(saga_id, AbortSignal()).set()
        self._spawn(saga_id)
        return record

    async def retry(self, saga_id: str) -> SagaRecord:
        def change(r: SagaRecord) -> SagaRecord:
            if r.status is not SagaStatus.FAILED:
                raise WrongState(f"saga {saga_id} is {r.status.name}; only a FAILED saga can be retried")
            if r.definition not in self._definitions:
                raise WrongState(f"saga {saga_id}: definition {r.definition!r} is not registered")
            failed = [s for s in r.steps if s.status is StepStatus.FAILED]
            forward_error = f"step {failed[0].name} failed: {failed[0].error}" if failed else ""
            undoing = bool(forward_error or r.abort_reason or any(s.status in _UNDO_MARKS for s in r.steps))
            status = SagaStatus.COMPENSATING if undoing else SagaStatus.RUNNING
            return r.evolve(status=status, error=forward_error)

        record = await self._commit(saga_id, change)
        self._spawn(saga_id)
        return record

    # -- internals -----------------------------------------------------------------------------

    async def _commit(self, saga_id: str, *changes: Callable[[SagaRecord], SagaRecord]) -> SagaRecord:
        """Applies ``changes`` in order and persists them in one transaction, a history event each.

        A change that returns its input unchanged is skipped (no version, no event).
        """
        async with self._locks.hold(saga_id):
            current = await self.get(saga_id)
            records: list[SagaRecord] = []
            before = current
            for change in changes:
                after = change(before)
                if after is not before:
                    records.append(after)
                    before = after
            if not records:
                return current
            events = [describe(old, new) for old, new in zip([current, *records], records, strict=False)]
            record = records[-1]
            await self._store.save(record, *events)
            if record.terminal and saga_id not in self._tasks:
                self._current.pop(saga_id, None)
            else:
                self._current[saga_id] = record
            for each in records:
                self._hub.publish(each)
            return record

    def _spawn(self, saga_id: str, *, started: bool = False) -> None:
        """Drives the saga unless a runner does already. ``started``: it was just created with its
        first step RUNNING, so the first call follows at once (see :meth:`SagaRunner.run`)."""
        if saga_id in self._tasks:
            return
        task = asyncio.create_task(self._drive(saga_id, started), name=f"saga-{saga_id}")
        self._tasks[saga_id] = task

    async def _drive(self, saga_id: str, started: bool = False) -> None:
        try:
            record = await self.get(saga_id)
            definition = self._definitions.get(record.definition)
            if definition is None:
                message = f"definition {record.definition!r} is not registered in this orchestrator"
                log.error("saga %s: %s", saga_id, message)
                await self._commit(saga_id, lambda r: r.evolve(status=SagaStatus.FAILED, error=message))
                return
            abort = self._aborts.setdefault(saga_id, AbortSignal())
            record = await self._runner.run(record, definition, abort, started=started)
            log.info("saga %s finished %s", saga_id, record.status.name)
            self._retry_in.pop(saga_id, None)
        except Exception:
            # The store went away mid-transition (a database restart), typically: the saga is still
            # RUNNING/COMPENSATING in the store, so drive it again shortly rather than leave it
            # stalled until this orchestrator restarts. Backoff: 0.5 s doubling to 30 s.
            wait = self._retry_in.get(saga_id, 0.5)
            self._retry_in[saga_id] = min(wait * 2, _RETRY_MAX_S)
            log.exception("saga %s: runner stopped; driving it again in %.1f s", saga_id, wait)
            if not self._closed:
                self._retries[saga_id] = asyncio.get_running_loop().call_later(wait, self._respawn, saga_id)
        finally:
            self._tasks.pop(saga_id, None)
            self._aborts.pop(saga_id, None)
            current = self._current.get(saga_id)
            if current is not None and current.terminal:
                self._current.pop(saga_id, None)

    def _respawn(self, saga_id: str) -> None:
        self._retries.pop(saga_id, None)
        if not self._closed:
            self._current.pop(saga_id, None)  # read it back: a commit whose ack was lost is in the store
            self._spawn(saga_id)


def _encode_token(position: int) -> str:
    return base64.urlsafe_b64encode(f"saga:{position}".encode()).decode().rstrip("=")


def _decode_token(token: str) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        prefix, _, number = text.partition(":")
        if prefix != "saga" or not number.isdigit():
            raise ValueError(text)
        return int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidRequest("page_token", "is not a token from a previous List response") from None
