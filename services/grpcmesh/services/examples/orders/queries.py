"""GetOrder and ListOrders, answered from the orders read model."""

from __future__ import annotations

import sqlite3

from grpcmesh.api.examples.orders.v1 import orders_pb2 as o
from grpcmesh.services.cqrs.handlers import Violations
from grpcmesh.services.cqrs.queries import QueryHandler
from grpcmesh.services.cqrs.rejection import Rejected
from grpcmesh.services.examples.orders.aggregate import NEW, SUBMITTED
from grpcmesh.services.examples.orders.projection import NAME

__all__ = ["query_handlers"]

_COLUMNS = "order_id, customer_id, status, total_cents, revision, applied_events"
MAX_PAGE = 500


def _order(conn: sqlite3.Connection, row: tuple[str, str, str, int, int, int]) -> o.Order:
    items = conn.execute(
        "SELECT item_id, name, quantity, unit_price_cents FROM order_items "
        "WHERE order_id = ? ORDER BY item_id",
        (row[0],),
    ).fetchall()
    return o.Order(
        order_id=row[0],
        customer_id=row[1],
        status=row[2],
        total_cents=row[3],
        revision=row[4],
        applied_events=row[5],
        items=[o.OrderItem(item_id=i, name=n, quantity=q, unit_price_cents=p) for i, n, q, p in items],
    )


def get_order(conn: sqlite3.Connection, query: o.GetOrder) -> o.Order:
    row = conn.execute(f"SELECT {_COLUMNS} FROM orders WHERE order_id = ?", (query.order_id,)).fetchone()
    if row is None:
        raise Rejected("NOT_FOUND", f"order {query.order_id!r} not found")
    return _order(conn, row)


def list_orders(conn: sqlite3.Connection, query: o.ListOrders) -> o.OrderList:
    where, args = [], []
    if query.customer_id:
        where.append("customer_id = ?")
        args.append(query.customer_id)
    if query.status:
        where.append("status = ?")
        args.append(query.status)
    sql = f"SELECT {_COLUMNS} FROM orders"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY position DESC LIMIT ?"
    rows = conn.execute(sql, (*args, query.page_size or 50)).fetchall()
    return o.OrderList(orders=[_order(conn, r) for r in rows])


def _check_get(q: o.GetOrder) -> Violations:
    return {} if q.order_id else {"order_id": "is required"}


def _check_list(q: o.ListOrders) -> Violations:
    out = {}
    if q.status not in ("", NEW, SUBMITTED):
        out["status"] = f"must be empty, {NEW!r} or {SUBMITTED!r}"
    if q.page_size > MAX_PAGE:
        out["page_size"] = f"must be at most {MAX_PAGE}"
    return out


def query_handlers() -> list[QueryHandler]:
    return [
        QueryHandler(o.GetOrder, NAME, get_order, _check_get),
        QueryHandler(o.ListOrders, NAME, list_orders, _check_list),
    ]
