"""Every method of every grpcmesh contract, attacked with hostile requests (tests.support.hostile):
no answer may be UNKNOWN or INTERNAL, each service keeps serving, and its RSS stays bounded.

The methods come from the descriptors, so a new method or service is probed without a new
test; a new service with no process below fails the test until one is added."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.hostile import MB, contract_methods, probes
from tests.support.procs import ProcessGroup, ServiceProc, start_service

SERVICES = {
    "grpcmesh.api.v1.EventStore": "eventstore",
    "grpcmesh.api.v1.CommandBus": "commandbus",
    "grpcmesh.api.v1.QueryBus": "querybus",
    "grpcmesh.api.v1.SagaOrchestrator": "saga",
}
BAD = (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS)
RSS_GROWTH_LIMIT = 200 * MB  # 1 MB strings are decoded a few dozen times; a leak grows far beyond


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServiceProc]]:
    tmp = tmp_path_factory.mktemp("hostile")
    group = ProcessGroup(tmp)
    try:
        es = start_service(group, "eventstore", "--db", f"sqlite://{tmp / 'events.db'}")
        registry = tmp / "registry.json"
        registry.write_text('{"services": {}}')
        yield {
            "eventstore": es,
            "commandbus": start_service(group, "commandbus", "--eventstore", es.address),
            "querybus": start_service(
                group, "querybus", "--eventstore", es.address, "--db", str(tmp / "read.db")
            ),
            "saga": start_service(
                group,
                "saga",
                "--db",
                f"sqlite://{tmp / 'sagas.db'}",
                "--definitions",
                "tests.support.saga_definitions:DEFINITIONS",
                "--discovery",
                f"file://{registry}",
            ),
        }
    finally:
        group.stop_all()


async def _call(channel: grpc.aio.Channel, path: str, body: bytes, streaming: bool) -> grpc.StatusCode:
    """The status of one raw call; a stream is read for a moment, then cancelled (that is fine)."""
    try:
        if not streaming:
            await channel.unary_unary(path)(body, timeout=5)
            return grpc.StatusCode.OK
        call = channel.unary_stream(path)(body, timeout=5)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1):
                async for _ in call:
                    pass
        call.cancel()
        return grpc.StatusCode.OK
    except grpc.aio.AioRpcError as err:
        return err.code()


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_hostile_requests_get_clear_statuses(servers: dict[str, ServiceProc], service: str) -> None:
    methods = [m for m in contract_methods() if m.containing_service.full_name == service]
    assert methods, f"no methods found for {service}"
    server = servers[SERVICES[service]]
    before = _rss(server.proc.pid)
    failures: list[str] = []
    async with grpc.aio.insecure_channel(server.address) as channel:
        for method in methods:
            path = f"/{service}/{method.name}"
            for probe in probes(method):
                code = await _call(channel, path, probe.body, method.server_streaming)
                if code in BAD:
                    failures.append(f"{method.name} {probe.name}: {code.name}")
        health = health_pb2_grpc.HealthStub(channel)
        answer = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    assert failures == []
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    assert server.proc.alive()
    assert _rss(server.proc.pid) - before < RSS_GROWTH_LIMIT


def test_every_contract_service_is_probed() -> None:
    """A new service in the contracts needs a process in SERVICES (then its methods are probed)."""
    assert {m.containing_service.full_name for m in contract_methods()} == set(SERVICES)
