"""Server context interceptor: each served call runs inside its request's context.

For every incoming call it extracts the W3C trace context and ``x-request-id``
(generating one at the edge), opens a SERVER span, and sets the contextvars
that logs (:mod:`grpcmesh.sdk.logging`) and outgoing calls made through
``MeshClient`` read — request id, trace context and the incoming deadline — so
a handler never threads them by hand. It also echoes the request id in the
trailers, turns a :class:`~grpcmesh.sdk.errors.MeshError` raised by the handler
(for instance one raised by a downstream call) into the same status with its
rich details, and writes one structured access-log line per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from google.rpc import status_pb2
from grpc_status import rpc_status
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from grpcmesh.sdk.errors import MeshError
from grpcmesh.sdk.headers import REQUEST_ID, ensure_request_id, request_id_var
from grpcmesh.sdk.interceptors.deadline import deadline_var
from grpcmesh.sdk.interceptors.handlers import Handler, rebuild
from grpcmesh.sdk.interceptors.trace import propagation_fields, rpc_attributes
from grpcmesh.sdk.logging import ACCESS_LOG

if TYPE_CHECKING:
    _ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    _ServerInterceptor = grpc.aio.ServerInterceptor

__all__ = ["INFRA_SERVICES", "ServerContextInterceptor"]

access_log = logging.getLogger(ACCESS_LOG)
log = logging.getLogger("grpcmesh.server")


@dataclass
class _Rpc:
    method: str
    request_id: str
    code: grpc.StatusCode = grpc.StatusCode.OK


async def abort_with(context: grpc.aio.ServicerContext[Any, Any], err: MeshError, request_id: str) -> None:
    """Ends the call with ``err``'s code, message and rich details (never returns)."""
    proto = status_pb2.Status(code=err.code.value[0], message=err.details, details=list(err.status_details))
    status = rpc_status.to_status(proto)
    await context.abort(err.code, err.details, (*status.trailing_metadata, (REQUEST_ID, request_id)))


INFRA_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)
"""Services left alone by default: health probes and reflection would flood traces and logs."""


_CACHE = 4096  # wrapped handlers kept, one per method (bounded: methods come from servicers)
_NO_SPAN = contextlib.nullcontext(trace.INVALID_SPAN)


