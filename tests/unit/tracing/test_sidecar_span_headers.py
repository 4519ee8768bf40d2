"""The sidecar writes traceparent/tracestate itself (no Context per call): it must match W3C."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Sampler
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import CollectorRegistry

from grpcmesh.sidecar.telemetry import Telemetry

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def telemetry(sampler: Sampler) -> Telemetry:
    return Telemetry("client", registry=CollectorRegistry(), provider=TracerProvider(sampler=sampler))


def test_injected_headers_continue_the_callers_trace_as_the_propagator_would() -> None:
    tel = telemetry(ALWAYS_ON)
    incoming = [("traceparent", PARENT), ("tracestate", "vendor=abc")]
    span, headers = tel.start_span("outbound", "echo", "/echo.v1.Echo/Ping", incoming)
    assert span is not None
    expected: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(expected, context=trace.set_span_in_context(span))
    assert dict(headers) == expected
    assert dict(headers)["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")
    assert dict(headers)["tracestate"] == "vendor=abc"


def test_unsampled_span_still_propagates_the_trace_as_the_propagator_would() -> None:
    tel = telemetry(ALWAYS_OFF)
    for incoming in ([], [("traceparent", PARENT[:-2] + "00")]):
        span, headers = tel.start_span("outbound", "echo", "/echo.v1.Echo/Ping", incoming)
        assert span is not None
        assert not span.is_recording()
        expected: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(expected, context=trace.set_span_in_context(span))
        assert dict(headers) == expected
        assert int(expected["traceparent"][-2:], 16) & 0x01 == 0  # not sampled
    assert dict(headers)["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")
