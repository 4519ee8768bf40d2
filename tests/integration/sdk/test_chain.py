"""A → B → C over real sockets: one trace, one request id, a shrinking deadline, typed errors.

The test is the edge: it calls A through an ``AsyncMeshClient``; A calls B and
B calls C inside their handlers through their own clients, with no code that
threads ids or deadlines by hand. Each test runs twice: with direct-mode
clients, and with every hop behind its own ``grpcmesh sidecar`` process (the
clients then talk to their local sidecar only).
"""

from __future__ import annotations

import logging

import pytest
from google.rpc import error_details_pb2
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from grpcmesh.sdk import AsyncMeshClient, DeadlineExceeded, InvalidArgument, Unavailable
from grpcmesh.sdk.headers import MESH_SERVICE, MESH_SOURCE, request_id_var
from grpcmesh.sdk.logging import ContextFilter
from tests.support.chain import Chain, HopStub


@pytest.fixture
def chain(mesh_chain: Chain) -> Chain:
    return mesh_chain


@pytest.fixture
async def edge(chain: Chain, tracer_provider: TracerProvider) -> AsyncMeshClient:
    if chain.edge_sidecar:
        client = AsyncMeshClient(service="edge", sidecar=chain.edge_sidecar, tracer_provider=tracer_provider)
    else:
        client = AsyncMeshClient(service="edge", discovery=chain.resolver, tracer_provider=tracer_provider)
    yield client
    await client.close()


async def test_one_trace_and_one_request_id_end_to_end(
    chain: Chain, edge: AsyncMeshClient, spans: InMemorySpanExporter
) -> None:
    token = request_id_var.set("req-chain-1")
    try:
        reply = await edge.stub(HopStub, target="a").Call({"hops": ["b", "c"]}, timeout=10)
    finally:
        request_id_var.reset(token)

    assert reply == {"path": ["a", "b", "c"]}
    assert [s.hop for s in chain.seen] == ["a", "b", "c"]
    assert {s.request_id for s in chain.seen} == {"req-chain-1"}
    trace_ids = {s.trace_id for s in chain.seen}
    assert len(trace_ids) == 1
    assert trace_ids != {"0" * 32}
    # every span the apps made (3 client + 3 server) is in that one trace
    finished = spans.get_finished_spans()
    assert {format(s.context.trace_id, "032x") for s in finished} == trace_ids
    assert sorted(s.kind.name for s in finished) == ["CLIENT"] * 3 + ["SERVER"] * 3
    if chain.edge_sidecar:
        return  # the sidecars' own spans sit between the apps' spans (in their processes)
    by_id = {s.context.span_id: s for s in finished}
    for server_span in (s for s in finished if s.kind is SpanKind.SERVER):
        assert server_span.parent is not None
        assert by_id[server_span.parent.span_id].kind is SpanKind.CLIENT
    # each app learns its caller; no call carries a routing header (direct mode needs none)
    assert [s.metadata[MESH_SOURCE] for s in chain.seen] == ["edge", "a", "b"]
    assert not any(MESH_SERVICE in s.metadata for s in chain.seen)


async def test_each_target_is_reached_by_its_name_alone(chain: Chain, edge: AsyncMeshClient) -> None:
    """Every hop serves the same proto service, so only the target name tells them apart: in
    sidecar mode it travels as the channel's ``:authority`` (no routing header)."""
    for name in ("c", "b", "a"):
        assert await edge.stub(HopStub, target=name).Get({}, timeout=10) == {"hop": name}
    assert not any(MESH_SERVICE in s.metadata for s in chain.seen)


async def test_request_id_is_generated_at_the_edge_and_kept(chain: Chain, edge: AsyncMeshClient) -> None:
    await edge.stub(HopStub, target="a").Call({"hops": ["b", "c"]})
    ids = {s.request_id for s in chain.seen}
    assert len(ids) == 1
    assert None not in ids


async def test_deadline_set_at_a_shrinks_along_the_chain(chain: Chain, edge: AsyncMeshClient) -> None:
    # Each hop waits 150 ms before calling the next. gRPC may send a timeout up to ~3 % longer
    # than asked (C-core's HPACK encoder reuses a recently sent grpc-timeout that is at most 3 %
    # longer, and the sidecars' connections carry several callers), i.e. ~60 ms of a 2 s
    # deadline, so the gap is chosen well above that.
    await edge.stub(HopStub, target="a").Call({"hops": ["b", "c"], "gap": 0.15}, timeout=2)
    left = {s.hop: s.remaining for s in chain.seen}
    assert left["a"] is not None
    assert left["b"] is not None
    assert left["c"] is not None
    assert 2 * 1.03 >= left["a"] > left["b"] > left["c"] > 0, [(s.hop, s.remaining) for s in chain.seen]
    assert left["a"] - left["c"] > 0.05


async def test_a_deadline_that_runs_out_downstream_is_deadline_exceeded_at_the_edge(
    chain: Chain, edge: AsyncMeshClient
) -> None:
    with pytest.raises(DeadlineExceeded) as caught:
        await edge.stub(HopStub, target="a").Call({"hops": ["b", "c"], "sleep": 30}, timeout=0.5)
    assert caught.value.request_id


async def test_error_raised_in_c_arrives_at_the_edge_typed_with_details(
    chain: Chain, edge: AsyncMeshClient
) -> None:
    token = request_id_var.set("req-fail-1")
    try:
        with pytest.raises(InvalidArgument) as caught:
            await edge.stub(HopStub, target="a").Call({"hops": ["b", "c"], "fail": "c"})
    finally:
        request_id_var.reset(token)
    err = caught.value
    assert err.details == "amount must be positive"
    assert err.field_violations() == {"amount": "must be > 0, got -5"}
    bad = err.detail(error_details_pb2.BadRequest)
    assert bad is not None
    assert bad.field_violations[0].field == "amount"
    assert err.request_id == "req-fail-1"
    assert str(err) == "INVALID_ARGUMENT: amount must be positive (request id req-fail-1)"


async def test_logs_inside_handlers_carry_request_and_trace_id(chain: Chain, edge: AsyncMeshClient) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("tests.chain")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        token = request_id_var.set("req-log-1")
        try:
            await edge.stub(HopStub, target="a").Call({"hops": ["b", "c"]})
        finally:
            request_id_var.reset(token)
    finally:
        logger.removeHandler(handler)
    assert [r.getMessage() for r in records] == ["hop a handling", "hop b handling", "hop c handling"]
    assert {r.request_id for r in records} == {"req-log-1"}  # type: ignore[attr-defined]
    assert {r.trace_id for r in records} == {chain.seen[0].trace_id}  # type: ignore[attr-defined]


async def test_a_target_that_resolves_to_nothing_names_the_target(edge: AsyncMeshClient) -> None:
    token = request_id_var.set("req-ghost-1")
    try:
        with pytest.raises(Unavailable, match="'ghost'") as caught:
            await edge.stub(HopStub, target="ghost").Get({}, timeout=5)
    finally:
        request_id_var.reset(token)
    assert caught.value.request_id == "req-ghost-1"
