"""OrderAggregate: the seed's order with its rules made explicit and enforced.

Rules (each a :class:`DomainError` whose ``rule`` names it): an order is created
once; items are added, removed and the order submitted only while it is ``new``;
an item id appears once; only present items can be removed; an empty order
cannot be submitted.
"""

from __future__ import annotations

from grpcmesh.api.examples.orders.v1 import orders_pb2 as o
from grpcmesh.services.cqrs.aggregate import Aggregate, DomainError
from grpcmesh.services.cqrs.codec import EventCodec

__all__ = ["CATEGORY", "CODEC", "NEW", "SUBMITTED", "OrderAggregate"]

CATEGORY = "order"  # streams are "order-<order id>"
NEW, SUBMITTED = "new", "submitted"
CODEC = EventCodec([o.OrderCreated, o.ItemAdded, o.ItemRemoved, o.OrderSubmitted])


class OrderAggregate(Aggregate):
    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.customer_id = ""
        self.status = NEW
        self.items: dict[str, o.ItemAdded] = {}

    # ---- commands: check the rules, then trigger events ----

    def create(self, customer_id: str) -> None:
        if self.exists:
            raise DomainError("ORDER_EXISTS", f"order {self.id!r} already exists")
        self.trigger(o.OrderCreated(order_id=self.id, customer_id=customer_id))

    def add_item(self, item: o.AddItem) -> None:
        self._require_new("add items to")
        if item.item_id in self.items:
            raise DomainError("ITEM_EXISTS", f"item {item.item_id!r} is already in order {self.id!r}")
        self.trigger(
            o.ItemAdded(
                item_id=item.item_id,
                name=item.name,
                quantity=item.quantity,
                unit_price_cents=item.unit_price_cents,
            )
        )

    def remove_item(self, item_id: str) -> None:
        self._require_new("remove items from")
        if item_id not in self.items:
            raise DomainError("ITEM_NOT_IN_ORDER", f"item {item_id!r} is not in order {self.id!r}")
        self.trigger(o.ItemRemoved(item_id=item_id))

    def submit(self) -> None:
        if self.status != NEW:
            raise DomainError("ORDER_ALREADY_SUBMITTED", f"order {self.id!r} already submitted")
        if not self.items:
            raise DomainError("ORDER_EMPTY", f"order {self.id!r} has no items to submit")
        self.trigger(o.OrderSubmitted())

    def _require_new(self, action: str) -> None:
        if self.status != NEW:
            raise DomainError(
                "ORDER_ALREADY_SUBMITTED", f"cannot {action} order {self.id!r}: already submitted"
            )

    # ---- event handlers: state changes only here ----

    def on_OrderCreated(self, event: o.OrderCreated) -> None:
        self.customer_id = event.customer_id

    def on_ItemAdded(self, event: o.ItemAdded) -> None:
        self.items[event.item_id] = event

    def on_ItemRemoved(self, event: o.ItemRemoved) -> None:
        self.items.pop(event.item_id, None)

    def on_OrderSubmitted(self, event: o.OrderSubmitted) -> None:
        self.status = SUBMITTED

    @property
    def total_cents(self) -> int:
        return sum(i.quantity * i.unit_price_cents for i in self.items.values())
