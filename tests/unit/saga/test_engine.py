"""Engine logic with an injected fake step caller: order, retries, compensation, operator actions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from grpcmesh.sdk.errors import FailedPrecondition, InvalidArgument, Unavailable
from grpcmesh.services.saga.definitions import StepRetry
from grpcmesh.services.saga.domain import SagaEvent, SagaRecord, SagaStatus, StepStatus
from grpcmesh.services.saga.engine import Orchestrator
from grpcmesh.services.saga.runner import backoff
from tests.unit.saga.fakes import FakeCaller, Logged, orchestrator, until_terminal

RESERVE, RELEASE = "/shop.Inventory/Reserve", "/shop.Inventory/Release"
CHARGE, REFUND = "/shop.Payments/Charge", "/shop.Payments/Refund"
SHIP = "/shop.Shipping/Ship"


async def left_in_flight(tmp_path: Path, step: str, key: str = "", caller: FakeCaller | None = None) -> str:
    """A saga an orchestrator left behind: it exited (as a killed process would) while ``step``
    was in flight; returns the saga's id. The store on ``tmp_path`` keeps the saga RUNNING."""
    caller = caller or FakeCaller()
    caller.block(step)
    engine, store = orchestrator(tmp_path, caller)
    await store.open()
    rec = await engine.start("order", key, {"sku": "a"})
    await caller.entered[step].wait()
    await engine.close()
    await store.close()
    return rec.saga_id


def statuses(rec: object) -> list[str]:
    return [s.status.name for s in rec.steps]  # type: ignore[attr-defined]


async def test_happy_path_runs_steps_in_order_and_chains_results(
    orch: Orchestrator, caller: FakeCaller
) -> None:
    caller.script[RESERVE] = [{"reservation": "r-1"}]
    rec = await orch.start("order", "o-1", {"sku": "a"})
    final = (await until_terminal(orch, rec.saga_id))[-1]
    assert final.status is SagaStatus.COMPLETED
    assert caller.methods() == [RESERVE, CHARGE, SHIP]
    assert [c.key for c in caller.calls] == [f"{rec.saga_id}/{n}" for n in ("reserve", "charge", "ship")]
    assert caller.calls[1].request["prev"]["reserve"]["reservation"] == "r-1"
    assert final.steps[0].result == {"method": RESERVE, "reservation": "r-1"}
    assert [s.attempts for s in final.steps] == [1, 1, 1]


async def test_every_call_is_announced_in_the_store_before_it_is_made(
    tmp_path: Path, caller: FakeCaller
) -> None:
    engine, store = orchestrator(tmp_path, caller)
    await store.open()
    checks: list[asyncio.Task[None]] = []
    caller.script[CHARGE] = [Unavailable("down"), {}]

    def on_call(logged: Logged) -> None:
        attempts_so_far = len([c for c in caller.calls if c.method == logged.method])
        saga_id, step = logged.key.split("/")[:2]

        async def check() -> None:
            stored = await store.get(saga_id)
            assert stored is not None
            persisted = next(s for s in stored.steps if s.name == step)
            assert persisted.status is StepStatus.RUNNING
            assert persisted.attempts == attempts_so_far

        checks.append(asyncio.ensure_future(check()))

    caller.on_call = on_call
    gate = caller.block(SHIP)
    rec = await engine.start("order", "", {"sku": "a"})
    await caller.entered[SHIP].wait()
    await asyncio.gather(*checks)  # every step's row said RUNNING with this attempt at call time
    gate.set()
    assert (await until_terminal(engine, rec.saga_id))[-1].status is SagaStatus.COMPLETED
    await engine.close()
    await store.close()


async def test_retryable_errors_are_retried_then_succeed(orch: Orchestrator, caller: FakeCaller) -> None:
    caller.script[CHARGE] = [Unavailable("blip"), Unavailable("blip"), {"charge": "c-1"}]
    rec = await orch.start("order", "", {"sku": "a"})
    final = (await until_terminal(orch, rec.saga_id))[-1]
    assert final.status is SagaStatus.COMPLETED
    assert final.steps[1].attempts == 3
    assert {c.key for c in caller.calls if c.method == CHARGE} == {f"{rec.saga_id}/charge"}


