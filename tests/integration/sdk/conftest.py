"""Fixtures for SDK integration tests: an in-memory tracer and a running A → B → C chain."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.support.chain import Chain, running_chain
from tests.support.consul import ConsulAgent, consul_agent


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.clear()


@pytest.fixture
def tracer_provider(spans: InMemorySpanExporter) -> Iterator[TracerProvider]:
    """A provider local to the test (never installed globally), exporting to ``spans``."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    yield provider
    provider.shutdown()


@pytest.fixture
async def chain(tracer_provider: TracerProvider) -> AsyncIterator[Chain]:
    """Hops a, b, c running on real sockets; each calls the next through direct-mode MeshClient."""
    async with running_chain(tracer_provider=tracer_provider) as running:
        yield running


@pytest.fixture
def consul(tmp_path: Path) -> Iterator[ConsulAgent]:
    """A started ``consul agent -dev`` on free ports (skipped without a binary; see tests/support/consul.py)."""
    yield from consul_agent(tmp_path)
