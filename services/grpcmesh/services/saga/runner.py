"""Drives one saga forward (or backward) one persisted transition at a time.

Forward: for the first step not yet SUCCEEDED, persist RUNNING (attempts + 1), then
call; on success persist SUCCEEDED with the result, in the same transaction as the next
step's RUNNING (or the saga's COMPLETED). The first step's RUNNING is committed with the
saga's creation, so a 3-step saga commits 4 times. A non-retryable error or
exhausted retries persist the step FAILED and the saga COMPENSATING. Backward:
for the newest step that may have taken effect (SUCCEEDED, or RUNNING when the
outcome is unknown, e.g. after Abort) persist COMPENSATING, call its
compensation, persist COMPENSATED; a compensation that fails after its retries
leaves the saga FAILED for an operator. Every state is written before the call
it announces, so a restart re-issues exactly the calls that may not have landed
— with the same ``x-idempotency-key``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any, cast

from tenacity import RetryCallState, wait_exponential_jitter

from grpcmesh.sdk.errors import MeshError
from grpcmesh.sdk.waiting import wait_set
from grpcmesh.services.saga.caller import StepCaller
from grpcmesh.services.saga.definitions import Call, SagaDefinition, StepContext, StepRetry
from grpcmesh.services.saga.domain import SagaRecord, SagaStatus, StepStatus, step_key

__all__ = ["AbortRequested", "AbortSignal", "Commit", "SagaRunner", "start_step"]

log = logging.getLogger("grpcmesh.saga")

Change = Callable[[SagaRecord], SagaRecord]
Commit = Callable[..., Awaitable[SagaRecord]]
"""``commit(saga_id, *changes)``: applies the changes to the saga's current record and persists
them in one transaction (a change returning its input is skipped); returns the new record."""


def backoff(policy: StepRetry, attempt: int) -> float:
    """Seconds before the retry that follows failed attempt ``attempt`` (1-based): tenacity's
    exponential jitter, asked only when a retry happens (a loop of its own per step cost ~60 µs)."""
    wait = wait_exponential_jitter(multiplier=policy.initial, max=policy.maximum, jitter=policy.jitter)
    return float(wait(cast(RetryCallState, SimpleNamespace(attempt_number=attempt))))


def start_step(index: int) -> Change:
    """The transition that marks step ``index`` RUNNING (one more attempt)."""

    def change(r: SagaRecord) -> SagaRecord:
        return r.with_step(index, status=StepStatus.RUNNING, attempts=r.steps[index].attempts + 1)

    return change


class AbortRequested(Exception):
    """The operator aborted the saga while a step was in flight."""


class SagaRunner:
    def __init__(
        self,
        commit: Commit,
        caller: StepCaller,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._commit = commit
        self._caller = caller
        self._sleep = sleep

    async def run(
        self, record: SagaRecord, definition: SagaDefinition, abort: AbortSignal, *, started: bool = False
    ) -> SagaRecord:
        """Runs until the saga is terminal; returns the last committed record. ``started``: the
        next step's RUNNING was committed with what came before (its creation, or the previous
        step's result), so its call follows without a commit of its own."""
        while not record.terminal:
            if record.status is SagaStatus.RUNNING:
                record, started = await self._forward(record, definition, abort, started)
            else:
                record, started = await self._undo(record, definition), False
        return record

    async def _forward(
        self, rec: SagaRecord, definition: SagaDefinition, abort: AbortSignal, started: bool
    ) -> tuple[SagaRecord, bool]:
        sid = rec.saga_id
        if rec.abort_reason and not started:
            return await self._commit(sid, lambda r: r.evolve(status=SagaStatus.COMPENSATING)), False
        index = rec.next_forward()
        if index is None:
            return await self._commit(sid, lambda r: r.evolve(status=SagaStatus.COMPLETED)), False
        step = definition.steps[index]
        ctx = StepContext(sid, step.name, rec.input, rec.results())
        try:
            key = step_key(sid, step.name)
            result = await self._attempts(
                sid, step.action, ctx, step.retry, key, start_step(index), abort, started
            )
        except AbortRequested:
            # The call may have landed: the step stays RUNNING and is compensated.
            return await self._commit(sid, lambda r: r.evolve(status=SagaStatus.COMPENSATING)), False
        except Exception as err:  # any failure of the step fails the step
            failed = (StepStatus.FAILED, SagaStatus.COMPENSATING)
            return await self._failed(sid, index, f"step {step.name}", err, failed), False
        return await self._succeeded(sid, index, result, len(definition.steps))

    async def _succeeded(
        self, sid: str, index: int, result: dict[str, Any], steps: int
    ) -> tuple[SagaRecord, bool]:
        """Commits the step's result together with what follows it, so a 3-step saga commits 4
        times, not 8: the next step's RUNNING (still durable before its call), or COMPLETED.
        An abort requested meanwhile is left to :meth:`_forward` (compensation)."""
        nxt = index + 1
        started: list[bool] = []

        def then(r: SagaRecord) -> SagaRecord:
            started.clear()
            if r.abort_reason or r.status is not SagaStatus.RUNNING:
                return r
            if nxt == steps:
                return r.evolve(status=SagaStatus.COMPLETED)
            started.append(True)
            return start_step(nxt)(r)

        record = await self._commit(
            sid, lambda r: r.with_step(index, status=StepStatus.SUCCEEDED, result=result), then
        )
        return record, bool(started)

    async def _undo(self, rec: SagaRecord, definition: SagaDefinition) -> SagaRecord:
        sid = rec.saga_id
        index = rec.next_undo()
        if index is None:
            done = SagaStatus.ABORTED if rec.abort_reason else SagaStatus.COMPENSATED
            return await self._commit(sid, lambda r: r.evolve(status=done))
        step = definition.steps[index]
        if step.compensate is None:
            return await self._commit(sid, lambda r: r.with_step(index, status=StepStatus.COMPENSATED))
        ctx = StepContext(sid, step.name, rec.input, rec.results(), rec.steps[index].result or {})

        def started(r: SagaRecord) -> SagaRecord:
            attempts = r.steps[index].compensation_attempts + 1
            return r.with_step(index, status=StepStatus.COMPENSATING, compensation_attempts=attempts)

        key = step_key(sid, step.name, compensate=True)
        try:
            await self._attempts(sid, step.compensate, ctx, step.undo_retry, key, started, None)
        except Exception as err:  # any failure leaves it to an operator
            failed = (StepStatus.COMPENSATION_FAILED, SagaStatus.FAILED)
            return await self._failed(sid, index, f"compensation of step {step.name}", err, failed)
        return await self._commit(sid, lambda r: r.with_step(index, status=StepStatus.COMPENSATED))

    async def _failed(
        self, sid: str, index: int, what: str, err: Exception, statuses: tuple[StepStatus, SagaStatus]
    ) -> SagaRecord:
        """Persists a step's failure: its error, the step's and the saga's next status, the cause."""
        error = str(err) or type(err).__name__
        cause = f"{what} failed: {error}"
        step_status, saga_status = statuses
        log.log(
            logging.WARNING if saga_status is SagaStatus.COMPENSATING else logging.ERROR,
            "saga %s: %s; now %s",
            sid,
            cause,
            saga_status.name,
        )
        return await self._commit(
            sid,
            lambda r: r.with_step(
                index, status=step_status, error=error, saga_status=saga_status, saga_error=cause
            ),
        )

    async def _attempts(
        self,
        saga_id: str,
        call: Call,
        ctx: StepContext,
        policy: StepRetry,
        key: str,
        started: Change,
        abort: AbortSignal | None,
        already_started: bool = False,
    ) -> dict[str, Any]:
        """Calls with retries; each attempt commits ``started`` first (the first one not when
        ``already_started``: its RUNNING was committed with the previous step's result)."""
        request = call.request(ctx)

        attempt = 0
        while True:
            attempt += 1
            try:
                if already_started:  # committed before: the call follows it, as below
                    already_started = False
                else:
                    if abort is not None and abort.is_set():
                        raise AbortRequested
                    await self._commit(saga_id, started)  # durable before the call
                return await self._race(self._caller(call, request, key), abort)
            except MeshError as err:
                if attempt >= policy.attempts or err.code not in policy.retryable:
                    raise
                seconds = backoff(policy, attempt)
            if abort is None:
                await self._sleep(seconds)
            else:
                await wait_set(abort, seconds)

    @staticmethod
    async def _race(call: Awaitable[dict[str, Any]], abort: AbortSignal | None) -> dict[str, Any]:
        """The call's result; AbortRequested when ``abort`` is set first (its ``set()`` cancels the
        call: no waiter task and no ``asyncio.wait`` per call)."""
        task = asyncio.ensure_future(call)
        if abort is None:
            return await task
        if abort.is_set():
            task.cancel()
            raise AbortRequested
        abort.cancels.add(task)
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the runner itself is being stopped
            raise AbortRequested from None
        finally:
            abort.cancels.discard(task)


class AbortSignal(asyncio.Event):
    """An abort request: ``set()`` also cancels the step calls registered in ``cancels``."""

    def __init__(self) -> None:
        super().__init__()
        self.cancels: set[asyncio.Future[Any]] = set()

    def set(self) -> None:
        super().set()
        for task in list(self.cancels):
            task.cancel()
