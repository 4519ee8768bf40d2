"""The blocking side of ``MeshClient``: one event-loop thread drives the async core.

Every sync call is scheduled on a private loop thread with a copy of the
caller's ``contextvars`` (request id, OpenTelemetry context), so a sync handler
or script gets the same interceptors, pooling and typed errors as async code.
Streaming responses become plain iterators; request iterators are consumed on
the loop thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar

from grpcmesh.sdk.channel import MeshChannel

__all__ = ["LoopThread", "SyncChannel"]

T = TypeVar("T")


class LoopThread:
    """An asyncio loop running in a daemon thread; :meth:`run` blocks on a coroutine."""

    def __init__(self, name: str = "grpcmesh-client") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, factory: Callable[[], Awaitable[T]]) -> T:
        """Runs ``factory()`` on the loop in a copy of the caller's context; returns its result."""
        if not self._thread.is_alive():
            raise RuntimeError("the client's event-loop thread has stopped (client closed)")
        ctx = contextvars.copy_context()
        done: concurrent.futures.Future[T] = concurrent.futures.Future()
        tasks: list[asyncio.Task[T]] = []

        async def body() -> T:
            return await factory()

        def start() -> None:
            task = self.loop.create_task(body(), context=ctx)
            tasks.append(task)
            task.add_done_callback(lambda t: _settle(t, done))

        self.loop.call_soon_threadsafe(start)
        try:
            return done.result()
        except BaseException:
            if not done.done():
                self.loop.call_soon_threadsafe(lambda: [t.cancel() for t in tasks])
            raise

    def stop(self) -> None:
        """Stops the loop and joins the thread."""
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
        if not self.loop.is_running():
            self.loop.close()


def _settle(task: asyncio.Task[T], fut: concurrent.futures.Future[T]) -> None:
    if task.cancelled():
        fut.cancel()
    elif (exc := task.exception()) is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(task.result())


async def _from_sync(requests: Iterable[Any]) -> AsyncIterator[Any]:
    for item in requests:
        yield item


class _Responses(Iterator[Any]):
    """A blocking iterator over a streaming call's responses."""

    def __init__(self, runner: LoopThread, start: Callable[[], Any], check: Callable[[], None]) -> None:
        self._check = check
        self._runner = runner
        self._start = start
        self._call: Any = None

    def __next__(self) -> Any:
        self._check()

        async def step() -> Any:
            if self._call is None:
                self._call = self._start()
            try:
                return await self._call.__aiter__().__anext__()
            except StopAsyncIteration:
                return _END

        item = self._runner.run(step)
        if item is _END:
            raise StopIteration
        return item

    def cancel(self) -> bool:
        """Cancels the underlying call."""
        call = self._call
        if call is None:
            return False

        async def cancel() -> bool:
            return bool(call.cancel())

        return self._runner.run(cancel)


_END = object()


class SyncChannel:
    """A blocking channel for generated stubs, backed by a :class:`MeshChannel`."""

    def __init__(self, channel: MeshChannel, runner: LoopThread) -> None:
        self._channel = channel
        self._runner = runner

    def _blocking(self, kind: str, method: str, ser: Any, deser: Any, adapt: Callable[[Any], Any]) -> Any:
        mc = getattr(self._channel, kind)(method, ser, deser)

        def call(request: Any, *args: Any, **kwargs: Any) -> Any:
            self._channel.ensure_open(method)

            async def run() -> Any:
                return await mc(adapt(request), *args, **kwargs)

            return self._runner.run(run)

        return call

    def _iterating(self, kind: str, method: str, ser: Any, deser: Any, adapt: Callable[[Any], Any]) -> Any:
        mc = getattr(self._channel, kind)(method, ser, deser)
        check = functools.partial(self._channel.ensure_open, method)
        return lambda request, *a, **kw: _Responses(self._runner, lambda: mc(adapt(request), *a, **kw), check)

    def unary_unary(
        self, method: str, request_serializer: Any = None, response_deserializer: Any = None, **_: Any
    ) -> Any:
        """``stub.M(request, timeout=…)`` returns the response or raises a typed error."""
        return self._blocking("unary_unary", method, request_serializer, response_deserializer, _same)

    def stream_unary(
        self, method: str, request_serializer: Any = None, response_deserializer: Any = None, **_: Any
    ) -> Any:
        """``stub.M(iter_of_requests)`` returns the response."""
        return self._blocking("stream_unary", method, request_serializer, response_deserializer, _from_sync)

    def unary_stream(
        self, method: str, request_serializer: Any = None, response_deserializer: Any = None, **_: Any
    ) -> Any:
        """``for r in stub.M(request)`` iterates the responses."""
        return self._iterating("unary_stream", method, request_serializer, response_deserializer, _same)

    def stream_stream(
        self, method: str, request_serializer: Any = None, response_deserializer: Any = None, **_: Any
    ) -> Any:
        """``for r in stub.M(iter_of_requests)`` iterates the responses."""
        return self._iterating("stream_stream", method, request_serializer, response_deserializer, _from_sync)


def _same(request: Any) -> Any:
    return request
