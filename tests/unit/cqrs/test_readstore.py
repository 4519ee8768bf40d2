"""Read models and checkpoints commit together; queries read them; waits are bounded."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from grpcmesh.api.examples.orders.v1 import orders_pb2 as o
from grpcmesh.api.v1 import eventstore_pb2 as es
from grpcmesh.services.common.headwatch import HeadWatch
from grpcmesh.services.cqrs.queries import Projection
from grpcmesh.services.cqrs.rejection import Rejected
from grpcmesh.services.examples.orders import projections, query_handlers
from grpcmesh.services.examples.orders.aggregate import CODEC
from grpcmesh.services.querybus.projector import reached
from grpcmesh.services.querybus.readstore import ReadStore

ORDERS = projections()[0]


def recorded(order_id: str, revision: int, position: int, event: object) -> es.RecordedEvent:
    type_name, data = CODEC.encode(event)  # type: ignore[arg-type]
    return es.RecordedEvent(
        stream_id=f"order-{order_id}", revision=revision, position=position, type=type_name, data=data
    )


def history(order_id: str = "o1", start: int = 1) -> list[es.RecordedEvent]:
    events = [
        o.OrderCreated(order_id=order_id, customer_id="c"),
        o.ItemAdded(item_id="a", quantity=2, unit_price_cents=10),
        o.ItemAdded(item_id="b", quantity=1, unit_price_cents=5),
        o.ItemRemoved(item_id="a"),
        o.OrderSubmitted(),
    ]
    return [recorded(order_id, r, start + r, e) for r, e in enumerate(events)]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[ReadStore]:
    s = ReadStore(str(tmp_path / "read.db"))
    await s.open(projections())
    yield s
    await s.close()


async def get(store: ReadStore, order_id: str) -> o.Order:
    get_order = query_handlers()[0]
    result = await store.run(lambda c: get_order.run(c, o.GetOrder(order_id=order_id)))
    assert isinstance(result, o.Order)
    return result


async def test_a_batch_updates_model_and_checkpoint(store: ReadStore) -> None:
    assert await store.apply_batch(ORDERS, history()) == 5
    assert await store.checkpoint("orders") == 5
    order = await get(store, "o1")
    assert (order.status, order.total_cents, order.revision, order.applied_events) == ("submitted", 5, 4, 5)


async def test_redelivered_events_are_not_applied_twice(store: ReadStore) -> None:
    events = history()
    await store.apply_batch(ORDERS, events[:3])
    assert await store.apply_batch(ORDERS, events) == 5  # overlaps the first batch
    assert (await get(store, "o1")).applied_events == 5


async def test_a_failing_event_rolls_back_the_whole_batch(store: ReadStore) -> None:
    await store.apply_batch(ORDERS, history("o1"))

    def explode(conn: sqlite3.Connection, event: es.RecordedEvent) -> None:
        ORDERS.apply(conn, event)
        if event.revision == 2:
            raise RuntimeError("boom")

    broken = Projection("orders", ORDERS.schema, explode)
    with pytest.raises(RuntimeError):
        await store.apply_batch(broken, history("o2", start=6))
    assert await store.checkpoint("orders") == 5
    with pytest.raises(Rejected) as info:
        await get(store, "o2")
    assert info.value.code == "NOT_FOUND"


async def test_foreign_events_only_move_the_checkpoint(store: ReadStore) -> None:
    other = es.RecordedEvent(stream_id="payment-1", revision=0, position=9, type="Paid")
    assert await store.apply_batch(ORDERS, [other]) == 9


async def test_list_orders_filters_and_pages(store: ReadStore) -> None:
    await store.apply_batch(ORDERS, [*history("o1"), recorded("o2", 0, 9, o.OrderCreated(customer_id="d"))])
    list_orders = query_handlers()[1]

    async def ids(query: o.ListOrders) -> list[str]:
        result = await store.run(lambda c: list_orders.run(c, query))
        assert isinstance(result, o.OrderList)
        return [x.order_id for x in result.orders]

    assert await ids(o.ListOrders()) == ["o2", "o1"]
    assert await ids(o.ListOrders(status="submitted")) == ["o1"]
    assert await ids(o.ListOrders(customer_id="d")) == ["o2"]
    assert await ids(o.ListOrders(page_size=1)) == ["o2"]
    assert "status" in list_orders.validate(o.ListOrders(status="weird"))
    assert "page_size" in list_orders.validate(o.ListOrders(page_size=501))


async def test_reached_waits_for_the_checkpoint_and_times_out() -> None:
    watch = HeadWatch()
    watch.publish(3)
    assert await reached(watch, 3, 0)
    waiter = asyncio.create_task(reached(watch, 5, 5))
    await asyncio.sleep(0)
    watch.publish(4)
    await asyncio.sleep(0)
    assert not waiter.done()
    watch.publish(6)
    assert await waiter
    assert not await reached(watch, 10, 0.01)
