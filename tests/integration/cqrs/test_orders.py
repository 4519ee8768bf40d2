"""Orders through real processes: event store + command bus + query bus over real sockets."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from google.rpc import error_details_pb2

from grpcmesh.api.examples.orders.v1 import orders_pb2 as o
from grpcmesh.api.v1 import commandbus_pb2 as cb
from grpcmesh.api.v1 import commandbus_pb2_grpc as cb_grpc
from grpcmesh.api.v1 import eventstore_pb2 as es
from grpcmesh.api.v1 import querybus_pb2 as qb
from grpcmesh.sdk import (
    Aborted,
    AsyncMeshClient,
    FailedPrecondition,
    InvalidArgument,
    MeshError,
    NotFound,
)
from tests.integration.cqrs.conftest import Mesh, Stubs
from tests.integration.cqrs.orders import add, command, order_of, packed, query
from tests.support.procs import ProcessGroup, start_service


async def create(stubs: Stubs, customer: str = "c-1") -> cb.CommandResult:
    result: cb.CommandResult = await stubs.commands.Dispatch(command(o.CreateOrder(customer_id=customer)))
    return result


async def stream_events(stubs: Stubs, order_id: str) -> list[es.RecordedEvent]:
    return [e async for e in stubs.events.ReadStream(es.ReadStreamRequest(stream_id=f"order-{order_id}"))]


async def test_read_your_writes_through_min_position(stubs: Stubs) -> None:
    customer = f"c-{uuid.uuid4().hex[:8]}"
    created = await create(stubs, customer)
    order_id = created.aggregate_id
    assert (created.revision, created.event_count, created.duplicate) == (0, 1, False)
    await stubs.commands.Dispatch(command(add("a", 2, 150), order_id))
    await stubs.commands.Dispatch(command(add("b", 1, 1000), order_id))
    removed = await stubs.commands.Dispatch(command(o.RemoveItem(item_id="a"), order_id))
    submitted = await stubs.commands.Dispatch(command(o.SubmitOrder(), order_id))
    assert submitted.revision == 4
    assert submitted.position > removed.position
    # Each read asks for the position its own write returned: never stale.
    reply = await stubs.queries.Query(query(o.GetOrder(order_id=order_id), submitted.position))
    assert reply.position >= submitted.position
    order = order_of(reply)
    assert (order.status, order.total_cents, order.revision, order.applied_events) == (
        "submitted",
        1000,
        4,
        5,
    )
    assert [i.item_id for i in order.items] == ["b"]
    listed = await stubs.queries.Query(query(o.ListOrders(customer_id=customer), submitted.position))
    orders = o.OrderList()
    listed.result.Unpack(orders)
    assert [x.order_id for x in orders.orders] == [order_id]


async def test_retried_command_returns_the_original_result_and_appends_nothing(stubs: Stubs) -> None:
    order_id = (await create(stubs)).aggregate_id
    first_cmd = command(add("a"), order_id)
    first = await stubs.commands.Dispatch(first_cmd)
    again = await stubs.commands.Dispatch(first_cmd)
    assert again.duplicate
    assert not first.duplicate
    assert (again.aggregate_id, again.revision, again.position, again.event_count) == (
        first.aggregate_id,
        first.revision,
        first.position,
        first.event_count,
    )
    await stubs.commands.Dispatch(command(add("b"), order_id))
    submit_cmd = command(o.SubmitOrder(), order_id)
    submitted = await stubs.commands.Dispatch(submit_cmd)
    # After other commands the retry still answers the original, never re-decides
    # (a re-decided submit would now break the "already submitted" rule).
    late = await stubs.commands.Dispatch(first_cmd)
    assert (late.revision, late.position, late.duplicate) == (first.revision, first.position, True)
    late_submit = await stubs.commands.Dispatch(submit_cmd)
    assert (late_submit.revision, late_submit.position, late_submit.duplicate) == (
        submitted.revision,
        submitted.position,
        True,
    )
    assert len(await stream_events(stubs, order_id)) == 4


async def test_a_retried_create_without_an_id_lands_on_the_same_order(stubs: Stubs) -> None:
    create_cmd = command(o.CreateOrder(customer_id="c-2"))
    first = await stubs.commands.Dispatch(create_cmd)
    again = await stubs.commands.Dispatch(create_cmd)
    assert again.aggregate_id == first.aggregate_id
    assert again.duplicate
    assert len(await stream_events(stubs, first.aggregate_id)) == 1


async def test_concurrent_commands_on_one_order_serialise_through_conflicts(
    stubs: Stubs, shared_mesh: Mesh, procs: ProcessGroup
) -> None:
    # Two command bus processes on one event store: they race on the same stream, and the
    # loser of each race reloads and decides again (within one process commands queue).
    second = start_service(procs, "commandbus", "--eventstore", shared_mesh.eventstore.address)
    buses = {"commandbus": [shared_mesh.commandbus.address, second.address]}
    order_id = (await create(stubs)).aggregate_id
    n = 16
    async with AsyncMeshClient("tests", discovery=buses, timeout=10, retry=False) as client:
        commands = client.stub(cb_grpc.CommandBusStub, target="commandbus")
        results = await asyncio.gather(
            *(commands.Dispatch(command(add(f"i{k}", 1, 10), order_id)) for k in range(n))
        )
    assert sorted(r.revision for r in results) == list(range(1, n + 1))
    events = await stream_events(stubs, order_id)
    assert [e.revision for e in events] == list(range(n + 1))
    assert len({e.metadata["command_id"] for e in events[1:]}) == n
    last = max(r.position for r in results)
    order = order_of(await stubs.queries.Query(query(o.GetOrder(order_id=order_id), last)))
    assert (len(order.items), order.total_cents, order.applied_events) == (n, n * 10, n + 1)


async def test_concurrent_copies_of_one_command_append_once(stubs: Stubs) -> None:
    order_id = (await create(stubs)).aggregate_id
    same = command(add("x"), order_id)
    results = await asyncio.gather(*(stubs.commands.Dispatch(same) for _ in range(5)))
    assert {(r.revision, r.position) for r in results} == {(1, results[0].position)}
    assert sum(not r.duplicate for r in results) <= 1
    assert len(await stream_events(stubs, order_id)) == 2


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda oid: cb.Command(aggregate_id=oid, payload=packed(o.SubmitOrder())), "command_id"),
        (lambda oid: command(o.SubmitOrder(), oid, command_id="not-a-uuid"), "command_id"),
        (lambda oid: cb.Command(command_id=str(uuid.uuid4()), aggregate_id=oid), "payload"),
        (lambda oid: command(o.SubmitOrder(), "has space"), "aggregate_id"),
        (lambda oid: command(o.SubmitOrder()), "aggregate_id"),
        (lambda oid: command(add("a", quantity=0), oid), "payload.quantity"),
        (lambda oid: command(o.AddItem(quantity=1), oid), "payload.item_id"),
        (lambda oid: command(o.CreateOrder()), "payload.customer_id"),
    ],
)
async def test_bad_commands_are_invalid_argument_naming_the_field(stubs: Stubs, build, field) -> None:  # type: ignore[no-untyped-def]
    order_id = (await create(stubs)).aggregate_id
    with pytest.raises(InvalidArgument) as info:
        await stubs.commands.Dispatch(build(order_id))
    assert field in info.value.field_violations(), info.value.field_violations()
    assert field in info.value.details


async def test_unknown_types_and_missing_things_are_not_found(stubs: Stubs) -> None:
    unknown = command(o.Order())  # a message no command handler accepts
    with pytest.raises(NotFound) as info:
        await stubs.commands.Dispatch(unknown)
    assert "payload.type_url" in info.value.details
    with pytest.raises(NotFound, match="does not exist"):
        await stubs.commands.Dispatch(command(add("a"), "no-such-order"))
    with pytest.raises(NotFound) as info:
        await stubs.queries.Query(query(o.CreateOrder()))
    assert "payload.type_url" in info.value.details
    with pytest.raises(NotFound, match="not found"):
        await stubs.queries.Query(query(o.GetOrder(order_id="no-such-order")))
    with pytest.raises(InvalidArgument) as bad:
        await stubs.queries.Query(query(o.GetOrder()))
    assert "payload.order_id" in bad.value.field_violations()
    with pytest.raises(InvalidArgument) as bad:
        await stubs.queries.Query(qb.QueryRequest())
    assert "payload" in bad.value.field_violations()


async def test_domain_rules_are_failed_precondition_naming_the_rule(stubs: Stubs) -> None:
    order_id = (await create(stubs)).aggregate_id
    with pytest.raises(FailedPrecondition, match="no items"):
        await stubs.commands.Dispatch(command(o.SubmitOrder(), order_id))
    await stubs.commands.Dispatch(command(add("a"), order_id))
    with pytest.raises(FailedPrecondition, match="already in order"):
        await stubs.commands.Dispatch(command(add("a"), order_id))
    with pytest.raises(FailedPrecondition, match="not in order"):
        await stubs.commands.Dispatch(command(o.RemoveItem(item_id="zz"), order_id))
    await stubs.commands.Dispatch(command(o.SubmitOrder(), order_id))
    with pytest.raises(FailedPrecondition, match="already submitted") as info:
        await stubs.commands.Dispatch(command(o.SubmitOrder(), order_id))
    reason = info.value.detail(error_details_pb2.ErrorInfo)
    assert reason is not None
    assert reason.reason == "ORDER_ALREADY_SUBMITTED"
    with pytest.raises(FailedPrecondition, match="already submitted"):
        await stubs.commands.Dispatch(command(add("b"), order_id))
    with pytest.raises(FailedPrecondition, match="already exists"):
        await stubs.commands.Dispatch(command(o.CreateOrder(customer_id="c"), order_id))
    assert len(await stream_events(stubs, order_id)) == 3


async def test_stale_expected_revision_is_aborted(stubs: Stubs) -> None:
    order_id = (await create(stubs)).aggregate_id
    ok = await stubs.commands.Dispatch(command(add("a"), order_id, expected_revision=0))
    assert ok.revision == 1
    with pytest.raises(Aborted, match="expected_revision 0"):
        await stubs.commands.Dispatch(command(add("b"), order_id, expected_revision=0))


async def test_min_position_beyond_the_log_is_out_of_range_at_once(stubs: Stubs) -> None:
    """No command returned a position the store never wrote: answer now instead of burning the deadline."""
    created = await create(stubs)
    with pytest.raises(MeshError, match="beyond the event store's last position") as err:
        await stubs.queries.Query(
            query(o.GetOrder(order_id=created.aggregate_id), created.position + 1000), timeout=30
        )
    assert err.value.code == grpc.StatusCode.OUT_OF_RANGE
