"""Server interceptor: a request that cannot be decoded is INVALID_ARGUMENT, for every service.

grpc.aio answers a request whose bytes do not parse (garbage, invalid UTF-8 in a
``string``) with UNKNOWN "Unexpected <class 'DecodeError'>", which reads as a
server bug and feeds breakers. This interceptor wraps each handler's request
deserializer so that a failure becomes a marker value instead of an exception,
and the behaviour answers the marker with INVALID_ARGUMENT and a ``BadRequest``
naming the field. It also refuses unsigned 64-bit fields above ``max_unsigned``
(default: the signed 64-bit range, which is all SQLite, PostgreSQL ``bigint`` and
most JSON parsers hold), so an out-of-range number is named at the edge instead of
failing as OverflowError deep inside a storage adapter.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from grpcmesh.sdk.errors import abort, bad_request
from grpcmesh.sdk.interceptors.handlers import Handler as _Handler
from grpcmesh.sdk.interceptors.handlers import rebuild

if TYPE_CHECKING:
    _ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    _ServerInterceptor = grpc.aio.ServerInterceptor

__all__ = ["INT64_MAX", "DecodeGuardInterceptor", "out_of_range"]

INT64_MAX = 2**63 - 1
_UNSIGNED = (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64)
_CACHE = 1024  # guarded handlers kept (one per method normally)


@dataclass(frozen=True, slots=True)
class _Undecodable:
    """Stands in for a request that could not be used: ``field`` → why."""

    field: str
    reason: str


def _wide(descriptor: Any, seen: dict[str, bool]) -> bool:
    """Whether messages of this type can hold an unsigned 64-bit field (memoised in ``seen``)."""
    name = descriptor.full_name
    if name not in seen:
        seen[name] = False  # a recursive type is settled by its other fields
        seen[name] = any(
            f.type in _UNSIGNED or (f.type == FieldDescriptor.TYPE_MESSAGE and _wide(f.message_type, seen))
            for f in descriptor.fields
        )
    return seen[name]


_WIDE: dict[str, bool] = {}


def out_of_range(message: Message, limit: int = INT64_MAX, prefix: str = "") -> tuple[str, int] | None:
    """The first unsigned 64-bit field above ``limit`` as (field path, value), or None."""
    if not _wide(message.DESCRIPTOR, _WIDE):
        return None
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        if field.type in _UNSIGNED:
            values = value if field.is_repeated else [value]
            for i, v in enumerate(values):
                if v > limit:
                    return (f"{path}[{i}]" if field.is_repeated else path), v
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            found = _nested(field, value, limit, path)
            if found:
                return found
    return None


def _nested(field: FieldDescriptor, value: Any, limit: int, path: str) -> tuple[str, int] | None:
    entry: Any = field.message_type
    if entry.GetOptions().map_entry:
        value_field = entry.fields_by_name["value"]
        for key, item in value.items():
            if value_field.type in _UNSIGNED and item > limit:
                return f"{path}[{key!r}]", item
            if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                found = out_of_range(item, limit, f"{path}[{key!r}].")
                if found:
                    return found
        return None
    if field.is_repeated:
        for i, item in enumerate(value):
            found = out_of_range(item, limit, f"{path}[{i}].")
            if found:
                return found
        return None
    return out_of_range(value, limit, f"{path}.")


def _safe_deserializer(deserialize: Callable[[bytes], Any], limit: int | None) -> Callable[[bytes], Any]:
    def run(data: bytes) -> Any:
        try:
            message = deserialize(data)
        except Exception as err:  # DecodeError, or anything a custom deserializer raises
            return _Undecodable("", f"the request is not a valid message ({type(err).__name__}: {err})")
        if limit is not None and isinstance(message, Message):
            found = out_of_range(message, limit)
            if found:
                return _Undecodable(found[0], f"{found[1]} is out of range (at most {limit})")
        return message

    return run


async def _refuse(context: grpc.aio.ServicerContext[Any, Any], bad: _Undecodable) -> None:
    field = f"{bad.field}: " if bad.field else ""
    await abort(
        context,
        grpc.StatusCode.INVALID_ARGUMENT,
        f"invalid request: {field}{bad.reason}",
        [bad_request({bad.field or "request": bad.reason})],
    )


async def _checked_stream(requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, _Undecodable):
            await _refuse(context, request)
        yield request


def _guard_behavior(behavior: Callable[..., Any], streaming_request: bool) -> Callable[..., Any] | None:
    """The behaviour, refusing undecodable requests first; None for sync behaviours (left alone)."""

    def check(request: Any, context: Any) -> Any:
        return _checked_stream(request, context) if streaming_request else request

    if inspect.isasyncgenfunction(behavior):

        async def gen(request: Any, context: Any) -> AsyncIterator[Any]:
            if isinstance(request, _Undecodable):
                await _refuse(context, request)
            async for item in behavior(check(request, context), context):
                yield item

        return gen
    if inspect.iscoroutinefunction(behavior):

        async def coro(request: Any, context: Any) -> Any:
            if isinstance(request, _Undecodable):
                await _refuse(context, request)
            return await behavior(check(request, context), context)

        return coro
    return None


def guard(handler: _Handler, limit: int | None) -> _Handler:
    """``handler`` with a safe deserializer and a behaviour that answers bad requests."""
    if handler.request_deserializer is None:
        return handler
    safe = _safe_deserializer(handler.request_deserializer, limit)
    return rebuild(handler, lambda behavior: _guard_behavior(behavior, handler.request_streaming), safe)


class DecodeGuardInterceptor(_ServerInterceptor):
    """Undecodable or out-of-range requests get INVALID_ARGUMENT (install after the context one)."""

    def __init__(self, max_unsigned: int | None = INT64_MAX) -> None:
        self._limit = max_unsigned
        self._guarded: dict[int, tuple[_Handler, _Handler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[_Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> _Handler:
        """The guarded handler (built once per handler object); None (no such method) passes."""
        handler = await continuation(handler_call_details)
        if handler is None:  # grpc-stubs says it cannot be; it is for an unknown method
            return handler  # type: ignore[unreachable]
        cached = self._guarded.get(id(handler))
        if cached is None or cached[0] is not handler:
            if len(self._guarded) >= _CACHE:  # handlers rebuilt per call by another interceptor
                self._guarded.clear()
            cached = (handler, guard(handler, self._limit))
            self._guarded[id(handler)] = cached
        return cached[1]
