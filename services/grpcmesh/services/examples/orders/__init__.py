"""The orders example: the seed's OrderAggregate behind the command bus, its read model behind the query bus.

Contract: ``grpcmesh.api.examples.orders.v1`` (protos/grpcmesh/api/examples/orders/v1/orders.proto).
This module is the ``--app`` both buses load by default.
"""

from grpcmesh.services.examples.orders.aggregate import OrderAggregate
from grpcmesh.services.examples.orders.commands import command_handlers
from grpcmesh.services.examples.orders.projection import projections
from grpcmesh.services.examples.orders.queries import query_handlers

__all__ = ["OrderAggregate", "command_handlers", "projections", "query_handlers"]
