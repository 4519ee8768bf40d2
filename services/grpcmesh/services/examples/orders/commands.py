"""The order commands: field validation (INVALID_ARGUMENT) and which aggregate method decides."""

from __future__ import annotations

import functools

from grpcmesh.api.examples.orders.v1 import orders_pb2 as o
from grpcmesh.services.cqrs.envelope import ID_PATTERN
from grpcmesh.services.cqrs.handlers import CommandHandler, Violations
from grpcmesh.services.examples.orders.aggregate import CATEGORY, CODEC, OrderAggregate

__all__ = ["command_handlers"]

MAX_QUANTITY = 10_000


def _id(value: str, field: str, out: dict[str, str]) -> None:
    if not value:
        out[field] = "is required"
    elif not ID_PATTERN.fullmatch(value):
        out[field] = "must be 1..128 of letters, digits, '.', '_', ':', '@', '-'"


def _create(c: o.CreateOrder) -> Violations:
    out: dict[str, str] = {}
    _id(c.customer_id, "customer_id", out)
    return out


def _add(c: o.AddItem) -> Violations:
    out: dict[str, str] = {}
    _id(c.item_id, "item_id", out)
    if not 1 <= c.quantity <= MAX_QUANTITY:
        out["quantity"] = f"must be 1..{MAX_QUANTITY}, got {c.quantity}"
    if len(c.name) > 200:
        out["name"] = "must be at most 200 characters"
    return out


def _remove(c: o.RemoveItem) -> Violations:
    out: dict[str, str] = {}
    _id(c.item_id, "item_id", out)
    return out


def command_handlers() -> list[CommandHandler]:
    order = functools.partial(CommandHandler, aggregate=OrderAggregate, category=CATEGORY, codec=CODEC)
    return [
        order(o.CreateOrder, decide=lambda a, c: a.create(c.customer_id), validate=_create, creates=True),
        order(o.AddItem, decide=lambda a, c: a.add_item(c), validate=_add),
        order(o.RemoveItem, decide=lambda a, c: a.remove_item(c.item_id), validate=_remove),
        order(o.SubmitOrder, decide=lambda a, c: a.submit()),
    ]
