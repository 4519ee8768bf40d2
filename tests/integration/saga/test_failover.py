"""Two orchestrators on one database: one drives sagas, the other stands by and takes over.

Real processes on SQLite (flock) and PostgreSQL (advisory lock); the active one
is SIGKILLed while a step is in flight, and the standby must resume the saga
without any participant seeing a step it did not see before the crash.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from grpcmesh.api.v1 import saga_pb2 as pb
from grpcmesh.sdk.retry import NOT_REACHED
from tests.integration.saga.helpers import ON_BOTH_DATABASES, Orchestrator, Participants
from tests.integration.saga.test_saga import CHARGE, SHIP, order
from tests.support.procs import wait_for, wait_for_async

SERVICE = "grpcmesh.api.v1.SagaOrchestrator"


async def health(orch: Orchestrator) -> int:
    stub = health_pb2_grpc.HealthStub(orch.channel)
    reply = await stub.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=5)
    return int(reply.status)


@ON_BOTH_DATABASES
async def test_one_active_orchestrator_per_database_and_the_standby_takes_over(
    orchestrators: Callable[..., Orchestrator], participants: Participants
) -> None:
    payments = participants["payments"]
    await payments.control("Configure", method=CHARGE, block=True)
    first = orchestrators()
    second = orchestrators()  # same database: standby
    assert await health(first) == health_pb2.HealthCheckResponse.SERVING
    assert await health(second) == health_pb2.HealthCheckResponse.NOT_SERVING
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await second.stub.Start(order(key="ha-refused"), timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "standby" in (info.value.details() or "")
    assert (NOT_REACHED, "1") in tuple(info.value.trailing_metadata() or ())  # the mesh may retry it

    started = await first.stub.Start(order(key="ha-1"), timeout=10)
    await payments.wait_called(CHARGE)
    first.proc.kill()  # SIGKILL while charge is in flight: the lock is released by the OS / PostgreSQL
    await payments.control("Configure", method=CHARGE)
    await payments.control("Release", method=CHARGE)

    async def serving() -> bool:
        return await health(second) == health_pb2.HealthCheckResponse.SERVING

    await wait_for_async(serving, 30, what="the standby to take over")
    final = await second.finish(started.saga_id)
    assert final.status == pb.SAGA_STATUS_COMPLETED, final
    charges = await payments.calls(CHARGE)
    assert [c["key"] for c in charges] == [f"{started.saga_id}/charge"] * 2  # re-issued once, same key
    assert len(await payments.effects(CHARGE)) == 1
    assert len(await participants["shipping"].effects(SHIP)) == 1
    refused = await second.stub.Start(order(key="ha-refused"), timeout=10)  # now it answers
    assert refused.saga_id


@pytest.mark.postgres
@pytest.mark.parametrize("db", ["postgres"], indirect=True)
async def test_active_orchestrator_that_loses_its_database_session_steps_down(
    orchestrators: Callable[..., Orchestrator], participants: Participants, db: str
) -> None:
    """PostgreSQL ends the lock holder's session (a failover, a network cut): the active
    instance notices, exits non-zero for its supervisor, and the standby takes over."""
    first = orchestrators()
    second = orchestrators()
    assert await health(second) == health_pb2.HealthCheckResponse.NOT_SERVING
    async with await psycopg.AsyncConnection.connect(db, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted"
        )
        assert [row[0] for row in await cur.fetchall()] == [True]
    wait_for(lambda: not first.proc.alive(), 20, what="the deposed orchestrator to exit")
    assert first.proc.proc.returncode == 1
    assert "lost the orchestrator lock" in first.proc.output()

    async def serving() -> bool:
        return await health(second) == health_pb2.HealthCheckResponse.SERVING

    await wait_for_async(serving, 30, what="the standby to take over")
    saga = await second.stub.Start(order(key="after-step-down"), timeout=10)
    assert (await second.finish(saga.saga_id)).status == pb.SAGA_STATUS_COMPLETED