class ServerContextInterceptor(_ServerInterceptor):
    """Request id, trace span, deadline and logs for every served call (install first).

    Per call it does only what the call needs: the wrapped handler is built once per method,
    and without a recording tracer provider and without trace headers on the call (W3C or
    whatever the global propagator reads) no span context is opened, as there is nothing to
    record and nothing to propagate.
    """

    def __init__(
        self, *, tracer_provider: trace.TracerProvider | None = None, skip: frozenset[str] = INFRA_SERVICES
    ) -> None:
        self._tracer = trace.get_tracer("grpcmesh.sdk.server", tracer_provider=tracer_provider)
        self._given_provider = tracer_provider is not None
        self._skip = skip
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}

    def _span(
        self, method: str, attributes: dict[str, str], metadata: Any
    ) -> contextlib.AbstractContextManager[Any]:
        """The SERVER span's context manager, or a null one when there is nothing to do."""
        fields = propagation_fields()
        incoming = any(k in fields for k, _ in metadata)
        if not incoming and not self._given_provider and _not_recording(trace.get_tracer_provider()):
            return _NO_SPAN
        carrier = {k: v for k, v in metadata if isinstance(v, str)} if incoming else {}
        return self._traced(method, attributes, propagate.extract(carrier))

    @contextlib.contextmanager
    def _traced(
        self, method: str, attributes: dict[str, str], extracted: otel_context.Context
    ) -> Iterator[Any]:
        # The extracted context is the handler's (its baggage too, not only the parent span), so
        # the calls it makes carry on what the caller sent.
        token = otel_context.attach(extracted)
        try:
            with self._tracer.start_as_current_span(
                method.lstrip("/"),
                context=extracted,
                kind=SpanKind.SERVER,
                attributes=attributes,
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                yield span
        finally:
            otel_context.detach(token)

    @contextlib.contextmanager
    def _scope(
        self, method: str, attributes: dict[str, str], context: grpc.aio.ServicerContext[Any, Any]
    ) -> Iterator[_Rpc]:
        metadata = context.invocation_metadata() or ()
        request_id, _ = ensure_request_id(metadata)
        remaining = context.time_remaining()
        started = time.monotonic()
        rpc = _Rpc(method, request_id)
        tokens = (
            request_id_var.set(request_id),
            deadline_var.set(None if remaining is None else started + remaining),
        )
        context.set_trailing_metadata(((REQUEST_ID, request_id),))
        try:
            with self._span(method, attributes, metadata) as span:
                try:
                    yield rpc
                    if rpc.code is grpc.StatusCode.OK:  # a handler may set_code() and return
                        rpc.code = _code_of(context)
                except grpc.aio.AbortError:
                    if rpc.code is grpc.StatusCode.OK:
                        rpc.code = _code_of(context)
                    raise
                except asyncio.CancelledError:  # the caller cancelled or the deadline passed
                    left = context.time_remaining()
                    expired = left is not None and left <= 0
                    rpc.code = grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
                    raise
                except BaseException as exc:
                    rpc.code = grpc.StatusCode.UNKNOWN
                    span.record_exception(exc)
                    log.exception("unhandled %s in %s", type(exc).__name__, method)
                    raise
                finally:
                    if span.is_recording():
                        span.set_attribute("rpc.grpc.status_code", rpc.code.value[0])
                        if rpc.code is not grpc.StatusCode.OK:
                            span.set_status(Status(StatusCode.ERROR, rpc.code.name))
                    if access_log.isEnabledFor(logging.INFO):
                        access_log.info(
                            "%s %s",
                            method,
                            rpc.code.name,
                            extra={
                                "rpc_method": method,
                                "grpc_code": rpc.code.name,
                                "duration_ms": round((time.monotonic() - started) * 1000, 3),
                            },
                        )
        finally:
            for var, token in zip((request_id_var, deadline_var), tokens, strict=True):
                with contextlib.suppress(ValueError):
                    var.reset(token)  # type: ignore[attr-defined]

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        """Wraps the handler's behaviour in the request's context (built once per method)."""
        handler = await continuation(handler_call_details)
        if handler is None:  # an unknown method: grpc answers UNIMPLEMENTED
            return handler  # type: ignore[unreachable]
        method: str = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is None or cached[0] is not handler:
            if len(self._wrapped) >= _CACHE:
                self._wrapped.clear()
            skipped = method.lstrip("/").partition("/")[0] in self._skip
            scope = functools.partial(self._scope, method, rpc_attributes(method))
            wrapped = handler if skipped else _wrap(handler, scope)
            cached = self._wrapped[method] = (handler, wrapped)
        return cached[1]


def _not_recording(provider: trace.TracerProvider) -> bool:
    """The global provider records nothing: never set (a proxy) or the no-op one."""
    return isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def _code_of(context: Any) -> grpc.StatusCode:
    code = context.code()
    if code is None:
        return grpc.StatusCode.OK
    if isinstance(code, grpc.StatusCode):
        return code
    return next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)


Scope = Callable[[Any], contextlib.AbstractContextManager[_Rpc]]


def _wrap(handler: grpc.RpcMethodHandler[Any, Any], scope: Scope) -> grpc.RpcMethodHandler[Any, Any]:
    """The same handler with its async behaviour run inside ``scope``; sync handlers are kept."""

    def wrap(behavior: Callable[..., Any]) -> Callable[..., Any] | None:
        if inspect.isasyncgenfunction(behavior):
            return _wrap_gen(behavior, scope)
        if inspect.iscoroutinefunction(behavior):
            return _wrap_coro(behavior, scope)
        return None

    return rebuild(handler, wrap)


def _wrap_coro(behavior: Callable[..., Awaitable[Any]], scope: Scope) -> Callable[..., Awaitable[Any]]:
    async def run(request: Any, context: Any) -> Any:
        with scope(context) as rpc:
            try:
                return await behavior(request, context)
            except MeshError as err:
                rpc.code = err.code
                await abort_with(context, err, rpc.request_id)

    return run


def _wrap_gen(behavior: Callable[..., AsyncIterator[Any]], scope: Scope) -> Callable[..., AsyncIterator[Any]]:
    async def run(request: Any, context: Any) -> AsyncIterator[Any]:
        with scope(context) as rpc:
            try:
                async for item in behavior(request, context):
                    yield item
            except MeshError as err:
                rpc.code = err.code
                await abort_with(context, err, rpc.request_id)

    return run
