"""grpcmesh.api.v1.QueryBus: routes by payload type URL; waits for ``min_position``.

Read-your-writes: a query with ``min_position`` above what the read model has
applied waits for the projector, bounded by the call's deadline (or
``max_wait`` without one), and then answers DEADLINE_EXCEEDED naming both
positions rather than returning stale data. A position the event store has not
written at all is OUT_OF_RANGE at once (no command can have returned it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc
from google.protobuf import any_pb2

from grpcmesh.api.v1 import querybus_pb2 as qb
from grpcmesh.api.v1 import querybus_pb2_grpc as qb_grpc
from grpcmesh.services.common.status import abort
from grpcmesh.services.cqrs.envelope import unpack
from grpcmesh.services.cqrs.queries import QueryHandler
from grpcmesh.services.cqrs.rejection import Rejected, invalid
from grpcmesh.services.querybus.projector import Projector, reached
from grpcmesh.services.querybus.readstore import ReadStore

__all__ = ["SERVICE_NAME", "QueryBusService"]

SERVICE_NAME = "grpcmesh.api.v1.QueryBus"
_MARGIN = 0.05  # answer this long before the caller's deadline so it gets our explanation


class QueryBusService(qb_grpc.QueryBusServicer):
    def __init__(
        self,
        handlers: Mapping[str, QueryHandler],
        projectors: Mapping[str, Projector],
        store: ReadStore,
        max_wait: float = 30.0,
    ) -> None:
        self.handlers = handlers
        self.projectors = projectors
        self.store = store
        self.max_wait = max_wait

    async def Query(
        self, request: qb.QueryRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> qb.QueryResponse:
        try:
            return await self._query(request, context.time_remaining())
        except Rejected as err:
            await abort(context, err)

    async def _query(self, request: qb.QueryRequest, remaining: float | None) -> qb.QueryResponse:
        handler, message = unpack(request.payload, request.HasField("payload"), self.handlers)
        violations = {f"payload.{f}": why for f, why in handler.validate(message).items()}
        if violations:
            raise invalid(violations)
        projector = self.projectors[handler.projection]
        wanted = request.min_position
        if wanted > projector.watch.head:
            budget = self.max_wait if remaining is None else min(self.max_wait, remaining - _MARGIN)
            # positions are gap-free and only handed out for committed appends: one the store does
            # not hold was never returned to anyone, so waiting for it would only burn the deadline
            if not await projector.written(wanted, max(budget, 0.1)):
                raise Rejected(
                    "OUT_OF_RANGE",
                    f"min_position {wanted} is beyond the event store's last position",
                    reason="MIN_POSITION_NOT_WRITTEN",
                    metadata={"position": str(projector.watch.head), "min_position": str(wanted)},
                )
            if not await reached(projector.watch, wanted, max(budget, 0.0)):
                raise Rejected(
                    "DEADLINE_EXCEEDED",
                    f"read model {projector.name!r} is at position {projector.watch.head}; "
                    f"min_position {wanted} was not reached before the deadline",
                    reason="MIN_POSITION_NOT_REACHED",
                    metadata={"position": str(projector.watch.head), "min_position": str(wanted)},
                )
        position = projector.watch.head
        result = await self.store.run(lambda conn: handler.run(conn, message))
        packed = any_pb2.Any()
        packed.Pack(result)
        return qb.QueryResponse(result=packed, position=position)