async def test_failure_in_step_3_compensates_2_then_1(orch: Orchestrator, caller: FakeCaller) -> None:
    caller.script[RESERVE] = [{"reservation": "r-9"}]
    caller.script[SHIP] = [FailedPrecondition("address unknown")]
    rec = await orch.start("order", "", {"sku": "a"})
    final = (await until_terminal(orch, rec.saga_id))[-1]
    assert final.status is SagaStatus.COMPENSATED
    assert caller.methods() == [RESERVE, CHARGE, SHIP, REFUND, RELEASE]
    assert statuses(final) == ["COMPENSATED", "COMPENSATED", "FAILED"]
    assert final.steps[2].attempts == 1  # FAILED_PRECONDITION is not retryable
    assert "address unknown" in final.error
    assert "ship" in final.error
    release = caller.calls[-1]
    assert release.request["undo"]["reservation"] == "r-9"
    assert release.key == f"{rec.saga_id}/reserve/compensate"


async def test_exhausted_retries_compensate(orch: Orchestrator, caller: FakeCaller) -> None:
    caller.script[CHARGE] = [Unavailable("down")]
    rec = await orch.start("order", "", {"sku": "a"})
    final = (await until_terminal(orch, rec.saga_id))[-1]
    assert final.status is SagaStatus.COMPENSATED
    assert caller.methods() == [RESERVE, CHARGE, CHARGE, CHARGE, RELEASE]
    assert statuses(final) == ["COMPENSATED", "FAILED", "PENDING"]


async def test_failed_compensation_needs_operator_retry(orch: Orchestrator, caller: FakeCaller) -> None:
    caller.script[SHIP] = [InvalidArgument("no")]
    caller.script[REFUND] = [Unavailable("payments down")]
    rec = await orch.start("order", "", {"sku": "a"})
    failed = (await until_terminal(orch, rec.saga_id))[-1]
    assert failed.status is SagaStatus.FAILED
    assert statuses(failed) == ["SUCCEEDED", "COMPENSATION_FAILED", "FAILED"]
    assert failed.steps[1].compensation_attempts == 3
    assert RELEASE not in caller.methods()  # reverse order: 1 waits for 2
    with pytest.raises(Exception, match="only a RUNNING saga"):
        await orch.abort(rec.saga_id, "late")

    caller.script[REFUND] = [{}]
    retried = await orch.retry(rec.saga_id)
    assert retried.status is SagaStatus.COMPENSATING
    final = (await until_terminal(orch, rec.saga_id))[-1]
    assert final.status is SagaStatus.COMPENSATED
    assert caller.methods()[-2:] == [REFUND, RELEASE]
    assert final.steps[1].compensation_attempts == 4
    assert "ship" in final.error  # the cause is the failed forward step again


async def test_abort_mid_step_compensates_the_in_flight_step_too(
    orch: Orchestrator, caller: FakeCaller
) -> None:
    gate = caller.block(CHARGE)
    rec = await orch.start("order", "", {"sku": "a"})
    await caller.entered[CHARGE].wait()
    aborted = await orch.abort(rec.saga_id, "customer cancelled")
    assert aborted.abort_reason == "customer cancelled"
    final = (await until_terminal(orch, rec.saga_id))[-1]
    gate.set()
    assert final.status is SagaStatus.ABORTED
    assert caller.methods() == [RESERVE, CHARGE, REFUND, RELEASE]
    assert statuses(final) == ["COMPENSATED", "COMPENSATED", "PENDING"]


async def test_resume_reissues_the_in_flight_step_with_the_same_key(tmp_path: Path) -> None:
    saga_id = await left_in_flight(tmp_path, CHARGE, "k")

    second_caller = FakeCaller()
    second, store2 = orchestrator(tmp_path, second_caller)
    await store2.open()
    assert await second.resume() == 1
    final = (await until_terminal(second, saga_id))[-1]
    assert final.status is SagaStatus.COMPLETED
    assert second_caller.methods() == [CHARGE, SHIP]  # reserve is not re-run
    assert second_caller.calls[0].key == f"{saga_id}/charge"
    assert final.steps[1].attempts == 2
    await second.close()
    await store2.close()


