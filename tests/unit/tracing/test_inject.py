"""What a client call carries for tracing: nothing when there is nothing to propagate, else W3C.

The client skips the propagators when there is no trace and no baggage (each call would
otherwise pay for a context copy and an inject that writes nothing); these cases pin that the
skip never drops a header the propagators would have written.
"""

from __future__ import annotations

from opentelemetry import baggage, context, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import INVALID_SPAN, NonRecordingSpan, SpanContext, TraceFlags

from grpcmesh.sdk.interceptors.trace import inject_into


def _sent(span: trace.Span) -> dict[str, str]:
    md: list[tuple[str, str]] = [("x-request-id", "r1")]
    inject_into(md, span)
    return dict(md)


def test_no_trace_and_no_baggage_sends_nothing_more() -> None:
    assert _sent(INVALID_SPAN) == {"x-request-id": "r1"}


def test_baggage_without_a_trace_is_still_sent() -> None:
    token = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        assert _sent(INVALID_SPAN)["baggage"] == "tenant=acme"
    finally:
        context.detach(token)


def test_an_incoming_context_without_a_tracer_provider_is_forwarded() -> None:
    parent = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    sent = _sent(NonRecordingSpan(parent))
    assert sent["traceparent"] == f"00-{0x1234:032x}-{0x5678:016x}-01"


def test_a_span_of_an_sdk_tracer_is_sent_sampled_or_not() -> None:
    span = TracerProvider().get_tracer("t").start_span("call")
    sent = _sent(span)
    span.end()
    assert sent["traceparent"].split("-")[1] == format(span.get_span_context().trace_id, "032x")
