"""Fixtures for SDK integration tests: an in-memory tracer and a running A → B → C chain."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from grpcmesh.sdk import AsyncMeshClient
from tests.support.chain import Chain, running_chain
from tests.support.mesh import start_sidecar
from tests.support.procs import ProcessGroup, free_port


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


async def _sidecar_chain(procs: ProcessGroup, tracer_provider: TracerProvider) -> AsyncIterator[Chain]:
    """a, b, c each behind a real ``grpcmesh sidecar``; every hop calls out through its own sidecar."""
    inbound = {n: free_port() for n in "abc"}
    outbound = {n: free_port() for n in "abc"}
    endpoints = [arg for n, p in inbound.items() for arg in ("--endpoints", f"{n}=127.0.0.1:{p}")]

    def client(name: str, _resolver: object) -> AsyncMeshClient:
        return AsyncMeshClient(
            service=name, sidecar=f"127.0.0.1:{outbound[name]}", tracer_provider=tracer_provider
        )

    async with running_chain(tracer_provider=tracer_provider, client=client) as chain:
        for name in "abc":
            # later flags win: fixed ports, so every sidecar knows every inbound up front
            await asyncio.to_thread(
                start_sidecar,
                procs,
                name,
                chain.address(name),
                "--inbound",
                f"127.0.0.1:{inbound[name]}",
                "--outbound",
                f"127.0.0.1:{outbound[name]}",
                *endpoints,
            )
        chain.edge_sidecar = f"127.0.0.1:{outbound['a']}"
        yield chain


@pytest.fixture(params=["direct", "sidecars"])
async def mesh_chain(
    request: pytest.FixtureRequest, procs: ProcessGroup, tracer_provider: TracerProvider
) -> AsyncIterator[Chain]:
    """The chain in both modes: direct-mode clients, or every hop behind its own sidecar."""
    if request.param == "direct":
        async with running_chain(tracer_provider=tracer_provider) as running:
            yield running
    else:
        async for running in _sidecar_chain(procs, tracer_provider):
            yield running
