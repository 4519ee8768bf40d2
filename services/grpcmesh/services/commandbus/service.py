"""grpcmesh.api.v1.CommandBus over a :class:`~grpcmesh.services.commandbus.dispatcher.Dispatcher`.

Rejections become their status (INVALID_ARGUMENT / NOT_FOUND / FAILED_PRECONDITION /
ABORTED); event store failures the bus cannot fix (UNAVAILABLE, DEADLINE_EXCEEDED…)
pass through with their own code rather than turning into INTERNAL.
"""

from __future__ import annotations

from typing import Any

import grpc

from grpcmesh.api.v1 import commandbus_pb2 as cb
from grpcmesh.api.v1 import commandbus_pb2_grpc as cb_grpc
from grpcmesh.sdk import MeshError
from grpcmesh.services.commandbus.dispatcher import Dispatcher
from grpcmesh.services.common.status import abort
from grpcmesh.services.cqrs.rejection import Rejected

__all__ = ["SERVICE_NAME", "CommandBusService"]

SERVICE_NAME = "grpcmesh.api.v1.CommandBus"


class CommandBusService(cb_grpc.CommandBusServicer):
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    async def Dispatch(
        self, request: cb.Command, context: grpc.aio.ServicerContext[Any, Any]
    ) -> cb.CommandResult:
        try:
            return await self.dispatcher.dispatch(request)
        except Rejected as err:
            await abort(context, err)
        except MeshError as err:
            await context.abort(err.code, f"event store: {err.details}")
