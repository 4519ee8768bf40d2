"""Dispatch logic against an in-memory event store: retries, idempotency, statuses."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from google.protobuf import any_pb2
from google.protobuf.message import Message

from grpcmesh.api.examples.orders.v1 import orders_pb2 as o
from grpcmesh.api.v1 import commandbus_pb2 as cb
from grpcmesh.services.commandbus.cache import CachedStreams
from grpcmesh.services.commandbus.dispatcher import DispatchConfig, Dispatcher, event_id
from grpcmesh.services.commandbus.registry import HandlerRegistry
from grpcmesh.services.commandbus.store import EventStreams
from grpcmesh.services.cqrs.rejection import Rejected
from grpcmesh.services.examples.orders import command_handlers
from tests.unit.cqrs.fakes import MemoryStreams


def command(
    payload: Message, order_id: str = "o1", command_id: str | None = None, **kw: object
) -> cb.Command:
    packed = any_pb2.Any()
    packed.Pack(payload)
    return cb.Command(command_id=command_id or str(uuid.uuid4()), aggregate_id=order_id, payload=packed, **kw)


@pytest.fixture
def streams() -> MemoryStreams:
    return MemoryStreams()


def dispatcher(streams: EventStreams) -> Dispatcher:
    return Dispatcher(HandlerRegistry(command_handlers()), streams, DispatchConfig(max_attempts=3, backoff=0))


@pytest.fixture(params=["uncached", "cached"])
def bus(streams: MemoryStreams, request: pytest.FixtureRequest) -> Dispatcher:
    """The bus under test, reading the store directly or through the stream cache."""
    return dispatcher(CachedStreams(streams) if request.param == "cached" else streams)


@pytest.fixture
def rival_bus(streams: MemoryStreams) -> Dispatcher:
    """Another command bus process on the same event store."""
    return dispatcher(streams)


async def test_create_then_add_appends_with_exact_revisions(bus: Dispatcher, streams: MemoryStreams) -> None:
    first = await bus.dispatch(command(o.CreateOrder(customer_id="c")))
    second = await bus.dispatch(command(o.AddItem(item_id="a", quantity=1)))
    assert (first.revision, second.revision, second.position, second.event_count) == (0, 1, 2, 1)
    assert [e.type for e in streams.streams["order-o1"]] == ["OrderCreated", "ItemAdded"]


async def test_a_conflict_reloads_and_decides_again(
    bus: Dispatcher, rival_bus: Dispatcher, streams: MemoryStreams
) -> None:
    await bus.dispatch(command(o.CreateOrder(customer_id="c")))

    async def rival() -> None:
        streams.interleave.clear()
        await rival_bus.dispatch(command(o.AddItem(item_id="rival", quantity=1)))

    streams.interleave.append(rival)
    mine = await bus.dispatch(command(o.AddItem(item_id="mine", quantity=1)))
    assert mine.revision == 2
    assert [e.revision for e in streams.streams["order-o1"]] == [0, 1, 2]


async def test_a_rival_that_breaks_a_rule_turns_the_retry_into_failed_precondition(
    bus: Dispatcher, rival_bus: Dispatcher, streams: MemoryStreams
) -> None:
    await bus.dispatch(command(o.CreateOrder(customer_id="c")))
    await bus.dispatch(command(o.AddItem(item_id="a", quantity=1)))

    async def rival() -> None:
        streams.interleave.clear()
        await rival_bus.dispatch(command(o.SubmitOrder()))

    streams.interleave.append(rival)
    with pytest.raises(Rejected) as info:
        await bus.dispatch(command(o.AddItem(item_id="b", quantity=1)))
    assert (info.value.code, info.value.reason) == ("FAILED_PRECONDITION", "ORDER_ALREADY_SUBMITTED")


async def test_endless_conflicts_give_up_with_aborted(
    bus: Dispatcher, rival_bus: Dispatcher, streams: MemoryStreams
) -> None:
    await bus.dispatch(command(o.CreateOrder(customer_id="c")))
    k = iter(range(100))

    async def rival() -> None:
        saved, streams.interleave = streams.interleave, []
        await rival_bus.dispatch(command(o.AddItem(item_id=f"r{next(k)}", quantity=1)))
        streams.interleave = saved

    streams.interleave.extend([rival] * 3)
    with pytest.raises(Rejected) as info:
        await bus.dispatch(command(o.AddItem(item_id="mine", quantity=1)))
    assert (info.value.code, info.value.reason) == ("ABORTED", "TOO_MANY_CONFLICTS")


async def test_a_repeated_command_id_returns_the_original_result(
    bus: Dispatcher, streams: MemoryStreams
) -> None:
    await bus.dispatch(command(o.CreateOrder(customer_id="c")))
    add = command(o.AddItem(item_id="a", quantity=1))
    first = await bus.dispatch(add)
    submit = command(o.SubmitOrder())
    await bus.dispatch(submit)
    appends = streams.appends
    again = await bus.dispatch(add)
    assert (again.revision, again.position, again.event_count, again.duplicate) == (1, 2, 1, True)
    assert first.duplicate is False
    assert (await bus.dispatch(submit)).duplicate  # not re-decided: no "already submitted"
    assert streams.appends == appends


async def test_event_ids_derive_from_the_command_id(bus: Dispatcher, streams: MemoryStreams) -> None:
    cid = str(uuid.uuid4())
    await bus.dispatch(command(o.CreateOrder(customer_id="c"), command_id=cid))
    stored = streams.streams["order-o1"][0]
    assert stored.id == event_id(uuid.UUID(cid), 0)
    assert stored.metadata["command_id"] == cid


async def test_a_server_chosen_id_is_stable_per_command(bus: Dispatcher) -> None:
    cid = str(uuid.uuid4())
    first = await bus.dispatch(command(o.CreateOrder(customer_id="c"), "", cid))
    again = await bus.dispatch(command(o.CreateOrder(customer_id="c"), "", cid))
    assert first.aggregate_id == again.aggregate_id
    assert again.duplicate


@pytest.mark.parametrize(
    ("cmd", "code", "field"),
    [
        (cb.Command(aggregate_id="o1"), "INVALID_ARGUMENT", "command_id"),
        (cb.Command(command_id="x", aggregate_id="o1"), "INVALID_ARGUMENT", "command_id"),
        (cb.Command(command_id=str(uuid.uuid4()), aggregate_id="o1"), "INVALID_ARGUMENT", "payload"),
        (command(o.Order()), "NOT_FOUND", "payload.type_url"),
        (command(o.AddItem(item_id="a")), "INVALID_ARGUMENT", "payload.quantity"),
        (command(o.SubmitOrder(), order_id=""), "INVALID_ARGUMENT", "aggregate_id"),
        (command(o.SubmitOrder(), order_id="a b"), "INVALID_ARGUMENT", "aggregate_id"),
        (command(o.SubmitOrder(), metadata={"": "x"}), "INVALID_ARGUMENT", "metadata"),
        (command(o.SubmitOrder(), metadata={"k": "x" * 20000}), "INVALID_ARGUMENT", "metadata"),
    ],
)
async def test_bad_commands_name_the_field(bus: Dispatcher, cmd: cb.Command, code: str, field: str) -> None:
    with pytest.raises(Rejected) as info:
        await bus.dispatch(cmd)
    assert info.value.code == code
    assert field in info.value.violations
    assert field in info.value.message


async def test_garbled_payload_is_invalid(bus: Dispatcher) -> None:
    cmd = command(o.SubmitOrder())
    cmd.payload.value = b"\xff\xff"
    with pytest.raises(Rejected) as info:
        await bus.dispatch(cmd)
    assert "payload.value" in info.value.violations


async def test_missing_aggregate_and_stale_revision(bus: Dispatcher) -> None:
    with pytest.raises(Rejected) as info:
        await bus.dispatch(command(o.SubmitOrder()))
    assert info.value.code == "NOT_FOUND"
    await bus.dispatch(command(o.CreateOrder(customer_id="c")))
    with pytest.raises(Rejected) as info:
        await bus.dispatch(command(o.AddItem(item_id="a", quantity=1), expected_revision=3))
    assert (info.value.code, info.value.reason) == ("ABORTED", "WRONG_EXPECTED_REVISION")
    ok = await bus.dispatch(command(o.AddItem(item_id="a", quantity=1), expected_revision=0))
    assert ok.revision == 1


def test_registry_refuses_a_second_handler_for_a_type() -> None:
    registry = HandlerRegistry(command_handlers())
    with pytest.raises(ValueError, match="already registered"):
        registry.register(command_handlers()[0])
    assert "type.googleapis.com/grpcmesh.api.examples.orders.v1.AddItem" in registry


async def test_commands_for_one_aggregate_queue_in_one_process(
    bus: Dispatcher, streams: MemoryStreams
) -> None:
    await bus.dispatch(command(o.CreateOrder(customer_id="c")))
    appends = streams.appends
    results = await asyncio.gather(
        *(bus.dispatch(command(o.AddItem(item_id=f"i{k}", quantity=1))) for k in range(8))
    )
    assert sorted(r.revision for r in results) == list(range(1, 9))
    assert streams.appends - appends == 8  # no conflicting appends at all
    assert len(bus._locks) == 0  # locks are dropped once nobody holds them


@pytest.fixture
def cached_bus(streams: MemoryStreams) -> Dispatcher:
    return dispatcher(CachedStreams(streams))


async def test_a_warm_aggregate_is_decided_without_a_read(
    cached_bus: Dispatcher, streams: MemoryStreams
) -> None:
    await cached_bus.dispatch(command(o.CreateOrder(customer_id="c")))
    reads = streams.reads
    result = await cached_bus.dispatch(command(o.AddItem(item_id="a", quantity=1)))
    assert (result.revision, result.position, streams.reads) == (1, 2, reads)


async def test_a_stale_memory_is_caught_by_the_expected_revision(
    cached_bus: Dispatcher, rival_bus: Dispatcher, streams: MemoryStreams
) -> None:
    await cached_bus.dispatch(command(o.CreateOrder(customer_id="c")))
    await rival_bus.dispatch(command(o.AddItem(item_id="a", quantity=1)))  # behind the cache's back
    with pytest.raises(Rejected) as info:  # decided on the store's state, not the remembered one
        await cached_bus.dispatch(command(o.AddItem(item_id="a", quantity=2)))
    assert info.value.reason == "ITEM_EXISTS"
    mine = await cached_bus.dispatch(command(o.AddItem(item_id="b", quantity=1)))
    assert mine.revision == 2
    assert [e.revision for e in streams.streams["order-o1"]] == [0, 1, 2]


async def test_a_rejection_on_remembered_state_is_confirmed_by_a_read(
    cached_bus: Dispatcher, rival_bus: Dispatcher, streams: MemoryStreams
) -> None:
    await cached_bus.dispatch(command(o.CreateOrder(customer_id="c")))
    await rival_bus.dispatch(command(o.AddItem(item_id="a", quantity=1)))
    reads, appends = streams.reads, streams.appends
    submitted = await cached_bus.dispatch(command(o.SubmitOrder()))  # the memory says: empty order
    assert (submitted.revision, streams.reads - reads, streams.appends - appends) == (2, 1, 1)


async def test_a_retry_of_a_command_another_process_wrote_is_a_duplicate(
    cached_bus: Dispatcher, rival_bus: Dispatcher, streams: MemoryStreams
) -> None:
    await cached_bus.dispatch(command(o.CreateOrder(customer_id="c")))
    add = command(o.AddItem(item_id="a", quantity=1))
    first = await rival_bus.dispatch(add)
    again = await cached_bus.dispatch(add)
    assert (again.revision, again.position, again.duplicate) == (first.revision, first.position, True)
    assert len(streams.streams["order-o1"]) == 2


async def test_a_create_is_decided_on_an_empty_stream_and_checked_by_no_stream(
    bus: Dispatcher, rival_bus: Dispatcher, streams: MemoryStreams
) -> None:
    first = await bus.dispatch(command(o.CreateOrder(customer_id="c"), order_id="fresh"))
    assert (first.revision, streams.reads) == (0, 0)
    create = command(o.CreateOrder(customer_id="c"))
    await rival_bus.dispatch(create)
    again = await bus.dispatch(create)  # a retry of a create another process wrote
    assert (again.revision, again.duplicate) == (0, True)
    with pytest.raises(Rejected) as info:
        await bus.dispatch(command(o.CreateOrder(customer_id="c")))
    assert info.value.reason == "ORDER_EXISTS"
    assert len(streams.streams["order-o1"]) == 1
