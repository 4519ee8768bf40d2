"""Refuses the orchestrator's RPCs while this instance is a standby (see :mod:`.leader`).

A server interceptor, so the service code stays unaware of the role: health and
reflection keep answering, SagaOrchestrator calls get UNAVAILABLE with the
``x-mesh-not-reached`` trailer (nothing was done, so any method may be retried
on the active instance, which is what the calling sidecar does).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn

import grpc

from grpcmesh.sdk.failures import NOT_REACHED_TRAILER

__all__ = ["StandbyGate"]

_MESSAGE = "standby orchestrator: another instance holds this database's lock and drives its sagas"


class StandbyGate(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, service: str) -> None:
        self._prefix = f"/{service}/"
        self.active = False

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        method: str = details.method  # type: ignore[attr-defined]
        if self.active or handler is None or not method.startswith(self._prefix):
            return handler
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(
                _refuse_stream, handler.request_deserializer, handler.response_serializer
            )
        return grpc.unary_unary_rpc_method_handler(
            _refuse, handler.request_deserializer, handler.response_serializer
        )


async def _refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> NoReturn:
    await context.abort(grpc.StatusCode.UNAVAILABLE, _MESSAGE, (NOT_REACHED_TRAILER,))
    raise AssertionError("abort returned")  # pragma: no cover


async def _refuse_stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
    await _refuse(request, context)
    yield  # pragma: no cover - makes this an async generator, as grpc requires for streams