async def test_start_is_idempotent_by_key(orch: Orchestrator) -> None:
    a = await orch.start("order", "order-42", {"sku": "a"})
    b = await orch.start("order", "order-42", {"sku": "a"})
    assert a.saga_id == b.saga_id
    with pytest.raises(Exception, match="idempotency_key") as err:
        await orch.start("order", "order-42", {"sku": "b"})
    assert getattr(err.value, "field", "") == "idempotency_key"
    await orch.idle()


@pytest.mark.parametrize(
    ("definition", "saga_input", "field"),
    [("nope", {"sku": "a"}, "definition"), ("order", {}, "input.sku")],
)
async def test_start_validation_names_the_field(
    orch: Orchestrator, definition: str, saga_input: dict[str, str], field: str
) -> None:
    with pytest.raises(Exception, match=field.replace(".", r"\.")) as err:
        await orch.start(definition, "", saga_input)
    assert getattr(err.value, "field", "") == field


async def test_operator_actions_in_wrong_states(orch: Orchestrator) -> None:
    rec = await orch.start("order", "", {"sku": "a"})
    await until_terminal(orch, rec.saga_id)
    with pytest.raises(Exception, match="only a FAILED saga"):
        await orch.retry(rec.saga_id)
    with pytest.raises(Exception, match="only a RUNNING saga"):
        await orch.abort(rec.saga_id, "")
    with pytest.raises(LookupError):
        await orch.get("missing")


async def test_watch_sees_every_transition(orch: Orchestrator, caller: FakeCaller) -> None:
    gate = caller.block(RESERVE)
    rec = await orch.start("order", "", {"sku": "a"})
    watching = asyncio.ensure_future(until_terminal(orch, rec.saga_id))
    await caller.entered[RESERVE].wait()
    gate.set()
    seen = await watching
    versions = [r.version for r in seen]
    assert versions == list(range(versions[0], versions[0] + len(versions)))
    # start(1) + per step RUNNING and SUCCEEDED (6) + COMPLETED = 8 versions
    assert versions[-1] == 8
    assert seen[-1].status is SagaStatus.COMPLETED


async def test_paging_and_status_filter(orch: Orchestrator, caller: FakeCaller) -> None:
    caller.script[SHIP] = [FailedPrecondition("x")]
    ids = [(await orch.start("order", f"k{i}", {"sku": "a"})).saga_id for i in range(5)]
    await orch.idle()
    page, token = await orch.page(None, 2, "")
    assert [r.saga_id for r in page] == ids[:2]
    assert token
    page2, token2 = await orch.page(None, 2, token)
    page3, token3 = await orch.page(None, 2, token2)
    assert [r.saga_id for r in page2 + page3] == ids[2:]
    assert token3 == ""
    compensated, _ = await orch.page(SagaStatus.COMPENSATED, 10, "")
    assert len(compensated) == 5
    assert (await orch.page(SagaStatus.RUNNING, 10, ""))[0] == []
    with pytest.raises(Exception, match="page_token"):
        await orch.page(None, 2, "garbage!")


async def test_resume_reissues_an_in_flight_compensation(tmp_path: Path) -> None:
    failing_ship = FakeCaller()
    failing_ship.script[SHIP] = [FailedPrecondition("no")]
    saga_id = await left_in_flight(tmp_path, REFUND, caller=failing_ship)

    second_caller = FakeCaller()
    second, store2 = orchestrator(tmp_path, second_caller)
    await store2.open()
    await second.resume()
    final = (await until_terminal(second, saga_id))[-1]
    assert final.status is SagaStatus.COMPENSATED
    assert second_caller.methods() == [REFUND, RELEASE]
    assert second_caller.calls[0].key == f"{saga_id}/charge/compensate"
    assert final.steps[1].compensation_attempts == 2
    await second.close()
    await store2.close()


async def test_many_sagas_run_concurrently_without_conflicts(orch: Orchestrator, caller: FakeCaller) -> None:
    caller.script[CHARGE] = [Unavailable("blip"), {}]
    started = await asyncio.gather(*(orch.start("order", f"k{i}", {"sku": str(i)}) for i in range(20)))
    await orch.idle()
    finals = [await orch.get(s.saga_id) for s in started]
    assert {f.status for f in finals} == {SagaStatus.COMPLETED}
    assert len({f.saga_id for f in finals}) == 20
    for final in finals:  # every version is in the history exactly once
        assert [e.version for e in await orch.history(final.saga_id)] == list(range(1, final.version + 1))


