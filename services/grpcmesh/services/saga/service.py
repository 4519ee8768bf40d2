"""The gRPC face of the orchestrator: validates requests and maps domain errors to statuses.

* INVALID_ARGUMENT + BadRequest naming the field (definition, input.<key>, idempotency_key,
  saga_id, status, page_size, page_token, reason).
* NOT_FOUND for an unknown saga id.
* FAILED_PRECONDITION for Retry/Abort in a state that does not allow it.
* RESOURCE_EXHAUSTED for a Watch beyond the limit of concurrent watchers, or one whose
  client fell too far behind (:mod:`.watch`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, NoReturn

import grpc
from google.protobuf.json_format import MessageToDict

from grpcmesh.api.v1 import saga_pb2 as pb
from grpcmesh.api.v1 import saga_pb2_grpc as pb_grpc
from grpcmesh.sdk.errors import abort, bad_request
from grpcmesh.services.saga.domain import InvalidRequest, SagaNotFound, WrongState
from grpcmesh.services.saga.engine import Orchestrator
from grpcmesh.services.saga.watch import TooManyWatchers, WatcherTooSlow
from grpcmesh.services.saga.wire import history_to_proto, status_from_proto, to_proto

__all__ = ["SagaService"]

Context = grpc.aio.ServicerContext[Any, Any]
_MAX_ID = 200
_MAX_PAGE = 1000
_MAX_INPUT_BYTES = 256 * 1024  # the input is stored with every transition


async def _invalid(context: Context, err: InvalidRequest) -> NoReturn:
    await abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(err), [bad_request({err.field: err.message})])


async def _fail(context: Context, err: Exception) -> NoReturn:
    if isinstance(err, InvalidRequest):
        await _invalid(context, err)
    code = grpc.StatusCode.NOT_FOUND if isinstance(err, SagaNotFound) else grpc.StatusCode.FAILED_PRECONDITION
    message = f"saga {err.args[0]} not found" if isinstance(err, SagaNotFound) else str(err)
    await abort(context, code, message)


def _check_id(value: str, field: str, *, required: bool) -> None:
    if required and not value:
        raise InvalidRequest(field, "is required")
    if len(value) > _MAX_ID:
        raise InvalidRequest(field, f"is longer than {_MAX_ID} characters")


class SagaService(pb_grpc.SagaOrchestratorServicer):
    def __init__(self, orchestrator: Orchestrator) -> None:
        self._orchestrator = orchestrator

    async def Start(self, request: pb.StartSagaRequest, context: Context) -> pb.Saga:
        try:
            _check_id(request.definition, "definition", required=True)
            _check_id(request.idempotency_key, "idempotency_key", required=False)
            if request.input.ByteSize() > _MAX_INPUT_BYTES:
                raise InvalidRequest("input", f"is larger than {_MAX_INPUT_BYTES} bytes")
            saga_input = MessageToDict(request.input) if request.HasField("input") else {}
            record = await self._orchestrator.start(request.definition, request.idempotency_key, saga_input)
        except (InvalidRequest, WrongState) as err:
            await _fail(context, err)
        return to_proto(record)

    async def Get(self, request: pb.GetSagaRequest, context: Context) -> pb.Saga:
        try:
            _check_id(request.saga_id, "saga_id", required=True)
            record = await self._orchestrator.get(request.saga_id)
        except (InvalidRequest, SagaNotFound) as err:
            await _fail(context, err)
        return to_proto(record)

    async def History(self, request: pb.GetSagaRequest, context: Context) -> pb.SagaHistory:
        try:
            _check_id(request.saga_id, "saga_id", required=True)
            events = await self._orchestrator.history(request.saga_id)
        except (InvalidRequest, SagaNotFound) as err:
            await _fail(context, err)
        return history_to_proto(request.saga_id, events)

    async def List(self, request: pb.ListSagasRequest, context: Context) -> pb.ListSagasResponse:
        try:
            try:
                status = status_from_proto(request.status)
            except ValueError:
                raise InvalidRequest("status", f"{request.status} is not a SagaStatus") from None
            if request.page_size > _MAX_PAGE:
                raise InvalidRequest("page_size", f"must be 0..{_MAX_PAGE} (0 means 100)")
            records, token = await self._orchestrator.page(
                status, request.page_size or 100, request.page_token
            )
        except InvalidRequest as err:
            await _invalid(context, err)
        return pb.ListSagasResponse(sagas=[to_proto(r) for r in records], next_page_token=token)

    async def Watch(self, request: pb.GetSagaRequest, context: Context) -> AsyncIterator[pb.Saga]:
        try:
            _check_id(request.saga_id, "saga_id", required=True)
            await self._orchestrator.get(request.saga_id)
        except (InvalidRequest, SagaNotFound) as err:
            await _fail(context, err)
        try:
            async for record in self._orchestrator.watch(request.saga_id):
                yield to_proto(record)
        except (TooManyWatchers, WatcherTooSlow) as err:
            await abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, str(err))

    async def Retry(self, request: pb.GetSagaRequest, context: Context) -> pb.Saga:
        try:
            _check_id(request.saga_id, "saga_id", required=True)
            record = await self._orchestrator.retry(request.saga_id)
        except (InvalidRequest, SagaNotFound, WrongState) as err:
            await _fail(context, err)
        return to_proto(record)

    async def Abort(self, request: pb.AbortSagaRequest, context: Context) -> pb.Saga:
        try:
            _check_id(request.saga_id, "saga_id", required=True)
            if len(request.reason) > 1000:
                raise InvalidRequest("reason", "is longer than 1000 characters")
            record = await self._orchestrator.abort(request.saga_id, request.reason)
        except (InvalidRequest, SagaNotFound, WrongState) as err:
            await _fail(context, err)
        return to_proto(record)
