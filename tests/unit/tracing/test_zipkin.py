"""OpenTelemetry spans → Zipkin v2 JSON objects (the HTTP side is in tests/integration/tracing)."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from grpcmesh.sdk.zipkin import ZipkinExporter, to_zipkin


def test_span_mapping() -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "orders-sidecar"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("t")
    parent = tracer.start_span("outer", start_time=2_000_000_000)
    child = tracer.start_span(
        "shop.v1.Orders/Get",
        context=set_span_in_context(parent),
        kind=SpanKind.CLIENT,
        start_time=2_000_500_000,
        attributes={"rpc.grpc.status_code": 14, "ok": True, "tags": ("a", "b")},
    )
    child.set_status(Status(StatusCode.ERROR, "UNAVAILABLE"))
    child.end(end_time=2_003_500_000)
    parent.end(end_time=2_004_000_000)
    inner, outer = (to_zipkin(s) for s in memory.get_finished_spans())
    ctx = parent.get_span_context()
    assert outer["traceId"] == format(ctx.trace_id, "032x")
    assert outer["id"] == format(ctx.span_id, "016x")
    assert "parentId" not in outer
    assert "kind" not in outer
    assert inner["parentId"] == outer["id"]
    assert inner["kind"] == "CLIENT"
    assert inner["timestamp"] == 2_000_500
    assert inner["duration"] == 3000
    assert inner["localEndpoint"] == {"serviceName": "orders-sidecar"}
    assert inner["tags"] == {
        "rpc.grpc.status_code": "14",
        "ok": "true",
        "tags": '["a", "b"]',
        "otel.status_code": "ERROR",
        "error": "UNAVAILABLE",
    }


def test_endpoint_must_be_http() -> None:
    with pytest.raises(ValueError, match="http"):
        ZipkinExporter("127.0.0.1:9411")
