"""The transparent proxy core: any method, raw bytes, all four call kinds.

:class:`ProxyHandler` is a grpc.aio generic handler. For each call it asks its
side (outbound or inbound) what the method is; methods known to be unary take
the unary fast path, everything else is forwarded as a stream (bidi forwarding
is correct for every kind, so an unknown method is never truncated).

:class:`Forwarder` moves one call to a :class:`~grpcmesh.sdk.cluster.Cluster`:
request metadata in, response initial metadata, messages, trailing metadata
and status (code, details, ``grpc-status-details-bin``) back unchanged; the
deadline passed on as the time remaining; a cancelled caller cancels the
upstream call; retries through the cluster's policy, streams only before the
response has started.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, NoReturn, Protocol

import grpc
from grpc.aio import EOF  # type: ignore[attr-defined]

from grpcmesh.sdk.cluster import Cluster
from grpcmesh.sdk.discovery import Endpoint
from grpcmesh.sdk.headers import HOP_BY_HOP
from grpcmesh.sdk.idempotency import CallKind, MethodInfo
from grpcmesh.sdk.retry import NOT_REACHED, never_reached, rpc_error
from grpcmesh.sidecar.replay import Replay
from grpcmesh.sidecar.upstream import open_call, pump

__all__ = ["CallResult", "Forwarder", "ProxyHandler", "Side", "forwardable", "relay_error"]

Ctx = grpc.aio.ServicerContext[bytes, bytes]
Md = list[tuple[str, str | bytes]]

_RESERVED_TRAILERS = frozenset({"grpc-status", "grpc-message"})


class Side(Protocol):
    """What the generic handler delegates to (the outbound or the inbound listener)."""

    def method_info(self, method: str) -> MethodInfo: ...

    async def unary(self, method: str, info: MethodInfo, request: bytes, ctx: Ctx) -> bytes: ...

    def stream(
        self, method: str, info: MethodInfo, request: bytes | AsyncIterator[bytes], ctx: Ctx
    ) -> AsyncIterator[bytes]: ...


class ProxyHandler(grpc.GenericRpcHandler):  # type: ignore[type-arg]
    """Generic handler: one cached method handler per (method, kind)."""

    def __init__(self, side: Side) -> None:
        self._side = side
        self._cache: dict[str, tuple[MethodInfo, Any]] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        info = self._side.method_info(method)
        cached = self._cache.get(method)
        if cached is not None and cached[0] is info:
            return cached[1]
        handler = self._make(method, info)
        if len(self._cache) > 10_000:  # garbage method names must not grow memory without bound
            self._cache.clear()
        self._cache[method] = (info, handler)
        return handler

    def _make(self, method: str, info: MethodInfo) -> Any:
        side = self._side
        stream = functools.partial(side.stream, method, info)
        if info.kind is CallKind.UNARY_UNARY:
            return grpc.unary_unary_rpc_method_handler(functools.partial(side.unary, method, info))
        if info.kind is CallKind.UNARY_STREAM:
            return grpc.unary_stream_rpc_method_handler(stream)
        if info.kind is CallKind.STREAM_UNARY:
            return grpc.stream_unary_rpc_method_handler(_single(stream))
        return grpc.stream_stream_rpc_method_handler(stream)


def _single(stream: Callable[..., AsyncIterator[bytes]]) -> Callable[..., Awaitable[bytes]]:
    """Adapts the stream path to a stream-unary behaviour (exactly one response)."""

    async def behaviour(request: AsyncIterator[bytes], ctx: Ctx) -> bytes:
        out = b""
        async for msg in stream(request, ctx):
            out = msg
        return out

    return behaviour


def forwardable(metadata: Iterable[tuple[str, str | bytes]] | None) -> Md:
    """Trailers/headers to relay: no connection headers, no grpc-status/-message (re-created)."""
    return [(k, v) for k, v in metadata or () if k not in _RESERVED_TRAILERS and k not in HOP_BY_HOP]


async def relay_error(ctx: Ctx, err: grpc.aio.AioRpcError, extra: Md | None = None) -> NoReturn:
    """Ends the call with the upstream's code, details and trailers (incl. rich details)."""
    trailers = forwardable(err.trailing_metadata())  # type: ignore[arg-type]
    if extra:
        trailers.extend(extra)
    await ctx.abort(err.code(), err.details() or "", tuple(trailers))
    raise AssertionError("abort returned")  # pragma: no cover


class CallResult:
    """What the caller's telemetry wants to know about a forwarded call."""

    __slots__ = ("attempts", "channel", "code")

    def __init__(self) -> None:
        self.attempts = 0
        self.code = grpc.StatusCode.OK
        self.channel: grpc.aio.Channel | None = None  # of the last attempt


