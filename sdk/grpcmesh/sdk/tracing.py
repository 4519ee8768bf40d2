"""OpenTelemetry setup shared by the SDK and the sidecar.

One call builds a TracerProvider with a ratio sampler (parent-based, so a
sampled caller keeps its whole trace) and the chosen exporter: ``none``
(spans are created for context propagation only), ``console``, ``otlp``
(needs the ``otlp`` extra), ``memory`` (tests read spans back), ``store``
(the embedded SQLite span store read by ``grpcmesh traces``; ``endpoint`` is
the file, default ``$GRPCMESH_TRACE_DB`` or ``./grpcmesh-traces.db``) or
``zipkin`` (Zipkin v2 JSON over HTTP, stdlib only; ``endpoint`` is the URL).
"""

from __future__ import annotations

import os
import weakref

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

__all__ = ["EXPORTERS", "configure_tracing", "default_trace_db", "memory_exporter", "span_processors"]

EXPORTERS = ("none", "console", "otlp", "memory", "store", "zipkin")
TRACE_DB_ENV = "GRPCMESH_TRACE_DB"

_memory: InMemorySpanExporter | None = None
_processors: weakref.WeakKeyDictionary[TracerProvider, list[SpanProcessor]] = weakref.WeakKeyDictionary()


def span_processors(provider: TracerProvider) -> list[SpanProcessor]:
    """The processors :func:`configure_tracing` attached to ``provider``.

    For code that builds finished spans itself and hands them straight to the
    export pipeline (the sidecar's per-call spans), without a Tracer.
    """
    return list(_processors.get(provider, ()))


def _attach(provider: TracerProvider, processor: SpanProcessor) -> None:
    provider.add_span_processor(processor)
    _processors.setdefault(provider, []).append(processor)


def memory_exporter() -> InMemorySpanExporter | None:
    """The exporter installed by ``exporter="memory"``, for tests."""
    return _memory


def default_trace_db() -> str:
    """Where the ``store`` exporter writes (and ``grpcmesh traces`` reads) without an endpoint."""
    return os.environ.get(TRACE_DB_ENV) or "grpcmesh-traces.db"


def configure_tracing(
    service_name: str,
    *,
    sample_ratio: float = 1.0,
    exporter: str = "none",
    endpoint: str | None = None,
    set_global: bool = True,
) -> TracerProvider:
    """Builds (and by default installs globally) a TracerProvider for ``service_name``."""
    global _memory
    if not 0.0 <= sample_ratio <= 1.0:
        raise ValueError(f"tracing.sample_ratio must be within [0, 1], got {sample_ratio}")
    if exporter not in EXPORTERS:
        raise ValueError(f"tracing.exporter must be one of {EXPORTERS}, got {exporter!r}")
    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name}),
        sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
    )
    chosen: SpanExporter | None = None
    if exporter == "console":
        chosen = ConsoleSpanExporter()
    elif exporter == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found]
                OTLPSpanExporter,
            )
        except ImportError as err:  # pragma: no cover - depends on the optional extra
            raise ValueError("tracing.exporter 'otlp' needs: pip install 'grpcmesh[otlp]'") from err
        chosen = OTLPSpanExporter(endpoint=endpoint) if endpoint else OTLPSpanExporter()
    elif exporter == "store":
        from grpcmesh.sdk.spanexport import SpanStoreExporter

        chosen = SpanStoreExporter(endpoint or default_trace_db())
    elif exporter == "zipkin":
        from grpcmesh.sdk.zipkin import DEFAULT_ENDPOINT, ZipkinExporter

        chosen = ZipkinExporter(endpoint or DEFAULT_ENDPOINT)
    elif exporter == "memory":
        _memory = InMemorySpanExporter()
        _attach(provider, SimpleSpanProcessor(_memory))
    if chosen is not None:
        _attach(provider, BatchSpanProcessor(chosen))
    if set_global:
        trace.set_tracer_provider(provider)
    return provider
