"""Client tracing interceptor: a CLIENT span per call and W3C context on the wire.

The span is a child of whatever span is current (the server span of the
request being handled, or the caller's own), and ``traceparent`` /
``tracestate`` / ``baggage`` are injected with the globally configured
OpenTelemetry propagator, so the next hop continues the same trace. Without an
SDK tracer provider the no-op tracer still forwards the incoming context.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from opentelemetry import baggage, propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from grpcmesh.sdk.interceptors.base import method_of, replace_details

__all__ = ["TraceInterceptor", "end_span", "inject_into", "propagation_fields", "rpc_attributes"]

_pending: set[asyncio.Task[None]] = set()


def rpc_attributes(method: str) -> dict[str, str]:
    """OpenTelemetry semantic-convention attributes for a ``/pkg.Service/Method`` path."""
    service, _, name = method.lstrip("/").partition("/")
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}


_OK = grpc.StatusCode.OK


def end_span(span: Span, code: grpc.StatusCode, details: str = "") -> None:
    """Records the gRPC status on ``span`` and ends it (an unsampled span only ends: nothing to record)."""
    if span.is_recording():
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code is not _OK:
            span.set_status(Status(StatusCode.ERROR, f"{code.name}: {details}"))
    span.end()


_W3C_FIELDS = frozenset({"traceparent", "tracestate", "baggage"})
_fields_of: tuple[object, frozenset[str]] = (None, frozenset())


def propagation_fields() -> frozenset[str]:
    """The header names the global propagator reads and writes (recomputed when it changes)."""
    global _fields_of
    textmap = propagate.get_global_textmap()
    if _fields_of[0] is not textmap:
        _fields_of = (textmap, frozenset(textmap.fields))
    return _fields_of[1]


def _nothing_to_send(span: Span) -> bool:
    """True when the propagators would write nothing: W3C ones only, no trace (no tracer
    provider and no incoming context) and no baggage. Skipping them saves a context per call."""
    return (
        not span.get_span_context().is_valid and propagation_fields() <= _W3C_FIELDS and not baggage.get_all()
    )


def inject_into(metadata: list[tuple[str, Any]], span: Span) -> None:
    """Puts ``span``'s context (global propagator) into ``metadata``, replacing keys it writes."""
    if _nothing_to_send(span):
        return
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    if carrier:
        metadata[:] = [(k, v) for k, v in metadata if k not in carrier]
        metadata.extend(carrier.items())


async def _end_when_done(span: Span, call: Any) -> None:
    try:
        code = await call.code()
        details = await call.details()
    except asyncio.CancelledError:
        code, details = grpc.StatusCode.CANCELLED, "cancelled"
    end_span(span, code, details or "")


class TraceInterceptor(
    grpc.aio.UnaryUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.aio.UnaryStreamClientInterceptor,  # type: ignore[type-arg]
    grpc.aio.StreamUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.aio.StreamStreamClientInterceptor,  # type: ignore[type-arg]
):
    """Starts a CLIENT span per call and injects its context into the metadata."""

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self._tracer = trace.get_tracer("grpcmesh.sdk.client", tracer_provider=tracer_provider)
        self._names: dict[str, tuple[str, dict[str, str]]] = {}  # per method: span name, attributes

    def begin(self, method: str) -> Span:
        """A CLIENT span for a call of ``method``, child of the current span."""
        known = self._names.get(method)
        if known is None:
            if len(self._names) >= 1024:  # bounded: method paths come from stubs, but be safe
                self._names.clear()
            known = self._names[method] = (method.lstrip("/"), rpc_attributes(method))
        return self._tracer.start_span(known[0], kind=SpanKind.CLIENT, attributes=known[1])

    def _start(self, details: grpc.aio.ClientCallDetails) -> tuple[Span, grpc.aio.ClientCallDetails]:
        span = self.begin(method_of(details))
        metadata = list(details.metadata or ())
        inject_into(metadata, span)
        return span, replace_details(details, metadata=grpc.aio.Metadata(*metadata))

    async def _intercept(self, continuation: Any, details: Any, request: Any) -> Any:
        span, details = self._start(details)
        try:
            call = await continuation(details, request)
        except BaseException as exc:
            span.record_exception(exc)
            end_span(span, grpc.StatusCode.UNKNOWN, repr(exc))
            raise
        task = asyncio.get_running_loop().create_task(_end_when_done(span, call))
        _pending.add(task)
        task.add_done_callback(_pending.discard)
        return call

    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        """Traces a unary call: the span ends with the call's status."""
        span, details = self._start(client_call_details)
        try:
            call = await continuation(details, request)
            await call
        except grpc.aio.AioRpcError as err:
            end_span(span, err.code(), err.details() or "")
            return call  # failed call: awaiting it raises the error, as without this interceptor
        except BaseException as exc:
            span.record_exception(exc)
            end_span(span, grpc.StatusCode.CANCELLED, repr(exc))
            raise
        end_span(span, grpc.StatusCode.OK)
        return call

    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        """Traces a server-streaming call until its status arrives."""
        return await self._intercept(continuation, client_call_details, request)

    async def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        """Traces a client-streaming call until its status arrives."""
        return await self._intercept(continuation, client_call_details, request_iterator)

    async def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        """Traces a bidirectional call until its status arrives."""
        return await self._intercept(continuation, client_call_details, request_iterator)