class Forwarder:
    """Forwards calls to a cluster; one instance per listener."""

    def __init__(self, *, stream_replay_bytes: int = 1 << 20, mark_not_reached: bool = False) -> None:
        self._unary: dict[tuple[grpc.aio.Channel, str], Any] = {}
        self._replay_limit = stream_replay_bytes
        self._mark = mark_not_reached

    def _extra(self, err: grpc.aio.AioRpcError) -> Md | None:
        """The not-reached marker for errors that show the upstream got nothing."""
        return [(NOT_REACHED, "1")] if self._mark and never_reached(err) else None

    def _multicallable(self, channel: grpc.aio.Channel, method: str) -> Any:
        key = (channel, method)
        mc = self._unary.get(key)
        if mc is None:
            if len(self._unary) > 10_000:
                self._unary.clear()
            mc = self._unary[key] = channel.unary_unary(method, None, None)
        return mc

    async def unary(
        self,
        cluster: Cluster,
        method: str,
        request: bytes,
        metadata: Md,
        ctx: Ctx,
        *,
        idempotent: bool,
        result: CallResult,
    ) -> bytes:
        """Unary fast path: one message each way, retries inside ``Cluster.invoke``."""
        mcs = self._multicallable

        async def call(channel: grpc.aio.Channel, timeout: float | None) -> tuple[bytes, Any]:  # noqa: ASYNC109
            result.attempts += 1
            result.channel = channel
            c = mcs(channel, method)(request, metadata=metadata, timeout=timeout)
            response: bytes = await c
            return response, c

        try:
            response, c = await cluster.invoke(call, idempotent=idempotent, timeout=ctx.time_remaining())
        except grpc.aio.AioRpcError as err:
            result.code = err.code()
            await relay_error(ctx, err, self._extra(err))
        initial = await c.initial_metadata()
        if initial:
            await ctx.send_initial_metadata(tuple(forwardable(initial)))
        trailing = await c.trailing_metadata()
        if trailing:
            ctx.set_trailing_metadata(tuple(forwardable(trailing)))
        return response

    async def stream(
        self,
        cluster: Cluster,
        method: str,
        kind: CallKind,
        request: bytes | AsyncIterator[bytes],
        metadata: Md,
        ctx: Ctx,
        *,
        idempotent: bool,
        result: CallResult,
    ) -> AsyncIterator[bytes]:
        """Stream path for every call kind; retried only until response headers arrive."""
        clock = time.monotonic
        remaining = ctx.time_remaining()
        deadline = None if remaining is None else clock() + remaining
        replay = None if isinstance(request, bytes) else Replay(request, self._replay_limit)
        tried: list[Endpoint] = []
        current: list[Any] = [None, None, 0.0]  # call, endpoint, start time
        pumps: list[asyncio.Task[None]] = []

        async def attempt() -> None:
            result.attempts += 1
            endpoint, channel = await cluster.pick(tried)
            tried.append(endpoint)
            result.channel = channel
            started = clock()
            timeout = None if deadline is None else max(deadline - started, 0.001)
            if replay is None:
                call = open_call(channel, method, kind, request, metadata, timeout)
            else:  # reader/writer mode, fed by our own pump (see upstream.pump)
                call = open_call(channel, method, kind, None, metadata, timeout)
                pumps.append(asyncio.create_task(pump(call, replay.iterate())))
            current[0], current[1], current[2] = call, endpoint, started
            try:
                await call.initial_metadata()
                if call.done():
                    code = await call.code()
                    if code is not grpc.StatusCode.OK:
                        raise rpc_error(code, await call.details(), await call.trailing_metadata())
            except grpc.aio.AioRpcError as err:
                cluster.record(endpoint, err.code(), clock() - started)
                current[0] = None
                raise
            except BaseException:
                call.cancel()
                cluster.record(endpoint, grpc.StatusCode.CANCELLED, clock() - started)
                current[0] = None
                raise

        try:
            await cluster.retry.run(
                attempt,
                idempotent=idempotent,
                deadline=deadline,
                replayable=None if replay is None else (lambda: replay.replayable),
            )
        except grpc.aio.AioRpcError as err:
            result.code = err.code()
            await relay_error(ctx, err, self._extra(err))
        call, endpoint, started = current
        if replay is not None:
            replay.commit()
        code = grpc.StatusCode.CANCELLED
        try:
            initial = await call.initial_metadata()
            if initial:
                await ctx.send_initial_metadata(tuple(forwardable(initial)))
            if kind is CallKind.STREAM_UNARY:
                yield await call
            else:
                while True:
                    msg = await call.read()
                    if msg is EOF:
                        break
                    yield msg
            trailing = await call.trailing_metadata()
            if trailing:
                ctx.set_trailing_metadata(tuple(forwardable(trailing)))
            code = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as err:
            code = result.code = err.code()
            await relay_error(ctx, err, self._extra(err))
        finally:
            if not call.done():
                call.cancel()
            for task in pumps:
                task.cancel()
            cluster.record(endpoint, code, clock() - started)
        result.code = code
