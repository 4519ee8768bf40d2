"""MeshChannel: the channel generated stubs are bound to by ``MeshClient.stub()``.

It quacks like ``grpc.aio.Channel`` for the four ``*_*`` multicallable
factories stubs use, and sends each call through the mesh: it tags the call
with the target service (``x-mesh-service``) and the caller (``x-mesh-source``),
runs the client interceptors (request id, trace, deadline, …) exactly like a
grpc.aio interceptor chain, and hands the final call to a :class:`Transport` —
one pooled channel to the local sidecar, or an in-process cluster that picks an
endpoint, breaks and retries (direct mode). Failures surface as typed
:class:`~grpcmesh.sdk.errors.MeshError` exceptions.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import grpc

from grpcmesh.sdk.headers import MESH_SERVICE, MESH_SOURCE, REQUEST_ID, get
from grpcmesh.sdk.interceptors.deadline import effective_timeout
from grpcmesh.sdk.interceptors.errors import map_errors

__all__ = ["MeshCall", "MeshChannel", "MeshStreamCall", "StreamHook", "Transport"]

T = TypeVar("T")
R = TypeVar("R")
Attempt = Callable[[grpc.aio.Channel, float | None], Awaitable[T]]
StreamHook = Callable[[Any], None]
"""Called with the underlying grpc.aio call of a streaming RPC once it has started."""


class Transport(Protocol):
    """Where a call goes once the interceptors have run."""

    async def unary(
        self,
        target: str,
        attempt: Attempt[T],
        *,
        idempotent: bool,
        timeout: float | None,  # noqa: ASYNC109 - the overall deadline, split across the transport's retries
    ) -> T:
        """Runs ``attempt(channel, timeout)`` on a channel to ``target`` (possibly several times)."""
        ...

    async def stream(self, target: str) -> tuple[grpc.aio.Channel, StreamHook | None]:
        """A channel for one streaming call to ``target`` and a hook to report its outcome."""
        ...


@dataclass
class _State:
    call: Any = None
    request_id: str | None = None


@dataclass(frozen=True)
class _Method:
    path: str
    kind: str  # unary_unary | unary_stream | stream_unary | stream_stream
    serializer: Callable[[Any], bytes] | None
    deserializer: Callable[[bytes], Any] | None


@dataclass(frozen=True)
class CallOptions:
    """Per-channel settings shared by every call a stub makes."""

    target: str
    source: str = ""
    default_timeout: float | None = 30.0
    interceptors: Sequence[Any] = ()
    idempotent: Callable[[str], bool] = field(default=lambda _m: False)


_KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")


def _chains(interceptors: Sequence[Any]) -> dict[str, list[Callable[..., Awaitable[Any]]]]:
    """Each call kind's bound ``intercept_<kind>`` methods, outermost first."""
    return {
        k: [getattr(i, f"intercept_{k}") for i in interceptors if hasattr(i, f"intercept_{k}")]
        for k in _KINDS
    }


async def _run_chain(
    chain: Sequence[Callable[..., Awaitable[Any]]], details: Any, request: Any, base: Any
) -> Any:
    """Runs grpc.aio client interceptor methods (outermost first) around ``base``, as grpc.aio does."""

    async def step(index: int, d: Any, r: Any) -> Any:
        if index == len(chain):
            return base(d, r)
        return await chain[index](functools.partial(step, index + 1), d, r)

    return await step(0, details, request)


def _factory(kind: str, doc: str) -> Callable[..., Callable[..., Any]]:
    """One of the four ``grpc.aio.Channel`` multicallable factories that generated stubs call."""

    def make(
        self: MeshChannel,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        _registered_method: bool = False,
    ) -> Callable[..., Any]:
        return self._multicallable(kind, method, request_serializer, response_deserializer)

    make.__name__ = make.__qualname__ = kind
    make.__doc__ = doc
    return make


