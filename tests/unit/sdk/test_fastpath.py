"""The default chain's unary fast path sends what the interceptor chain sends.

Both paths of one ``AsyncMeshClient`` are driven against a recording grpc channel
(pure logic: no network): a no-op user interceptor turns the fast path off.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from grpcmesh.sdk import AsyncMeshClient, NotFound
from grpcmesh.sdk.fastpath import FastUnary
from grpcmesh.sdk.headers import REQUEST_ID, TRACEPARENT, request_id_var
from grpcmesh.sdk.retry import rpc_error

METHOD = "/pkg.Svc/M"


class _Call:
    def __init__(self, fail: bool) -> None:
        self.fail = fail

    def __await__(self) -> Any:
        if self.fail:
            raise rpc_error(grpc.StatusCode.NOT_FOUND, "no such thing")
        return (yield from _done())

    def cancel(self) -> None:
        pass


def _done() -> Any:
    if False:
        yield
    return b"reply"


class RecordingChannel:
    """A grpc.aio channel stand-in: records each call's timeout and metadata."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[float | None, list[tuple[str, Any]]]] = []
        self.fail = fail

    def unary_unary(
        self, method: str, request_serializer: Any = None, response_deserializer: Any = None
    ) -> Any:
        def call(request: Any, timeout: float | None = None, metadata: Any = (), **_: Any) -> _Call:
            self.sent.append((timeout, list(metadata)))
            return _Call(self.fail)

        return call


class NoOp(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(details, request)


def client(channel: RecordingChannel, provider: TracerProvider, *interceptors: Any) -> AsyncMeshClient:
    mesh = AsyncMeshClient(
        "caller", sidecar="127.0.0.1:1", tracer_provider=provider, interceptors=interceptors
    )
    mesh._transport._channels["svc"] = channel  # type: ignore[union-attr,assignment]
    return mesh


@pytest.fixture
def provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    return tp, exporter


def test_only_the_default_chain_takes_the_fast_path(provider: tuple[TracerProvider, Any]) -> None:
    assert client(RecordingChannel(), provider[0]).channel("svc")._fast is not None
    assert client(RecordingChannel(), provider[0], NoOp()).channel("svc")._fast is None
    assert FastUnary.of([]) is None


async def test_fast_and_chained_calls_send_the_same_headers_and_spans(
    provider: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    tp, exporter = provider
    sent: list[list[tuple[float | None, list[tuple[str, Any]]]]] = []
    for extra in ((), (NoOp(),)):
        channel = RecordingChannel()
        stub = client(channel, tp, *extra).channel("svc").unary_unary(METHOD)
        token = request_id_var.set("rid-1")
        try:
            assert await stub(b"x", timeout=5, metadata=(("k", "v"), (TRACEPARENT, "stale"))) == b"reply"
        finally:
            request_id_var.reset(token)
        sent.append(channel.sent)
    (fast,), (chained,) = sent
    assert [k for k, _ in fast[1]] == [k for k, _ in chained[1]]
    assert dict(fast[1])[REQUEST_ID] == dict(chained[1])[REQUEST_ID] == "rid-1"
    assert dict(fast[1])[TRACEPARENT] != "stale"
    assert fast[0] == pytest.approx(chained[0], abs=0.5)
    spans = exporter.get_finished_spans()
    assert [(s.name, s.attributes["rpc.grpc.status_code"]) for s in spans] == [("pkg.Svc/M", 0)] * 2


async def test_a_failed_fast_call_is_typed_and_ends_its_span_with_the_status(
    provider: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    tp, exporter = provider
    stub = client(RecordingChannel(fail=True), tp).channel("svc").unary_unary(METHOD)
    call = stub(b"x")
    with pytest.raises(NotFound) as info:
        await call
    assert info.value.request_id == call.request_id
    assert call.request_id is not None
    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
