"""MeshChannel: the channel generated stubs are bound to by ``MeshClient.stub()``.

It quacks like ``grpc.aio.Channel`` for the four ``*_*`` multicallable
factories stubs use, and sends each call through the mesh: it adds the
headers its transport asks for (:meth:`Transport.tags`), runs the client
interceptors (request id, trace, deadline, …) exactly like a grpc.aio
interceptor chain, and hands the final call to a :class:`Transport` — pooled
channels to the local sidecar, or an in-process cluster that picks an
endpoint, breaks and retries (direct mode). Failures surface as typed
:class:`~grpcmesh.sdk.errors.MeshError` exceptions.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import grpc

from grpcmesh.sdk.calls import CallState, MeshCall, MeshStreamCall
from grpcmesh.sdk.fastpath import FastUnary
from grpcmesh.sdk.headers import REQUEST_ID, get
from grpcmesh.sdk.interceptors.deadline import effective_timeout

__all__ = ["CallOptions", "MeshChannel", "StreamHook", "Transport"]

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
        method: str = "",
    ) -> T:
        """Runs ``attempt(channel, timeout)`` on a channel to ``target`` (possibly several times)."""
        ...

    async def stream(self, target: str) -> tuple[grpc.aio.Channel, StreamHook | None]:
        """A channel for one streaming call to ``target`` and a hook to report its outcome."""
        ...

    def tags(self, options: CallOptions) -> tuple[tuple[str, str], ...]:
        """The headers every call of a channel with ``options`` carries (each costs per call)."""
        ...


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
    """Whether a method path may be retried after it reached the app."""


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
        self._fast = FastUnary.of(options.interceptors)
        self._tags = transport.tags(options)

    @property
    def target(self) -> str:
        """The service this channel's calls are routed to."""
        return self._options.target

    def ensure_open(self, method: str) -> None:
        """Raises ``ClientClosedError`` when the owning client is closed."""
        self._check_open(method)

    def _fast_unary(self, fast: FastUnary, m: _Method, request: Any, args: tuple[Any, ...]) -> MeshCall[Any]:
        """A unary call through :class:`FastUnary` (the default chain): same headers, no chain objects."""
        self._check_open(m.path)
        timeout, metadata, credentials, wait_for_ready = args
        md = list(metadata or ())
        if md:
            present = {k for k, _ in md}
            md.extend(t for t in self._tags if t[0] not in present)
        else:
            md = list(self._tags)
        state = CallState()
        options = self._options
        codecs, extra = (m.serializer, m.deserializer), (credentials, wait_for_ready)

        def sent(call: Any, request_id: str | None) -> None:
            state.call, state.request_id = call, request_id

        def attempt(channel: grpc.aio.Channel, attempt_timeout: float | None) -> Awaitable[Any]:
            return fast.attempt(channel, m.path, codecs, request, md, attempt_timeout, extra, sent)

        def run() -> Awaitable[Any]:
            return self._transport.unary(
                options.target,
                attempt,
                idempotent=options.idempotent(m.path),
                timeout=effective_timeout(timeout, options.default_timeout),
                method=m.path,
            )

        return MeshCall(run, state)

    def _details(self, method: str, timeout: float | None, metadata: Any, credentials: Any, wfr: Any) -> Any:
        self._check_open(method)
        md = grpc.aio.Metadata(*(metadata or ()))
        for key, value in self._tags:
            if key not in md:
                md.add(key, value)
        return grpc.aio.ClientCallDetails(method, timeout, md, credentials, wfr)

    def _base(self, m: _Method, channel: grpc.aio.Channel, state: CallState, hook: StreamHook | None) -> Any:
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
        state = CallState()
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
                options.target, attempt, idempotent=idempotent, timeout=timeout, method=m.path
            )

        return MeshCall(run, state)

    def _streaming(self, m: _Method, request: Any, details: Any) -> MeshStreamCall[Any]:
        state = CallState()

        async def open_call() -> Any:
            channel, hook = await self._transport.stream(self._options.target)
            return await _run_chain(
                self._chains[m.kind], details, request, self._base(m, channel, state, hook)
            )

        return MeshStreamCall(open_call, state)

    def _multicallable(self, kind: str, method: str, ser: Any, deser: Any) -> Callable[..., Any]:
        m = _Method(method, kind, ser, deser)
        start = self._unary if kind == "unary_unary" else self._streaming
        fast = self._fast if kind == "unary_unary" else None

        def invoke(
            request: Any = None,
            timeout: float | None = None,
            metadata: Any = None,
            credentials: Any = None,
            wait_for_ready: bool | None = None,
            compression: Any = None,
        ) -> Any:
            if fast is not None:
                return self._fast_unary(fast, m, request, (timeout, metadata, credentials, wait_for_ready))
            return start(m, request, self._details(method, timeout, metadata, credentials, wait_for_ready))

        invoke.__name__ = invoke.__qualname__ = method
        return invoke

    unary_unary = _factory("unary_unary", "A unary multicallable (``await stub.M(req, timeout=…)``).")
    unary_stream = _factory(
        "unary_stream", "A server-streaming multicallable (``async for r in stub.M(req)``)."
    )
    stream_unary = _factory("stream_unary", "A client-streaming multicallable (``await stub.M(requests)``).")
    stream_stream = _factory("stream_stream", "A bidirectional multicallable (iterate, ``write()``).")
