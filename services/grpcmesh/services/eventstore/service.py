"""The gRPC face of the event store: maps requests to the Storage port and errors to statuses.

* INVALID_ARGUMENT + BadRequest naming each bad field (see :mod:`.validation`).
* ABORTED for a wrong expected revision (Append, DeleteStream), with ErrorInfo
  (reason WRONG_EXPECTED_REVISION) metadata ``stream_id``, ``expected`` and ``actual``
  (``any`` / ``no_stream`` / ``stream_exists`` / a revision number; ``actual`` is
  ``no_stream`` or a number).
  ABORTED rather than FAILED_PRECONDITION because the fix is "re-read and retry".
* ALREADY_EXISTS when some event ids of an append were already written and the
  append is not a retry of that write (ErrorInfo reason DUPLICATE_EVENT_ID).
* NOT_FOUND for ReadStream of a stream with no events, or soft-deleted (DeleteStream).
* RESOURCE_EXHAUSTED when a live subscriber falls more than its buffer (bytes) behind, and
  for a Subscribe beyond the server-wide limit of concurrent subscriptions (ErrorInfo
  reason TOO_MANY_SUBSCRIPTIONS).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn, TypeVar

import grpc

from grpcmesh.api.v1 import eventstore_pb2 as pb
from grpcmesh.api.v1 import eventstore_pb2_grpc as pb_grpc
from grpcmesh.sdk.errors import abort, bad_request, error_info
from grpcmesh.services.eventstore.domain import (
    DuplicateEventId,
    WrongExpectedRevision,
)
from grpcmesh.services.eventstore.storage.base import Storage
from grpcmesh.services.eventstore.subscriptions import (
    SubscriberTooSlow,
    Subscription,
    SubscriptionConfig,
    event_bytes,
    page_count,
)
from grpcmesh.services.eventstore.validation import (
    Invalid,
    Limits,
    expected_revision,
    parse_append,
    read_count,
    validate_stream_id,
    validate_subscribe,
)
from grpcmesh.services.eventstore.wire import (
    metadata_from_proto,
    metadata_to_proto,
    subscribe_responses,
    to_proto,
)

__all__ = ["DOMAIN", "EventStoreService"]

log = logging.getLogger("grpcmesh.eventstore")

T = TypeVar("T")

DOMAIN = "eventstore.grpcmesh"
_PAGE = 256  # most rows fetched per storage read while streaming a response
_MAX_STORED = 2**63 - 1  # largest revision / position the storage adapters can hold


async def _conflict(context: grpc.aio.ServicerContext[Any, Any], err: WrongExpectedRevision) -> NoReturn:
    actual = "no_stream" if err.actual is None else str(err.actual)
    meta = {"stream_id": err.stream_id, "expected": str(err.expected), "actual": actual}
    await abort(
        context, grpc.StatusCode.ABORTED, str(err), [error_info("WRONG_EXPECTED_REVISION", DOMAIN, meta)]
    )


async def _checked(context: grpc.aio.ServicerContext[Any, Any], check: Callable[[], T]) -> T:
    """``check()``'s result, or INVALID_ARGUMENT with a BadRequest naming each bad field."""
    try:
        return check()
    except Invalid as err:
        await abort(
            context,
            grpc.StatusCode.INVALID_ARGUMENT,
            f"invalid request: {err}",
            [bad_request(err.violations)],
        )


