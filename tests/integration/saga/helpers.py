"""Handles on the real processes of the saga integration tests: participants and the orchestrator."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from grpcmesh.api.v1 import saga_pb2 as pb
from grpcmesh.api.v1 import saga_pb2_grpc as pb_grpc
from tests.support.procs import ManagedProcess, ProcessGroup, free_port, start_service, wait_for_async

NAMES = ("inventory", "payments", "shipping")
TERMINAL = {
    pb.SAGA_STATUS_COMPLETED,
    pb.SAGA_STATUS_COMPENSATED,
    pb.SAGA_STATUS_FAILED,
    pb.SAGA_STATUS_ABORTED,
}


def _identity(data: bytes) -> bytes:
    return data


@dataclass
class ParticipantProc:
    name: str
    proc: ManagedProcess
    port: int

    async def control(self, verb: str, **body: Any) -> dict[str, Any]:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            call = channel.unary_unary(
                f"/saga.test.Control/{verb}", request_serializer=_identity, response_deserializer=_identity
            )
            reply: dict[str, Any] = json.loads(await call(json.dumps(body).encode(), timeout=5))
        return reply

    async def calls(self, method: str = "") -> list[dict[str, Any]]:
        return [c for c in (await self.control("Log"))["calls"] if not method or c["method"] == method]

    async def effects(self, method: str = "") -> list[dict[str, Any]]:
        return [e for e in (await self.control("Log"))["effects"] if not method or e["method"] == method]

    async def wait_called(self, method: str, times: int = 1) -> None:
        async def called() -> bool:
            return len(await self.calls(method)) >= times

        await wait_for_async(called, 20, what=f"{self.name} got {times} call(s) of {method}")


class Participants(dict[str, ParticipantProc]):
    registry: Path

    async def merged_calls(self) -> list[str]:
        """Every business call at every participant, in the order they arrived."""
        calls = [c for p in self.values() for c in await p.calls()]
        return [c["method"] for c in sorted(calls, key=lambda c: c["at"])]


def start_participants(procs: ProcessGroup, tmp: Path) -> Participants:
    found = Participants()
    for name in NAMES:
        port = free_port()
        proc = procs.start(
            [sys.executable, "-m", "tests.support.saga_participants", "--name", name, "--port", str(port)],
            name,
        )
        found[name] = ParticipantProc(name, proc, port)
    for p in found.values():
        p.proc.wait_output(f"participant {p.name} listening on", timeout=30)
    registry = {"services": {n: [{"address": "127.0.0.1", "port": p.port}] for n, p in found.items()}}
    found.registry = tmp / "registry.json"
    found.registry.write_text(json.dumps(registry))
    return found


@dataclass
class Orchestrator:
    proc: ManagedProcess
    port: int
    channel: grpc.aio.Channel

    @property
    def stub(self) -> pb_grpc.SagaOrchestratorStub:
        return pb_grpc.SagaOrchestratorStub(self.channel)

    async def watch(self, saga_id: str) -> list[pb.Saga]:
        """Every state Watch streams, up to and including the terminal one."""
        seen: list[pb.Saga] = []
        stream: AsyncIterator[pb.Saga] = self.stub.Watch(pb.GetSagaRequest(saga_id=saga_id), timeout=60)
        async for saga in stream:
            seen.append(saga)
        assert seen[-1].status in TERMINAL, seen[-1]
        return seen

    async def finish(self, saga_id: str) -> pb.Saga:
        return (await self.watch(saga_id))[-1]

    async def close(self) -> None:
        await self.channel.close(None)


def start_orchestrator(
    procs: ProcessGroup, db: str, registry: Path, port: int | None = None, sidecar: str | None = None
) -> Orchestrator:
    """``grpcmesh saga`` calling participants directly via ``registry``, or through ``sidecar``."""
    route = ["--sidecar", sidecar] if sidecar else ["--discovery", f"file://{registry}"]
    definitions = "tests.support.saga_definitions:DEFINITIONS"
    service = start_service(procs, "saga", "--db", db, "--definitions", definitions, *route, port=port)
    return Orchestrator(service.proc, service.port, grpc.aio.insecure_channel(service.address))


# Runs a test once per orchestrator database (the ``db`` fixture in conftest).
ON_BOTH_DATABASES = pytest.mark.parametrize(
    "db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
