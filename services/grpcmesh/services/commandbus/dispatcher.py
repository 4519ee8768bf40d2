"""Dispatch one command: validate, load, decide, append with the exact revision, retry conflicts.

Idempotency by ``command_id`` without a second database: every event a command
appends carries ``command_id`` in its metadata and an id derived from it
(uuid5), so

* a retry after the append committed finds its own events while loading the
  stream and answers the original result (``duplicate``), however many commands
  ran since — it never re-decides against newer state;
* two racing copies of one command propose the same event ids, and the event
  store's per-stream idempotent append turns the loser into a duplicate.

Commands that produce no events and commands a rule rejected leave no trace, so
their retries are decided again.

Round trips: with the stream cache a command for an aggregate this process wrote last
is decided on the remembered stream and costs one Append; its exact expected revision
proves nothing changed in between. Only a write or the command's own events answer
from memory: a rejection or a no-op is confirmed by a read first. A command that creates
its aggregate is first decided on an empty stream (appended with ``no_stream``).

Concurrency: commands for one aggregate queue inside this process; across
processes the exact expected revision catches the race, and the loser reloads
and decides again (jittered backoff, at most ``max_attempts``, then ABORTED).
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from dataclasses import dataclass

from grpcmesh.api.v1 import commandbus_pb2 as cb
from grpcmesh.api.v1 import eventstore_pb2 as es
from grpcmesh.sdk import Aborted, AlreadyExists
from grpcmesh.services.commandbus.registry import HandlerRegistry
from grpcmesh.services.commandbus.store import EventStreams
from grpcmesh.services.common.locks import KeyedLocks
from grpcmesh.services.cqrs.aggregate import DomainError
from grpcmesh.services.cqrs.codec import CONTENT_TYPE
from grpcmesh.services.cqrs.envelope import check_id, check_metadata, check_uuid, unpack
from grpcmesh.services.cqrs.handlers import CommandHandler
from grpcmesh.services.cqrs.rejection import Rejected, invalid

__all__ = ["COMMAND_ID", "COMMAND_TYPE", "DispatchConfig", "Dispatcher", "event_id"]

log = logging.getLogger("grpcmesh.commandbus")

COMMAND_ID = "command_id"  # event metadata keys the bus owns
COMMAND_TYPE = "command_type"


@dataclass(frozen=True, slots=True)
class DispatchConfig:
    max_attempts: int = 10  # loads + appends per command before giving up with ABORTED
    backoff: float = 0.005  # first conflict backoff in seconds (doubles, jittered)
    max_backoff: float = 0.2


def event_id(command_id: uuid.UUID, index: int) -> str:
    """The id of the ``index``-th event of a command: the same on every retry."""
    return str(uuid.uuid5(command_id, f"event-{index}"))


@dataclass(frozen=True, slots=True)
class _Job:
    """One command being dispatched, as validated."""

    handler: CommandHandler
    message: object
    command: cb.Command
    command_uuid: uuid.UUID
    aggregate_id: str
    pinned: int | None


class _Recheck:
    """The outcome of deciding on remembered state that is not an answer until a read confirms it."""


_RECHECK = _Recheck()


def _previous(history: list[es.RecordedEvent], command_id: str, aggregate_id: str) -> cb.CommandResult | None:
    mine = [e for e in history if e.metadata.get(COMMAND_ID) == command_id]
    if not mine:
        return None
    last = mine[-1]
    return cb.CommandResult(
        aggregate_id=aggregate_id,
        revision=last.revision,
        position=last.position,
        event_count=len(mine),
        duplicate=True,
    )


class Dispatcher:
    """Runs commands against event-sourced aggregates stored in the event store."""

    def __init__(
        self, registry: HandlerRegistry, streams: EventStreams, config: DispatchConfig | None = None
    ) -> None:
        self.registry = registry
        self.streams = streams
        self.config = config or DispatchConfig()
        self._locks = KeyedLocks()  # one command per aggregate at a time in this process

    async def dispatch(self, command: cb.Command) -> cb.CommandResult:
        command_uuid = check_uuid(command.command_id, "command_id")
        check_metadata(command.metadata)
        handler, message = unpack(command.payload, command.HasField("payload"), self.registry)
        violations = {f"payload.{f}": why for f, why in handler.validate(message).items()}
        if violations:
            raise invalid(violations)
        if command.aggregate_id:
            aggregate_id = check_id(command.aggregate_id, "aggregate_id")
        elif handler.creates:
            aggregate_id = str(uuid.uuid5(command_uuid, "aggregate"))
        else:
            raise invalid({"aggregate_id": f"is required for {handler.message_type.DESCRIPTOR.name}"})
        pinned = command.expected_revision if command.HasField("expected_revision") else None
        delay = self.config.backoff
        stream_id = handler.stream_id(aggregate_id)
        job = _Job(handler, message, command, command_uuid, aggregate_id, pinned)
        async with self._locks.hold(stream_id):
            attempt = 0
            use_cache = True
            while attempt < self.config.max_attempts:
                known = self.streams.known(stream_id) if use_cache else None
                if known is None and use_cache and handler.creates:
                    known = []  # a create most likely starts a new stream: no_stream checks that
                history = known if known is not None else await self.streams.read(stream_id)
                result = await self._attempt(job, history, remembered=known is not None)
                if isinstance(result, cb.CommandResult):
                    return result
                use_cache = False  # a rejection or no-op from memory, or a conflict: read from now on
                if result is _RECHECK:
                    continue
                attempt += 1
                log.debug("conflict on %s (attempt %d), reloading", aggregate_id, attempt)
                await asyncio.sleep(random.uniform(0, delay))
                delay = min(delay * 2, self.config.max_backoff)
        raise Rejected(
            "ABORTED",
            f"aggregate {aggregate_id!r} kept changing: gave up after {self.config.max_attempts} attempts",
            reason="TOO_MANY_CONFLICTS",
            metadata={"aggregate_id": aggregate_id},
        )

    async def _attempt(
        self, job: _Job, history: list[es.RecordedEvent], *, remembered: bool
    ) -> cb.CommandResult | _Recheck | None:
        """The result, or None after a conflict (the caller reloads and tries again).

        On ``remembered`` history (not read for this command) only a write (checked by its exact
        expected revision) or finding the command's own events is an answer; any other outcome is
        _RECHECK, so a rejection or a no-op is never answered from state that may be stale.
        """
        done = _previous(history, job.command.command_id, job.aggregate_id)
        if done is not None:
            return done
        try:
            result = await self._decide(job, history)
        except Rejected:
            if remembered:
                return _RECHECK
            raise
        if remembered and result is not None and result.event_count == 0:
            return _RECHECK  # a no-op: nothing was written to prove the state current
        return result

    async def _decide(self, job: _Job, history: list[es.RecordedEvent]) -> cb.CommandResult | None:
        """Loads the aggregate from ``history``, decides and appends with the exact revision."""
        handler, message, command, aggregate_id, pinned = (
            job.handler,
            job.message,
            job.command,
            job.aggregate_id,
            job.pinned,
        )
        stream_id = handler.stream_id(aggregate_id)
        aggregate = handler.aggregate.load(
            aggregate_id, (handler.codec.decode(e.type, e.data) for e in history)
        )
        current = history[-1].revision if history else None
        if pinned is not None and pinned != current:
            raise _stale(aggregate_id, pinned, current)
        if not handler.creates and not aggregate.exists:
            raise Rejected("NOT_FOUND", f"{handler.category} {aggregate_id!r} does not exist")
        try:
            handler.decide(aggregate, message)
        except DomainError as err:
            raise Rejected(
                "FAILED_PRECONDITION",
                err.message,
                reason=err.rule,
                metadata={"aggregate_id": aggregate_id, "rule": err.rule},
            ) from None
        if not aggregate.changes:
            position = history[-1].position if history else 0
            return cb.CommandResult(aggregate_id=aggregate_id, revision=current or 0, position=position)
        meta = {**command.metadata, COMMAND_ID: command.command_id, COMMAND_TYPE: handler.type_url}
        proposed = []
        for index, event in enumerate(aggregate.changes):
            type_name, data = handler.codec.encode(event)
            proposed.append(
                es.ProposedEvent(
                    id=event_id(job.command_uuid, index),
                    type=type_name,
                    data=data,
                    content_type=CONTENT_TYPE,
                    metadata=meta,
                )
            )
        try:
            appended = await self.streams.append(stream_id, current, proposed)
        except (Aborted, AlreadyExists):
            if pinned is not None:
                raise _stale(aggregate_id, pinned, None) from None
            return None
        return cb.CommandResult(
            aggregate_id=aggregate_id,
            revision=appended.next_revision,
            position=appended.position,
            event_count=len(proposed),
            duplicate=appended.duplicate,
        )


def _stale(aggregate_id: str, expected: int, actual: int | None) -> Rejected:
    seen = "changed" if actual is None else str(actual)
    return Rejected(
        "ABORTED",
        f"aggregate {aggregate_id!r} is at revision {seen}, not expected_revision {expected}",
        reason="WRONG_EXPECTED_REVISION",
        metadata={"aggregate_id": aggregate_id, "expected": str(expected), "actual": seen},
    )
