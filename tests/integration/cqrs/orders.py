"""Builders for order commands and queries sent through the buses."""

from __future__ import annotations

import uuid

from google.protobuf import any_pb2
from google.protobuf.message import Message

from grpcmesh.api.examples.orders.v1 import orders_pb2 as o
from grpcmesh.api.v1 import commandbus_pb2 as cb
from grpcmesh.api.v1 import querybus_pb2 as qb


def packed(message: Message) -> any_pb2.Any:
    a = any_pb2.Any()
    a.Pack(message)
    return a


def command(payload: Message, order_id: str = "", command_id: str | None = None, **kw: object) -> cb.Command:
    return cb.Command(
        command_id=command_id or str(uuid.uuid4()), aggregate_id=order_id, payload=packed(payload), **kw
    )


def add(item_id: str, quantity: int = 1, price: int = 100) -> o.AddItem:
    return o.AddItem(item_id=item_id, name=f"item {item_id}", quantity=quantity, unit_price_cents=price)


def query(payload: Message, min_position: int = 0) -> qb.QueryRequest:
    return qb.QueryRequest(payload=packed(payload), min_position=min_position)


def order_of(response: qb.QueryResponse) -> o.Order:
    order = o.Order()
    assert response.result.Unpack(order), response.result.type_url
    return order
