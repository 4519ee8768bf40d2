"""The sidecar's finished-span recorder: W3C propagation, the provider's sampling, what is exported."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, StatusCode, get_current_span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from grpcmesh.sdk.tracing import configure_tracing, memory_exporter
from grpcmesh.sidecar.spans import SpanRecorder, parse_traceparent

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
ATTRS = {"rpc.system": "grpc", "rpc.service": "echo.v1.Echo", "rpc.method": "Ping"}


def extracted(headers: list[tuple[str, str]]):  # type: ignore[no-untyped-def]
    """What a W3C-compliant receiver reads from the headers we send."""
    return get_current_span(TraceContextTextMapPropagator().extract(dict(headers))).get_span_context()


def test_continues_the_callers_trace_as_a_w3c_receiver_reads_it() -> None:
    rec = SpanRecorder(configure_tracing("c", sample_ratio=1.0, set_global=False))
    incoming = [("traceparent", PARENT), ("tracestate", "vendor=abc")]
    span, headers = rec.start("echo.v1.Echo/Ping", SpanKind.CLIENT, ATTRS, incoming)
    ctx = extracted(headers)
    assert ctx.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert ctx.span_id == span.context.span_id != 0xB7AD6B7169203331
    assert ctx.trace_flags.sampled
    assert ctx.trace_state.get("vendor") == "abc"
    assert span.parent is not None
    assert span.parent.span_id == 0xB7AD6B7169203331


def test_sampling_is_the_providers_parent_based_ratio() -> None:
    never = SpanRecorder(TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.0))))
    root, headers = never.start("m", SpanKind.CLIENT, ATTRS, [])
    assert not root.recording
    assert not extracted(headers).trace_flags.sampled  # still propagated, so the trace stays one
    child, _ = never.start("m", SpanKind.CLIENT, ATTRS, [("traceparent", PARENT)])
    assert child.recording  # a sampled caller keeps its whole trace
    off = SpanRecorder(TracerProvider(sampler=ALWAYS_OFF))
    span, headers = off.start("m", SpanKind.SERVER, ATTRS, [("traceparent", PARENT)])
    assert not span.recording
    assert extracted(headers).trace_id == 0x0AF7651916CD43DD8448EB211C80319C


def test_finished_span_reaches_the_exporter_with_everything() -> None:
    provider = configure_tracing("client-sidecar", sample_ratio=1.0, exporter="memory", set_global=False)
    rec = SpanRecorder(provider)
    span, _ = rec.start("echo.v1.Echo/Ping", SpanKind.CLIENT, ATTRS, [("traceparent", PARENT)])
    rec.finish(span, {"rpc.grpc.status_code": 14, "mesh.attempts": 2}, "UNAVAILABLE")
    exporter = memory_exporter()
    assert exporter is not None
    (done,) = exporter.get_finished_spans()
    assert done.name == "echo.v1.Echo/Ping"
    assert done.kind is SpanKind.CLIENT
    assert done.context is not None
    assert done.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert done.parent is not None
    assert done.parent.span_id == 0xB7AD6B7169203331
    assert dict(done.attributes or {}) == {**ATTRS, "rpc.grpc.status_code": 14, "mesh.attempts": 2}
    assert done.status.status_code is StatusCode.ERROR
    assert done.status.description == "UNAVAILABLE"
    assert done.resource.attributes["service.name"] == "client-sidecar"
    assert done.start_time is not None
    assert done.end_time is not None
    assert done.start_time <= done.end_time
    provider.shutdown()


@pytest.mark.parametrize(
    "value",
    [
        "",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",  # no flags
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",  # zero trace id
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  # zero span id
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # forbidden version
        "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",  # upper case
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",  # v00 has no extra
    ],
)
def test_malformed_traceparent_starts_a_new_trace(value: str) -> None:
    assert parse_traceparent(value, None) is None
