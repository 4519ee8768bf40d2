"""The call objects stubs return in the mesh: awaitable / iterable like grpc.aio calls.

A call starts on first use (``await``, iteration, or an accessor such as
``initial_metadata()``) and runs inline in the caller's task — no extra task
per call — while later uses share its outcome. Failures surface as typed
:class:`~grpcmesh.sdk.errors.MeshError` exceptions that carry the request id
the call was sent with.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import grpc

from grpcmesh.sdk.headers import request_id_var
from grpcmesh.sdk.interceptors.errors import map_errors, to_mesh_error

__all__ = ["CallState", "MeshCall", "MeshStreamCall"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class CallState:
    """What a call learned while running: the underlying grpc call and the request id sent."""

    call: Any = None
    request_id: str | None = None


class _CallBase(Generic[T]):
    """A call started on first use (await, iteration or an accessor); later uses share its outcome."""

    def __init__(self, run: Callable[[], Awaitable[T]], state: CallState) -> None:
        self._run = run
        self._state = state
        self._outcome: asyncio.Future[T] | None = None
        self._cancelled = False

    async def _once(self) -> T:
        if self._outcome is not None:
            return await asyncio.shield(self._outcome)
        outcome = self._outcome = asyncio.get_running_loop().create_future()
        try:
            if self._cancelled:
                raise asyncio.CancelledError
            result = await self._run()
        except asyncio.CancelledError:
            outcome.cancel()
            raise
        except Exception as exc:
            outcome.set_exception(exc)
            outcome.exception()  # the first awaiter raises it; later ones read it from the future
            raise
        except BaseException:  # KeyboardInterrupt / SystemExit: nobody waits for an outcome
            outcome.cancel()
            raise
        outcome.set_result(result)
        return result

    def _sent_id(self) -> str | None:
        # Failed before anything was sent (e.g. no endpoint): the id of the request being served.
        return self._state.request_id or request_id_var.get()

    @property
    def request_id(self) -> str | None:
        """The ``x-request-id`` this call went out with (after it started)."""
        return self._state.request_id

    async def _settled(self) -> Any:
        if not self.done():
            try:
                await self._once()
            except asyncio.CancelledError:
                if not (self._outcome is not None and self._outcome.cancelled()):
                    raise  # our caller was cancelled, not the call
            except Exception:  # the outcome is read from the call below
                pass
        return self._state.call

    async def initial_metadata(self) -> grpc.aio.Metadata | None:
        """Headers the server sent (``None`` when the call never reached a server)."""
        call = await self._settled()
        return None if call is None else await call.initial_metadata()

    async def trailing_metadata(self) -> grpc.aio.Metadata | None:
        """Trailers the server sent (``None`` when the call never reached a server)."""
        call = await self._settled()
        return None if call is None else await call.trailing_metadata()

    async def code(self) -> grpc.StatusCode:
        """The final status code of the (last) attempt."""
        call = await self._settled()
        return grpc.StatusCode.UNAVAILABLE if call is None else await call.code()

    def cancel(self) -> bool:
        """Cancels the call; returns whether it was still running."""
        if self.done():
            return False
        self._cancelled = True
        if self._state.call is not None:
            self._state.call.cancel()
        return True

    def done(self) -> bool:
        """Whether the call has finished."""
        return self._outcome is not None and self._outcome.done()


class MeshCall(_CallBase[T]):
    """A unary call: ``await`` it for the response or a typed :class:`MeshError`."""

    async def _result(self) -> T:
        try:
            return await self._once()
        except Exception as exc:  # map_errors, inlined on the hot path (no generator per call)
            err = to_mesh_error(exc, request_id=self._sent_id())
            if err is None or err is exc:
                raise
            raise err from exc

    def __await__(self) -> Any:
        return self._result().__await__()


class MeshStreamCall(_CallBase[Any], Generic[R]):
    """A streaming call: iterate / ``read()`` / ``write()``; ``await`` it when the response is unary."""

    def __init__(self, run: Callable[[], Awaitable[Any]], state: CallState) -> None:
        super().__init__(run, state)
        self._iter: AsyncIterator[R] | None = None

    def done(self) -> bool:
        """Whether the stream has finished (not merely opened)."""
        call = self._state.call
        if call is not None:
            return bool(call.done())
        return super().done()

    async def _call(self) -> Any:
        with map_errors(request_id=self._sent_id):
            return await self._once()

    async def _responses(self) -> AsyncIterator[R]:
        call = await self._call()
        with map_errors(request_id=self._sent_id):
            async for item in call:
                yield item

    def __aiter__(self) -> AsyncIterator[R]:
        if self._iter is None:
            self._iter = self._responses()
        return self._iter

    async def read(self) -> R | Any:
        """The next response, or ``grpc.aio.EOF`` at the end of the stream."""
        try:
            return await self.__aiter__().__anext__()
        except StopAsyncIteration:
            return grpc.aio.EOF  # type: ignore[attr-defined]

    async def write(self, request: Any) -> None:
        """Sends one request on a call started without a request iterator."""
        call = await self._call()
        with map_errors(request_id=self._sent_id):
            await call.write(request)

    async def done_writing(self) -> None:
        """Half-closes the request stream."""
        call = await self._call()
        with map_errors(request_id=self._sent_id):
            await call.done_writing()

    async def _response(self) -> R:
        call = await self._call()
        with map_errors(request_id=self._sent_id):
            response: R = await call
            return response

    def __await__(self) -> Any:
        return self._response().__await__()
