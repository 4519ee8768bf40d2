"""The orders read model: one row per order plus its items, built from the order events.

``applied_events`` counts the events applied to a row; it is deliberately not
idempotent, so a double-applied event shows up (tests compare it to revision + 1).
"""

from __future__ import annotations

import sqlite3

from grpcmesh.api.examples.orders.v1 import orders_pb2 as o
from grpcmesh.api.v1 import eventstore_pb2 as es
from grpcmesh.services.cqrs.queries import Projection
from grpcmesh.services.examples.orders.aggregate import CATEGORY, CODEC, NEW, SUBMITTED

__all__ = ["NAME", "projections"]

NAME = "orders"
_PREFIX = f"{CATEGORY}-"

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS orders (
        order_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, status TEXT NOT NULL,
        total_cents INTEGER NOT NULL DEFAULT 0, revision INTEGER NOT NULL,
        applied_events INTEGER NOT NULL DEFAULT 0, position INTEGER NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS orders_customer ON orders (customer_id, position)",
    """CREATE TABLE IF NOT EXISTS order_items (
        order_id TEXT NOT NULL, item_id TEXT NOT NULL, name TEXT NOT NULL,
        quantity INTEGER NOT NULL, unit_price_cents INTEGER NOT NULL,
        PRIMARY KEY (order_id, item_id))""",
)


def apply(conn: sqlite3.Connection, event: es.RecordedEvent) -> None:
    if not event.stream_id.startswith(_PREFIX) or event.type not in CODEC.type_names:
        return
    order_id = event.stream_id[len(_PREFIX) :]
    data = CODEC.decode(event.type, event.data)
    if isinstance(data, o.OrderCreated):
        conn.execute(
            "INSERT INTO orders (order_id, customer_id, status, revision, position) VALUES (?, ?, ?, ?, ?)",
            (order_id, data.customer_id, NEW, event.revision, event.position),
        )
    elif isinstance(data, o.ItemAdded):
        conn.execute(
            "INSERT INTO order_items VALUES (?, ?, ?, ?, ?)",
            (order_id, data.item_id, data.name, data.quantity, data.unit_price_cents),
        )
    elif isinstance(data, o.ItemRemoved):
        conn.execute("DELETE FROM order_items WHERE order_id = ? AND item_id = ?", (order_id, data.item_id))
    elif isinstance(data, o.OrderSubmitted):
        conn.execute("UPDATE orders SET status = ? WHERE order_id = ?", (SUBMITTED, order_id))
    conn.execute(
        """UPDATE orders SET revision = ?, position = ?, applied_events = applied_events + 1,
           total_cents = (SELECT COALESCE(SUM(quantity * unit_price_cents), 0)
                          FROM order_items WHERE order_id = ?)
           WHERE order_id = ?""",
        (event.revision, event.position, order_id, order_id),
    )


def projections() -> list[Projection]:
    return [Projection(NAME, SCHEMA, apply)]