async def test_creation_and_each_result_commit_with_the_next_step_start_one_event_each(
    tmp_path: Path, caller: FakeCaller
) -> None:
    engine, store = orchestrator(tmp_path, caller)
    await store.open()
    writes: list[tuple[str, int]] = []
    create, save = store.create, store.save

    async def counting_create(record: SagaRecord, *events: SagaEvent) -> tuple[SagaRecord, bool]:
        writes.append(("create", len(events)))
        return await create(record, *events)

    async def counting_save(record: SagaRecord, *events: SagaEvent) -> None:
        writes.append(("save", len(events)))
        await save(record, *events)

    store.create = counting_create  # type: ignore[method-assign]
    store.save = counting_save  # type: ignore[method-assign]
    rec = await engine.start("order", "", {"sku": "a"})
    assert (await until_terminal(engine, rec.saga_id))[-1].status is SagaStatus.COMPLETED
    # created with reserve RUNNING; its result + charge RUNNING; ...; ship + COMPLETED: 4 commits
    assert writes == [("create", 2), ("save", 2), ("save", 2), ("save", 2)]
    history = await engine.history(rec.saga_id)
    assert [(e.version, e.step, e.step_status.name if e.step_status else "") for e in history] == [
        (1, "", ""),
        (2, "reserve", "RUNNING"),
        (3, "reserve", "SUCCEEDED"),
        (4, "charge", "RUNNING"),
        (5, "charge", "SUCCEEDED"),
        (6, "ship", "RUNNING"),
        (7, "ship", "SUCCEEDED"),
        (8, "", ""),
    ]
    await engine.close()
    await store.close()


def test_retry_backoff_doubles_from_initial_with_jitter_up_to_the_maximum() -> None:
    policy = StepRetry(attempts=6, initial=0.2, maximum=1.0, jitter=0.1)
    for attempt, low in ((1, 0.2), (2, 0.4), (3, 0.8)):
        assert low <= backoff(policy, attempt) <= low + 0.1
    assert backoff(policy, 5) == 1.0


async def test_a_store_failure_mid_saga_drives_it_again_without_a_restart(
    tmp_path: Path, caller: FakeCaller
) -> None:
    """A database restart under a running saga: the commit fails, the runner stops, and the
    engine drives the saga again after a short backoff (it used to wait for a process restart)."""
    engine, store = orchestrator(tmp_path, caller)
    await store.open()
    real_save = store.save
    saves = 0

    async def flaky_save(record: SagaRecord, *events: SagaEvent) -> None:
        nonlocal saves
        saves += 1
        if saves == 1:  # reserve's result + charge's start (creation stored reserve's start)
            raise OSError("the database is restarting")
        await real_save(record, *events)

    store.save = flaky_save  # type: ignore[method-assign]
    try:
        rec = await engine.start("order", "flaky", {"sku": "a"})
        final = await asyncio.wait_for(until_terminal(engine, rec.saga_id), 20)
        assert final[-1].status is SagaStatus.COMPLETED
        assert saves > 1
        # reserve's result was not stored: reserve is re-issued, with the same idempotency key
        assert caller.methods() == [RESERVE, RESERVE, CHARGE, SHIP]
        assert caller.calls[0].key == caller.calls[1].key == f"{rec.saga_id}/reserve"
    finally:
        await engine.close()
        await store.close()


async def test_sweep_drives_unfinished_sagas_nothing_drives_and_only_those(tmp_path: Path) -> None:
    """A saga written by a previous active orchestrator after this one resumed is picked up."""
    saga_id = await left_in_flight(tmp_path, RESERVE, "late")

    caller = FakeCaller()
    new, store2 = orchestrator(tmp_path, caller)
    await store2.open()
    try:
        assert await new.sweep() == 1
        assert await new.sweep() == 0  # already being driven
        final = (await asyncio.wait_for(until_terminal(new, saga_id), 20))[-1]
        assert final.status is SagaStatus.COMPLETED
        assert await new.sweep() == 0
    finally:
        await new.close()
        await store2.close()
