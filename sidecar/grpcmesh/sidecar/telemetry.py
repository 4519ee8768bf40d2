"""Per-call observability for both listeners: request metrics, spans, access log.

Everything per call is prepared once and cached (labelled metric children,
the tracer, the propagator) so the hot path does a dict lookup, an observe()
and, when tracing is on, one span. State that is already kept elsewhere
(breaker state, endpoints, retries, in-flight) is read at scrape time by a
collector instead of being updated per call.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry, Counter, Histogram

from grpcmesh.sdk.breaker import Breaker, BreakerState
from grpcmesh.sidecar.hop import CallRecord
from grpcmesh.sidecar.spans import CallSpan, SpanRecorder
from grpcmesh.sidecar.tap import Tap

__all__ = ["Telemetry"]

log = logging.getLogger("grpcmesh.sidecar.access")
events = logging.getLogger("grpcmesh.sidecar")

_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_OK = grpc.StatusCode.OK
_MAX_SERIES = 2000  # distinct (direction, service, method); beyond it methods are labelled "other"
_OTHER = "other"


class Telemetry:
    """Metrics, tracing and access logging for one sidecar process."""

    def __init__(
        self,
        service: str,
        *,
        registry: CollectorRegistry,
        provider: TracerProvider | None,
        access_log: bool = False,
    ) -> None:
        self.service = service
        self.registry = registry
        self._spans = SpanRecorder(provider) if provider is not None else None
        self._access_log = access_log
        self.tap = Tap()  # /tap listeners; publishing is skipped while there are none
        self._requests = Counter(
            "grpcmesh_requests",
            "Proxied calls by direction, upstream service, method and status code.",
            ("direction", "service", "method", "code"),
            registry=registry,
        )
        self._latency = Histogram(
            "grpcmesh_request_duration_seconds",
            "Proxied call latency as seen by the sidecar.",
            ("direction", "service", "method"),
            buckets=_BUCKETS,
            registry=registry,
        )
        self._transitions = Counter(
            "grpcmesh_breaker_transitions",
            "Circuit breaker state changes.",
            ("breaker", "to"),
            registry=registry,
        )
        self._counters: dict[tuple[str, str, str, grpc.StatusCode], Any] = {}
        self._histograms: dict[tuple[str, str, str], Any] = {}
        self._span_shapes: dict[tuple[str, str, str], tuple[str, SpanKind, dict[str, str]]] = {}

    @property
    def tracing(self) -> bool:
        return self._spans is not None

    def on_breaker_change(self, breaker: Breaker, old: BreakerState, new: BreakerState) -> None:
        events.warning("breaker %s: %s -> %s", breaker.name, old.name, new.name)
        self._transitions.labels(breaker.name, new.name).inc()

    def start_span(
        self, direction: str, service: str, method: str, metadata: list[tuple[str, str]]
    ) -> tuple[CallSpan | None, list[tuple[str, str]]]:
        """A client/server span continuing the caller's trace, and the headers to send onward."""
        spans = self._spans
        if spans is None:
            return None, []
        key = (direction, service, method)
        shape = self._span_shapes.get(key)
        if shape is None:
            shape = self._span_shapes[key] = self._span_shape(direction, service, method)
        name, kind, attributes = shape
        return spans.start(name, kind, attributes, metadata)

    def _span_shape(self, direction: str, service: str, method: str) -> tuple[str, SpanKind, dict[str, str]]:
        """Name, kind and fixed attributes of a span, computed once per (direction, service, method)."""
        if len(self._span_shapes) > 10_000:
            self._span_shapes.clear()
        rpc_service, _, rpc_method = method[1:].partition("/")
        attributes = {
            "rpc.system": "grpc",
            "rpc.service": rpc_service,
            "rpc.method": rpc_method,
            "mesh.direction": direction,
            "mesh.service": service,
            "mesh.source": self.service,
        }
        kind = SpanKind.CLIENT if direction == "outbound" else SpanKind.SERVER
        return method[1:], kind, attributes

    def finish(self, call: CallRecord) -> None:
        """Metrics, span and access-log line of a call that ended (``call.started`` is set)."""
        code = call.code
        direction, service, method, span, request_id = (
            call.direction,
            call.service,
            call.method,
            call.span,
            call.request_id,
        )
        elapsed = time.perf_counter() - (call.started or 0.0)
        label = method
        hkey = (direction, service, label)
        hist = self._histograms.get(hkey)
        if hist is None:
            if len(self._histograms) >= _MAX_SERIES:  # garbage method names must not grow series
                label = _OTHER
                hkey = (direction, service, label)
            hist = self._histograms.get(hkey) or self._latency.labels(direction, service, label)
            self._histograms[hkey] = hist
        hist.observe(elapsed)
        key = (direction, service, label, code)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self._requests.labels(direction, service, label, code.name)
        counter.inc()
        if self.tap.listening:
            self.tap.publish(direction, service, method, code.name, elapsed, request_id)
        if span is not None and span.recording:
            attributes: dict[str, str | int] = {
                "rpc.grpc.status_code": code.value[0],
                "mesh.request_id": request_id,
                "mesh.attempts": call.attempts,
            }
            state = call.endpoint
            if state is not None:
                attributes["mesh.endpoint"] = state.endpoint.target
                attributes["mesh.breaker_state"] = state.breaker.state.name
            assert self._spans is not None
            self._spans.finish(span, attributes, None if code is _OK else code.name)
        if self._access_log:
            trace_id = ""
            if span is not None:
                trace_id = format(span.trace_id, "032x")
            log.info(
                "%s %s %s %s %.2fms request_id=%s trace_id=%s attempts=%d",
                direction,
                service,
                method,
                code.name,
                elapsed * 1000.0,
                request_id,
                trace_id,
                call.attempts,
                extra={"request_id": request_id, "trace_id": trace_id},
            )
