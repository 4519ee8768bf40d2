"""Projector durability: restarts resume from the checkpoint; nothing is applied twice or lost."""

from __future__ import annotations

import asyncio

from grpcmesh.api.examples.orders.v1 import orders_pb2 as o
from grpcmesh.api.v1 import commandbus_pb2 as cb
from tests.integration.cqrs.conftest import Mesh, Stubs, connect
from tests.integration.cqrs.orders import add, command, query
from tests.support.procs import start_service


async def place_orders(stubs: Stubs, customer: str, count: int, items: int) -> list[cb.CommandResult]:
    """``count`` orders of ``items`` items each, concurrently; the last result of each order."""

    async def one() -> cb.CommandResult:
        order_id = (await stubs.commands.Dispatch(command(o.CreateOrder(customer_id=customer)))).aggregate_id
        last = cb.CommandResult()
        for k in range(items):
            last = await stubs.commands.Dispatch(command(add(f"i{k}", 1, 5), order_id))
        return last

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def all_orders(stubs: Stubs, customer: str, min_position: int) -> list[o.Order]:
    reply = await stubs.queries.Query(
        query(o.ListOrders(customer_id=customer, page_size=500), min_position), timeout=30
    )
    found = o.OrderList()
    reply.result.Unpack(found)
    return list(found.orders)


def assert_exactly_once(orders: list[o.Order], count: int, items: int) -> None:
    assert len(orders) == count
    for order in orders:
        assert order.applied_events == order.revision + 1 == items + 1, order
        assert order.total_cents == items * 5


async def test_graceful_restart_resumes_from_the_checkpoint(mesh: Mesh) -> None:
    async with connect(mesh) as stubs:
        before = await place_orders(stubs, "early", 3, 2)
        seen = max(r.position for r in before)
        assert_exactly_once(await all_orders(stubs, "early", seen), 3, 2)
    old = mesh.querybus
    assert old is not None
    old.proc.stop()
    async with connect(mesh) as stubs:  # the query bus is down: commands still work
        after = await place_orders(stubs, "late", 4, 3)
    restarted = mesh.start_querybus()
    # It resumed after what it had committed, rather than replaying from 0.
    assert f"resumes after position {seen}" in restarted.proc.output()
    async with connect(mesh) as stubs:
        head = max(r.position for r in after)
        assert_exactly_once(await all_orders(stubs, "late", head), 4, 3)
        assert_exactly_once(await all_orders(stubs, "early", head), 3, 2)


async def test_crash_mid_projection_applies_every_event_exactly_once(mesh: Mesh) -> None:
    async with connect(mesh) as stubs:
        results = await place_orders(stubs, "crash", 20, 4)
    assert mesh.querybus is not None
    mesh.querybus.proc.kill()  # SIGKILL, wherever the projector was in its batches
    mesh.start_querybus()
    async with connect(mesh) as stubs:
        head = max(r.position for r in results)
        assert_exactly_once(await all_orders(stubs, "crash", head), 20, 4)


async def test_projector_resubscribes_after_an_event_store_restart(mesh: Mesh) -> None:
    async with connect(mesh) as stubs:
        first = await place_orders(stubs, "outage", 1, 1)
        await all_orders(stubs, "outage", first[0].position)
    mesh.eventstore.proc.kill()  # a crash: live subscriptions break without a goodbye
    mesh.eventstore = start_service(
        mesh.procs, "eventstore", "--db", f"sqlite://{mesh.tmp / 'events.db'}", port=mesh.eventstore.port
    )
    async with connect(mesh) as stubs:
        second = await place_orders(stubs, "outage", 2, 1)
        assert_exactly_once(await all_orders(stubs, "outage", max(r.position for r in second)), 3, 1)
