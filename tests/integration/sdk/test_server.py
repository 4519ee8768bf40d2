"""Server side over real sockets: context interceptor, error conversion, logs, health, Consul registration."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider

from grpcmesh.sdk import AsyncMeshClient, NotFound, Server, Unknown
from grpcmesh.sdk.discovery import ConsulResolver
from grpcmesh.sdk.headers import request_id_var
from grpcmesh.sdk.interceptors import DeadlineInterceptor, RequestIdInterceptor, TraceInterceptor
from grpcmesh.sdk.logging import ContextFilter
from tests.support.chain import SERVICE, Chain, Hop, HopStub, dumps, loads
from tests.support.consul import ConsulAgent
from tests.support.mesh import ROOT
from tests.support.procs import ProcessGroup, free_port, wait_for_async


class Failing(Hop):
    """Get raises a typed error; Call raises a plain bug."""

    async def get(self, request: dict[str, Any], context: Any) -> dict[str, Any]:
        raise NotFound(f"order {request['id']} not found")

    async def call(self, request: dict[str, Any], context: Any) -> dict[str, Any]:
        raise RuntimeError("boom")


class Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.addFilter(ContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def access_log() -> Keep:
    keep = Keep()
    for name in ("grpcmesh.access", "grpcmesh.server"):
        logging.getLogger(name).addHandler(keep)
        logging.getLogger(name).setLevel(logging.INFO)
    yield keep
    for name in ("grpcmesh.access", "grpcmesh.server"):
        logging.getLogger(name).removeHandler(keep)


async def test_typed_error_raised_in_a_handler_reaches_the_caller(access_log: Keep) -> None:
    async with (
        Server([Failing("f", []).servicer()], name="f") as server,
        AsyncMeshClient(discovery={"f": [server.address]}) as client,
    ):
        token = request_id_var.set("req-srv-1")
        try:
            with pytest.raises(NotFound, match="order 7 not found") as caught:
                await client.stub(HopStub, target="f").Get({"id": 7})
            with pytest.raises(Unknown, match="boom"):
                await client.stub(HopStub, target="f").Call({})
        finally:
            request_id_var.reset(token)
    assert caught.value.request_id == "req-srv-1"
    lines = [r for r in access_log.records if r.name == "grpcmesh.access"]
    assert [(r.rpc_method, r.grpc_code) for r in lines] == [  # type: ignore[attr-defined]
        (f"/{SERVICE}/Get", "NOT_FOUND"),
        (f"/{SERVICE}/Call", "UNKNOWN"),
    ]
    assert {r.request_id for r in lines} == {"req-srv-1"}  # type: ignore[attr-defined]
    assert all(r.duration_ms >= 0 for r in lines)  # type: ignore[attr-defined]
    bug = [r for r in access_log.records if r.name == "grpcmesh.server" and r.exc_info]
    assert len(bug) == 1
    assert bug[0].request_id == "req-srv-1"  # type: ignore[attr-defined]


async def test_interceptors_work_on_a_plain_grpc_aio_channel(
    chain: Chain, tracer_provider: TracerProvider
) -> None:
    interceptors = [RequestIdInterceptor(), DeadlineInterceptor(4.0), TraceInterceptor(tracer_provider)]
    async with grpc.aio.insecure_channel(chain.address("a"), interceptors=interceptors) as channel:
        call = channel.unary_unary(f"/{SERVICE}/Get", request_serializer=dumps, response_deserializer=loads)
        assert await call({}) == {"hop": "a"}
    seen = chain.seen[0]
    assert seen.request_id
    assert seen.trace_id != "0" * 32
    assert seen.remaining is not None
    assert 0 < seen.remaining <= 4.0 * 1.03  # grpc-timeout encoding may round up by a few %


async def test_health_is_serving_after_start() -> None:
    async with (
        Server([Hop("h", []).servicer()], name="h") as server,
        grpc.aio.insecure_channel(server.address) as channel,
    ):
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", SERVICE):
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.consul
async def test_self_registration_in_consul_then_direct_calls(consul: ConsulAgent) -> None:
    probe = ConsulResolver(consul.http_url)

    async def passing(n: int) -> bool:
        return len((await probe.resolve("orders")).endpoints) == n

    try:
        server = Server([Hop("orders", []).servicer()], name="orders", register=consul.http_url)
        await server.start()
        try:
            await wait_for_async(
                lambda: passing(1), timeout=30, interval=0.2, what="orders passing in consul"
            )
            (endpoint,) = (await probe.resolve("orders")).endpoints
            assert endpoint.port == server.port
            async with AsyncMeshClient(discovery=consul.http_url) as client:
                assert await client.stub(HopStub, target="orders").Get({}) == {"hop": "orders"}
        finally:
            await server.stop(grace=0)
        await wait_for_async(lambda: passing(0), timeout=10, interval=0.1, what="orders deregistered")
    finally:
        await probe.close()


def test_registration_needs_a_name_and_a_dialable_host() -> None:
    with pytest.raises(ValueError, match="needs name="):
        Server([], register="http://127.0.0.1:8500")
    with pytest.raises(ValueError, match="needs advertise="):
        Server([], name="x", host="0.0.0.0", register="http://127.0.0.1:8500")


async def test_drain_reports_not_serving_and_lets_in_flight_calls_finish() -> None:
    seen: list[Any] = []
    server = Server([Hop("slow", seen).servicer()], name="slow")
    await server.start()
    try:
        async with (
            grpc.aio.insecure_channel(server.address) as channel,
            AsyncMeshClient(discovery={"slow": [server.address]}) as client,
        ):
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
            in_flight = asyncio.create_task(_call(client.stub(HopStub, target="slow"), {"sleep": 0.3}))

            async def started() -> bool:
                return bool(seen)

            await wait_for_async(started, timeout=5, what="the slow call to reach its handler")
            stopping = asyncio.create_task(server.stop(grace=5))
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
            assert await in_flight == {"path": ["slow"]}
            await stopping
    finally:
        await server.stop(grace=0)


async def _call(stub: HopStub, request: dict[str, Any]) -> Any:
    return await stub.Call(request)


def test_serve_runs_until_sigterm_then_exits_cleanly(procs: ProcessGroup) -> None:
    port = free_port()
    code = (
        "import asyncio\n"
        "from grpcmesh.sdk import serve\n"
        "from tests.support.chain import Hop\n"
        f"asyncio.run(serve(Hop('svc', []).servicer(), port={port}, name='svc', grace=2))\n"
    )
    proc = procs.start([sys.executable, "-c", code], "serve", env={"GRPCMESH_ACCESS_LOG": "1"}, cwd=ROOT)
    proc.wait_output('"msg": "listening on 127.0.0.1:', timeout=20)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = channel.unary_unary(f"/{SERVICE}/Get", request_serializer=dumps, response_deserializer=loads)(
            {}, timeout=5
        )
    assert reply == {"hop": "svc"}
    proc.signal(signal.SIGTERM)
    assert proc.proc.wait(timeout=15) == 0
    out = proc.output()
    assert '"logger": "grpcmesh.access"' in out  # JSON access log (asked for) with the request id
    assert '"request_id": "' in out


async def test_incoming_trace_context_and_baggage_reach_the_handler_without_a_tracer_provider() -> None:
    """With nothing to record the server opens no span, yet what the caller propagated (a
    traceparent, baggage) is still the handler's context, so its own calls carry it on."""
    import json

    from opentelemetry import baggage, trace

    async def where(request: bytes, context: Any) -> bytes:
        span_context = trace.get_current_span().get_span_context()
        seen = {"trace": format(span_context.trace_id, "032x"), "baggage": dict(baggage.get_all())}
        return json.dumps(seen).encode()

    def add(_impl: object, server: grpc.aio.Server) -> None:
        handler = grpc.unary_unary_rpc_method_handler(where)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.v1.W", {"M": handler}),))

    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with (
        Server([(None, add, "t.v1.W")]) as server,
        grpc.aio.insecure_channel(server.address) as channel,
    ):
        call = channel.unary_unary("/t.v1.W/M")
        plain = json.loads(await call(b"", timeout=5))
        traced = json.loads(
            await call(b"", timeout=5, metadata=(("traceparent", f"00-{trace_id}-00f067aa0ba902b7-01"),))
        )
        carried = json.loads(await call(b"", timeout=5, metadata=(("baggage", "tenant=acme"),)))
    assert plain == {"trace": "0" * 32, "baggage": {}}
    assert traced["trace"] == trace_id
    assert carried["baggage"] == {"tenant": "acme"}