class EventStoreService(pb_grpc.EventStoreServicer):
    """grpcmesh.api.v1.EventStore over any :class:`Storage`."""

    def __init__(
        self,
        storage: Storage,
        limits: Limits | None = None,
        subscriptions: SubscriptionConfig | None = None,
    ) -> None:
        self.storage = storage
        self.limits = limits or Limits()
        self.subscriptions = subscriptions or SubscriptionConfig()
        self.active_subscriptions = 0
        self._replay_slots = asyncio.Semaphore(self.subscriptions.max_replaying)

    async def Append(
        self, request: pb.AppendRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.AppendResponse:
        stream_id, expected, events = await _checked(context, lambda: parse_append(request, self.limits))
        try:
            result = await self.storage.append(stream_id, expected, events)
        except WrongExpectedRevision as err:
            await _conflict(context, err)
        except DuplicateEventId as err:
            field = f"events[{err.index}].id"
            info = error_info("DUPLICATE_EVENT_ID", DOMAIN, {"event_id": err.event_id, "field": field})
            await abort(context, grpc.StatusCode.ALREADY_EXISTS, str(err), [info])
        return pb.AppendResponse(
            next_revision=result.next_revision, position=result.position, duplicate=result.duplicate
        )

    async def ReadStream(
        self, request: pb.ReadStreamRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.RecordedEvent]:
        await _checked(context, lambda: validate_stream_id(request.stream_id))
        backwards = request.direction == pb.DIRECTION_BACKWARDS
        remaining = read_count(request.max_count, self.limits)
        # uint64 on the wire, signed 64-bit in storage: nothing can exist beyond that
        cursor = min(request.from_revision, _MAX_STORED) if request.HasField("from_revision") else None
        sent, largest = 0, self.subscriptions.page_bytes  # the first read is one event
        while remaining > 0:
            count = min(remaining, page_count(largest, self.subscriptions.page_bytes, _PAGE))
            page = await self.storage.read_stream(
                request.stream_id, backwards=backwards, from_revision=cursor, max_count=count
            )
            if not page:
                break
            largest = max(event_bytes(e) for e in page)
            for event in page:
                yield to_proto(event)
            sent += len(page)
            remaining -= len(page)
            cursor = page[-1].revision + (-1 if backwards else 1)
            if len(page) < count or cursor < 0:
                break
        if sent == 0:
            last = await self.storage.stream_revision(request.stream_id)
            cut = (await self.storage.get_stream_metadata(request.stream_id)).truncate_before
            if last is None or (cut is not None and cut > last):
                await context.abort(grpc.StatusCode.NOT_FOUND, f"stream {request.stream_id!r} has no events")

    async def DeleteStream(
        self, request: pb.DeleteStreamRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.StreamMetadata:
        await _checked(context, lambda: validate_stream_id(request.stream_id))
        try:
            meta = await self.storage.delete_stream(request.stream_id, expected_revision(request))
        except WrongExpectedRevision as err:
            await _conflict(context, err)
        return metadata_to_proto(meta)

    async def SetStreamMetadata(
        self, request: pb.SetStreamMetadataRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.StreamMetadata:
        await _checked(context, lambda: validate_stream_id(request.stream_id))
        meta = metadata_from_proto(request.metadata)
        return metadata_to_proto(await self.storage.set_stream_metadata(request.stream_id, meta))

    async def GetStreamMetadata(
        self, request: pb.GetStreamMetadataRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.StreamMetadata:
        await _checked(context, lambda: validate_stream_id(request.stream_id))
        return metadata_to_proto(await self.storage.get_stream_metadata(request.stream_id))

    async def ReadAll(
        self, request: pb.ReadAllRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.RecordedEvent]:
        after = min(max(request.from_position, 1) - 1, _MAX_STORED)
        remaining = read_count(request.max_count, self.limits)
        largest = self.subscriptions.page_bytes  # the first read is one event
        while remaining > 0:
            count = min(remaining, page_count(largest, self.subscriptions.page_bytes, _PAGE))
            page = await self.storage.read_all(after, count)
            largest = max((event_bytes(e) for e in page), default=largest)
            for event in page:
                yield to_proto(event)
            remaining -= len(page)
            if len(page) < count:
                break
            after = page[-1].position

    async def Subscribe(
        self, request: pb.SubscribeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        await _checked(context, lambda: validate_subscribe(request, self.limits))
        limit = self.subscriptions.max_subscriptions
        if self.active_subscriptions >= limit:
            info = error_info("TOO_MANY_SUBSCRIPTIONS", DOMAIN, {"limit": str(limit)})
            message = f"too many concurrent subscriptions: the limit is {limit}; retry later"
            await abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, message, [info])
        self.active_subscriptions += 1
        try:
            await self._subscribe(request, context)
        finally:
            self.active_subscriptions -= 1

    async def _subscribe(
        self, request: pb.SubscribeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        guard = _WriteGuard()
        sub = Subscription(
            self.storage,
            min(request.after_position, _MAX_STORED),
            stream_prefixes=list(request.stream_prefixes),
            event_types=list(request.event_types),
            config=self.subscriptions,
            on_overflow=guard.interrupt,
            replay_slots=self._replay_slots,
        )
        failure: SubscriberTooSlow | None = None
        batch_size = min(max(request.batch_size, 1), _PAGE)
        try:
            while True:
                for message in subscribe_responses(await sub.next_batch(batch_size), batched=batch_size > 1):
                    await guard.write(context, message)
        except StopAsyncIteration:
            pass
        except SubscriberTooSlow as err:
            failure = err
        except asyncio.CancelledError:
            if not guard.interrupted:
                raise
            failure = SubscriberTooSlow(
                f"subscriber fell more than {self.subscriptions.buffer_bytes} bytes behind"
            )
        finally:
            await sub.aclose()
        if failure is not None:
            await guard.settle()
            log.warning("subscriber too slow, disconnecting: %s", failure)
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(failure))


class _WriteGuard:
    """Lets the subscription interrupt a ``context.write`` blocked by a client that stopped reading."""

    def __init__(self) -> None:
        self._task: asyncio.Task[Any] | None = None
        self._writing = False
        self.interrupted = False
        self._delivered = False

    async def write(self, context: grpc.aio.ServicerContext[Any, Any], message: pb.SubscribeResponse) -> None:
        self._task = asyncio.current_task()
        self._writing = True
        try:
            await context.write(message)
        except asyncio.CancelledError:
            self._delivered = True
            raise
        finally:
            self._writing = False

    def interrupt(self) -> None:
        """Called on overflow; only a blocked write needs cancelling (a waiting reader gets the error)."""
        if self._writing and self._task is not None:
            self.interrupted = True
            self._task.cancel()

    async def settle(self) -> None:
        """Consumes our own cancellation if it was requested but not yet delivered."""
        if self.interrupted and not self._delivered:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0)
        if self.interrupted and self._task is not None:
            self._task.uncancel()
