"""The aggregate base and the order rules, without any I/O."""

from __future__ import annotations

import pytest

from grpcmesh.api.examples.orders.v1 import orders_pb2 as o
from grpcmesh.services.cqrs.aggregate import DomainError
from grpcmesh.services.cqrs.codec import EventCodec, UnknownEventType
from grpcmesh.services.examples.orders.aggregate import CODEC, OrderAggregate


def created(items: int = 0) -> OrderAggregate:
    order = OrderAggregate("o1")
    order.create("c1")
    for k in range(items):
        order.add_item(o.AddItem(item_id=f"i{k}", quantity=2, unit_price_cents=50))
    return order


def test_new_events_are_applied_versioned_and_kept_as_changes() -> None:
    order = created(items=2)
    assert (order.version, order.revision, order.exists) == (3, 2, True)
    assert [type(e).__name__ for e in order.changes] == ["OrderCreated", "ItemAdded", "ItemAdded"]
    assert order.total_cents == 200
    order.mark_committed()
    assert order.changes == []
    assert order.version == 3


def test_load_replays_history_without_recording_changes() -> None:
    history = created(items=2).changes
    order = OrderAggregate.load("o1", history)
    assert (order.version, order.customer_id, len(order.items), order.changes) == (3, "c1", 2, [])
    assert OrderAggregate("o2").revision is None


@pytest.mark.parametrize(
    ("setup", "act", "rule"),
    [
        (lambda: created(), lambda a: a.create("c2"), "ORDER_EXISTS"),
        (lambda: created(), lambda a: a.submit(), "ORDER_EMPTY"),
        (lambda: created(1), lambda a: a.add_item(o.AddItem(item_id="i0", quantity=1)), "ITEM_EXISTS"),
        (lambda: created(1), lambda a: a.remove_item("nope"), "ITEM_NOT_IN_ORDER"),
    ],
)
def test_rules_refuse_without_changing_state(setup, act, rule) -> None:  # type: ignore[no-untyped-def]
    order = setup()
    before = (order.version, len(order.changes))
    with pytest.raises(DomainError) as info:
        act(order)
    assert info.value.rule == rule
    assert (order.version, len(order.changes)) == before


def test_a_submitted_order_refuses_every_change() -> None:
    order = created(1)
    order.submit()
    for act in (
        lambda: order.submit(),
        lambda: order.add_item(o.AddItem(item_id="x", quantity=1)),
        lambda: order.remove_item("i0"),
    ):
        with pytest.raises(DomainError, match="already submitted") as info:
            act()
        assert info.value.rule == "ORDER_ALREADY_SUBMITTED"


def test_removing_an_item_drops_it_from_the_total() -> None:
    order = created(2)
    order.remove_item("i0")
    assert (list(order.items), order.total_cents) == (["i1"], 100)


def test_codec_round_trips_and_refuses_unknown_types() -> None:
    name, data = CODEC.encode(o.ItemAdded(item_id="a", quantity=3))
    assert name == "ItemAdded"
    assert CODEC.decode(name, data) == o.ItemAdded(item_id="a", quantity=3)
    with pytest.raises(UnknownEventType):
        CODEC.decode("Nope", b"")
    with pytest.raises(UnknownEventType):
        EventCodec([o.OrderCreated]).encode(o.OrderSubmitted())
