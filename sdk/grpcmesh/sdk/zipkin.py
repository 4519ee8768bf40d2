"""A Zipkin v2 JSON exporter on the standard library, so Zipkin export needs no extra package.

The official ``opentelemetry-exporter-zipkin-json`` pulls in ``requests``; this
one POSTs with ``urllib``. It runs behind a BatchSpanProcessor, whose worker
thread calls :meth:`ZipkinExporter.export`, so a blocking HTTP call is fine.
Span mapping follows the OpenTelemetry → Zipkin spec: ids in lower hex,
times in microseconds, ``kind`` omitted for INTERNAL spans, attributes and
the status as string ``tags`` (``error`` set on ERROR).
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

__all__ = ["DEFAULT_ENDPOINT", "ZipkinExporter", "to_zipkin"]

DEFAULT_ENDPOINT = "http://127.0.0.1:9411/api/v2/spans"
log = logging.getLogger("grpcmesh.sdk.zipkin")

_KINDS = {
    SpanKind.CLIENT: "CLIENT",
    SpanKind.SERVER: "SERVER",
    SpanKind.PRODUCER: "PRODUCER",
    SpanKind.CONSUMER: "CONSUMER",
}


def _tag(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return json.dumps([v if isinstance(v, (str, int, float, bool)) else str(v) for v in value])
    return str(value)


def to_zipkin(span: ReadableSpan) -> dict[str, Any]:
    """One span as a Zipkin v2 JSON object."""
    ctx = span.get_span_context()
    assert ctx is not None
    start = span.start_time or 0
    end = span.end_time or start
    out: dict[str, Any] = {
        "traceId": format(ctx.trace_id, "032x"),
        "id": format(ctx.span_id, "016x"),
        "name": span.name,
        "timestamp": start // 1000,
        "duration": max(1, (end - start) // 1000),
        "localEndpoint": {"serviceName": str(span.resource.attributes.get("service.name", "unknown"))},
    }
    if span.parent is not None:
        out["parentId"] = format(span.parent.span_id, "016x")
    if span.kind in _KINDS:
        out["kind"] = _KINDS[span.kind]
    tags = {k: _tag(v) for k, v in (span.attributes or {}).items()}
    if span.status.status_code is StatusCode.ERROR:
        tags["otel.status_code"] = "ERROR"
        tags["error"] = span.status.description or "ERROR"
    elif span.status.status_code is StatusCode.OK:
        tags["otel.status_code"] = "OK"
    if tags:
        out["tags"] = tags
    if span.events:
        out["annotations"] = [{"timestamp": e.timestamp // 1000, "value": e.name} for e in span.events]
    return out


class ZipkinExporter(SpanExporter):
    """POSTs batches of spans as Zipkin v2 JSON to ``endpoint`` (``/api/v2/spans``)."""

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, *, timeout_s: float = 5.0) -> None:
        if not endpoint.startswith(("http://", "https://")):
            raise ValueError(f"tracing.endpoint for zipkin must be an http(s) URL, got {endpoint!r}")
        self.endpoint = endpoint
        self._timeout = timeout_s
        self._closed = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._closed:
            return SpanExportResult.FAILURE
        body = json.dumps([to_zipkin(s) for s in spans if s.get_span_context() is not None]).encode()
        request = urllib.request.Request(
            self.endpoint, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as resp:
                resp.read()
        except (urllib.error.URLError, OSError) as err:
            log.warning("zipkin export to %s failed: %s", self.endpoint, err)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._closed = True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
