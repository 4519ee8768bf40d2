"""The orchestrator as a real process (``grpcmesh saga``) driving three real participant
processes over loopback: happy path, compensation order, operator Retry/Abort, crash resume,
idempotent Start, Watch, and the statuses of bad requests."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest
from google.protobuf import struct_pb2

from grpcmesh.api.v1 import saga_pb2 as pb
from grpcmesh.sdk.errors import from_rpc_error
from tests.integration.saga.helpers import ON_BOTH_DATABASES, Orchestrator, Participants

RESERVE, RELEASE = "/shop.Inventory/Reserve", "/shop.Inventory/Release"
CHARGE, REFUND = "/shop.Payments/Charge", "/shop.Payments/Refund"
SHIP = "/shop.Shipping/Ship"


def order(order_id: str = "o-1", key: str = "") -> pb.StartSagaRequest:
    saga_input = struct_pb2.Struct()
    saga_input.update({"order_id": order_id, "sku": "book"})
    return pb.StartSagaRequest(definition="order", idempotency_key=key, input=saga_input)


def steps(saga: pb.Saga) -> list[str]:
    return [pb.StepStatus.Name(s.status).removeprefix("STEP_STATUS_") for s in saga.steps]


async def test_happy_path(orchestrator: Orchestrator, participants: Participants) -> None:
    started = await orchestrator.stub.Start(order(), timeout=10)
    assert started.status == pb.SAGA_STATUS_RUNNING
    final = await orchestrator.finish(started.saga_id)
    assert final.status == pb.SAGA_STATUS_COMPLETED, final
    assert steps(final) == ["SUCCEEDED"] * 3
    assert await participants.merged_calls() == [RESERVE, CHARGE, SHIP]
    charge = (await participants["payments"].calls(CHARGE))[0]
    assert charge["key"] == f"{started.saga_id}/charge"
    assert charge["request"]["reservation"] == final.steps[0].result["id"] == "inventory-1"
    assert final.steps[1].result["participant"] == "payments"


async def test_failure_in_step_3_compensates_2_then_1(
    orchestrator: Orchestrator, participants: Participants
) -> None:
    await participants["shipping"].control("Configure", method=SHIP, fail="FAILED_PRECONDITION")
    started = await orchestrator.stub.Start(order(), timeout=10)
    final = await orchestrator.finish(started.saga_id)
    assert final.status == pb.SAGA_STATUS_COMPENSATED, final
    assert steps(final) == ["COMPENSATED", "COMPENSATED", "FAILED"]
    assert await participants.merged_calls() == [RESERVE, CHARGE, SHIP, REFUND, RELEASE]
    refund = (await participants["payments"].calls(REFUND))[0]
    assert refund["request"] == {"charge": final.steps[1].result["id"]}
    assert refund["key"] == f"{started.saga_id}/charge/compensate"
    assert "FAILED_PRECONDITION" in final.error

    history = await orchestrator.stub.History(pb.GetSagaRequest(saga_id=started.saga_id), timeout=10)
    assert [e.version for e in history.events] == list(range(1, final.version + 1))
    trail = [(e.step, pb.StepStatus.Name(e.step_status).removeprefix("STEP_STATUS_")) for e in history.events]
    assert trail == [
        ("", "UNSPECIFIED"),
        ("reserve", "RUNNING"),
        ("reserve", "SUCCEEDED"),
        ("charge", "RUNNING"),
        ("charge", "SUCCEEDED"),
        ("ship", "RUNNING"),
        ("ship", "FAILED"),
        ("charge", "COMPENSATING"),
        ("charge", "COMPENSATED"),
        ("reserve", "COMPENSATING"),
        ("reserve", "COMPENSATED"),
        ("", "UNSPECIFIED"),
    ]
    assert history.events[6].error.startswith("FAILED_PRECONDITION")
    assert history.events[-1].status == pb.SAGA_STATUS_COMPENSATED


async def test_failed_compensation_then_operator_retry(
    orchestrator: Orchestrator, participants: Participants
) -> None:
    payments = participants["payments"]
    await participants["shipping"].control("Configure", method=SHIP, fail="INVALID_ARGUMENT")
    await payments.control("Configure", method=REFUND, fail="UNAVAILABLE", times=-1)
    started = await orchestrator.stub.Start(order(), timeout=10)
    failed = await orchestrator.finish(started.saga_id)
    assert failed.status == pb.SAGA_STATUS_FAILED, failed
    assert steps(failed) == ["SUCCEEDED", "COMPENSATION_FAILED", "FAILED"]
    assert failed.steps[1].compensation_attempts == 3
    assert await participants["inventory"].calls(RELEASE) == []

    await payments.control("Configure", method=REFUND)  # the operator fixed payments
    retried = await orchestrator.stub.Retry(pb.GetSagaRequest(saga_id=started.saga_id), timeout=10)
    assert retried.status == pb.SAGA_STATUS_COMPENSATING
    final = await orchestrator.finish(started.saga_id)
    assert final.status == pb.SAGA_STATUS_COMPENSATED, final
    assert (await participants.merged_calls())[-2:] == [REFUND, RELEASE]
    assert len(await payments.effects(REFUND)) == 1


@ON_BOTH_DATABASES
async def test_sigkill_mid_saga_resumes_without_duplicate_effects(
    orchestrators: Callable[..., Orchestrator], participants: Participants
) -> None:
    payments = participants["payments"]
    await payments.control("Configure", method=CHARGE, block=True)
    first = orchestrators()
    started = await first.stub.Start(order(key="crash-1"), timeout=10)
    await payments.wait_called(CHARGE)
    first.proc.kill()  # SIGKILL while charge is in flight
    assert first.proc.proc.returncode == -signal.SIGKILL
    await payments.control("Configure", method=CHARGE)  # unblock the rest
    await payments.control("Release", method=CHARGE)

    second = orchestrators(port=first.port)
    final = await second.finish(started.saga_id)
    assert final.status == pb.SAGA_STATUS_COMPLETED, final
    charges = await payments.calls(CHARGE)
    assert [c["key"] for c in charges] == [f"{started.saga_id}/charge"] * 2  # re-issued, same key
    assert len(await payments.effects(CHARGE)) == 1  # ... and deduplicated by the participant
    assert len(await participants["inventory"].calls(RESERVE)) == 1  # completed step not re-run
    assert len(await participants["shipping"].effects(SHIP)) == 1
    assert final.steps[1].attempts == 2
    again = await second.stub.Start(order(key="crash-1"), timeout=10)
    assert again.saga_id == started.saga_id


async def test_start_is_idempotent_by_key(orchestrator: Orchestrator, participants: Participants) -> None:
    a = await orchestrator.stub.Start(order(key="order-7"), timeout=10)
    b = await orchestrator.stub.Start(order(key="order-7"), timeout=10)
    assert a.saga_id == b.saga_id
    await orchestrator.finish(a.saga_id)
    assert len(await participants["inventory"].calls(RESERVE)) == 1
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await orchestrator.stub.Start(order("other", key="order-7"), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "idempotency_key" in from_rpc_error(err.value).field_violations()


async def test_watch_sees_every_transition(orchestrator: Orchestrator, participants: Participants) -> None:
    inventory = participants["inventory"]
    await inventory.control("Configure", method=RESERVE, block=True)
    started = await orchestrator.stub.Start(order(), timeout=10)
    await inventory.wait_called(RESERVE)
    task = asyncio.ensure_future(orchestrator.watch(started.saga_id))
    await inventory.control("Release", method=RESERVE)
    seen = await task
    versions = [s.version for s in seen]
    assert versions == list(range(versions[0], versions[-1] + 1))
    assert versions[0] <= 2  # watching began while reserve was in flight
    assert seen[-1].status == pb.SAGA_STATUS_COMPLETED
    assert versions[-1] == 8  # created, 3 x (running, succeeded), completed


async def test_abort_compensates_what_ran(orchestrator: Orchestrator, participants: Participants) -> None:
    payments = participants["payments"]
    await payments.control("Configure", method=CHARGE, block=True)
    started = await orchestrator.stub.Start(order(), timeout=10)
    await payments.wait_called(CHARGE)
    aborted = await orchestrator.stub.Abort(
        pb.AbortSagaRequest(saga_id=started.saga_id, reason="fraud"), timeout=10
    )
    assert aborted.abort_reason == "fraud"
    final = await orchestrator.finish(started.saga_id)
    await payments.control("Release", method=CHARGE)
    assert final.status == pb.SAGA_STATUS_ABORTED, final
    assert await participants.merged_calls() == [RESERVE, CHARGE, REFUND, RELEASE]
    assert await participants["shipping"].calls() == []


async def test_bad_requests_get_precise_statuses(
    orchestrator: Orchestrator, participants: Participants
) -> None:
    stub = orchestrator.stub

    async def status(call: Awaitable[object]) -> tuple[str, list[str]]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        return err.value.code().name, sorted(from_rpc_error(err.value).field_violations())

    invalid = "INVALID_ARGUMENT"
    no_input = pb.StartSagaRequest(definition="order")
    assert await status(stub.Start(pb.StartSagaRequest(definition="nope"), timeout=5)) == (
        invalid,
        ["definition"],
    )
    assert await status(stub.Start(pb.StartSagaRequest(), timeout=5)) == (invalid, ["definition"])
    assert await status(stub.Start(no_input, timeout=5)) == (invalid, ["input.order_id"])
    huge = order()
    huge.input.update({"blob": "x" * 300_000})
    assert await status(stub.Start(huge, timeout=5)) == (invalid, ["input"])
    assert await status(stub.Get(pb.GetSagaRequest(), timeout=5)) == (invalid, ["saga_id"])
    assert await status(stub.Get(pb.GetSagaRequest(saga_id="x" * 300), timeout=5)) == (invalid, ["saga_id"])
    assert await status(stub.Get(pb.GetSagaRequest(saga_id="missing"), timeout=5)) == ("NOT_FOUND", [])
    assert await status(_first(stub.Watch(pb.GetSagaRequest(saga_id="missing"), timeout=5))) == (
        "NOT_FOUND",
        [],
    )
    assert await status(stub.Retry(pb.GetSagaRequest(saga_id="missing"), timeout=5)) == ("NOT_FOUND", [])
    assert await status(stub.History(pb.GetSagaRequest(saga_id="missing"), timeout=5)) == ("NOT_FOUND", [])
    assert await status(stub.History(pb.GetSagaRequest(), timeout=5)) == (invalid, ["saga_id"])
    assert await status(stub.List(pb.ListSagasRequest(page_size=5000), timeout=5)) == (invalid, ["page_size"])
    assert await status(stub.List(pb.ListSagasRequest(page_token="zz!"), timeout=5)) == (
        invalid,
        ["page_token"],
    )
    assert await status(stub.List(pb.ListSagasRequest(status=99), timeout=5)) == (invalid, ["status"])  # type: ignore[arg-type]

    done = await orchestrator.finish((await stub.Start(order(), timeout=5)).saga_id)
    by_id = pb.GetSagaRequest(saga_id=done.saga_id)
    assert await status(stub.Retry(by_id, timeout=5)) == ("FAILED_PRECONDITION", [])
    abort = pb.AbortSagaRequest(saga_id=done.saga_id)
    assert await status(stub.Abort(abort, timeout=5)) == ("FAILED_PRECONDITION", [])


async def test_list_pages_and_filters(orchestrator: Orchestrator, participants: Participants) -> None:
    await participants["shipping"].control("Configure", method=SHIP, fail="FAILED_PRECONDITION")
    ids = [(await orchestrator.stub.Start(order(f"o-{i}"), timeout=5)).saga_id for i in range(3)]
    for saga_id in ids:
        await orchestrator.finish(saga_id)
    first = await orchestrator.stub.List(pb.ListSagasRequest(page_size=2), timeout=5)
    rest = await orchestrator.stub.List(
        pb.ListSagasRequest(page_size=2, page_token=first.next_page_token), timeout=5
    )
    assert [s.saga_id for s in (*first.sagas, *rest.sagas)] == ids
    assert rest.next_page_token == ""
    compensated = pb.ListSagasRequest(status=pb.SAGA_STATUS_COMPENSATED)
    assert len((await orchestrator.stub.List(compensated, timeout=5)).sagas) == 3
    completed = pb.ListSagasRequest(status=pb.SAGA_STATUS_COMPLETED)
    assert list((await orchestrator.stub.List(completed, timeout=5)).sagas) == []


async def _first(stream: AsyncIterator[object]) -> object:
    async for item in stream:
        return item
    return None