class MeshChannel:
    """A stub-facing channel whose calls go through the mesh to one target service."""

    def __init__(self, transport: Transport, options: CallOptions, check_open: Callable[[str], None]) -> None:
        self._transport = transport
        self._options = options
        self._check_open = check_open
        self._chains = _chains(options.interceptors)

    @property
    def target(self) -> str:
        """The service this channel's calls are routed to."""
        return self._options.target

    def ensure_open(self, method: str) -> None:
        """Raises ``ClientClosedError`` when the owning client is closed."""
        self._check_open(method)

    def _details(self, method: str, timeout: float | None, metadata: Any, credentials: Any, wfr: Any) -> Any:
        self._check_open(method)
        md = grpc.aio.Metadata(*(metadata or ()))
        if self._options.target and MESH_SERVICE not in md:
            md.add(MESH_SERVICE, self._options.target)
        if self._options.source and MESH_SOURCE not in md:
            md.add(MESH_SOURCE, self._options.source)
        return grpc.aio.ClientCallDetails(method, timeout, md, credentials, wfr)

    def _base(self, m: _Method, channel: grpc.aio.Channel, state: _State, hook: StreamHook | None) -> Any:
        def call(details: Any, request: Any) -> Any:
            state.request_id = get(details.metadata, REQUEST_ID)
            method = details.method.decode() if isinstance(details.method, bytes) else details.method
            factory = getattr(channel, m.kind)
            raw = factory(method, request_serializer=m.serializer, response_deserializer=m.deserializer)(
                request,
                timeout=details.timeout,
                metadata=details.metadata,
                credentials=details.credentials,
                wait_for_ready=details.wait_for_ready,
            )
            state.call = raw
            if hook is not None:
                hook(raw)
            return raw

        return call

    def _unary(self, m: _Method, request: Any, details: Any) -> MeshCall[Any]:
        state = _State()
        options = self._options

        async def attempt(channel: grpc.aio.Channel, attempt_timeout: float | None) -> Any:
            d = grpc.aio.ClientCallDetails(
                details.method, attempt_timeout, details.metadata, details.credentials, details.wait_for_ready
            )
            result = await _run_chain(self._chains[m.kind], d, request, self._base(m, channel, state, None))
            return await result if inspect.isawaitable(result) else result

        async def run() -> Any:
            timeout = effective_timeout(details.timeout, options.default_timeout)
            idempotent = options.idempotent(m.path)
            return await self._transport.unary(
                options.target, attempt, idempotent=idempotent, timeout=timeout
            )

        return MeshCall(run, state)

    def _streaming(self, m: _Method, request: Any, details: Any) -> MeshStreamCall[Any]:
        state = _State()

        async def open_call() -> Any:
            channel, hook = await self._transport.stream(self._options.target)
            d = grpc.aio.ClientCallDetails(
                details.method,
                effective_timeout(details.timeout, self._options.default_timeout),
                details.metadata,
                details.credentials,
                details.wait_for_ready,
            )
            return await _run_chain(self._chains[m.kind], d, request, self._base(m, channel, state, hook))

        return MeshStreamCall(open_call, state)

    def _multicallable(self, kind: str, method: str, ser: Any, deser: Any) -> Callable[..., Any]:
        m = _Method(method, kind, ser, deser)
        start = self._unary if kind == "unary_unary" else self._streaming

        def invoke(
            request: Any = None,
            timeout: float | None = None,
            metadata: Any = None,
            credentials: Any = None,
            wait_for_ready: bool | None = None,
            compression: Any = None,
        ) -> Any:
            return start(m, request, self._details(method, timeout, metadata, credentials, wait_for_ready))

        invoke.__name__ = invoke.__qualname__ = method
        return invoke

    unary_unary = _factory("unary_unary", "A unary multicallable (``await stub.M(req, timeout=…)``).")
    unary_stream = _factory(
        "unary_stream", "A server-streaming multicallable (``async for r in stub.M(req)``)."
    )
    stream_unary = _factory("stream_unary", "A client-streaming multicallable (``await stub.M(requests)``).")
    stream_stream = _factory("stream_stream", "A bidirectional multicallable (iterate, ``write()``).")


class _CallBase(Generic[T]):
    """A call started on first use (await, iteration or an accessor); later uses share its outcome."""

    def __init__(self, run: Callable[[], Awaitable[T]], state: _State) -> None:
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
        except BaseException as exc:
            outcome.set_exception(exc)
            outcome.exception()  # the first awaiter raises it; later ones read it from the future
            raise
        outcome.set_result(result)
        return result

    def _sent_id(self) -> str | None:
        return self._state.request_id

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
        with map_errors(request_id=self._sent_id):
            return await self._once()

    def __await__(self) -> Any:
        return self._result().__await__()


class MeshStreamCall(_CallBase[Any], Generic[R]):
    """A streaming call: iterate / ``read()`` / ``write()``; ``await`` it when the response is unary."""

    def __init__(self, run: Callable[[], Awaitable[Any]], state: _State) -> None:
        super().__init__(run, state)
        self._iter: AsyncIterator[R] | None = None

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
