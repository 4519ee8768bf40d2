"""The unary call path of the default client chain, in one coroutine.

``MeshClient`` installs request id, deadline and trace interceptors (and retry
through a sidecar when asked). Run as a grpc.aio interceptor chain they cost a
coroutine, a ``ClientCallDetails`` and a ``grpc.aio.Metadata`` copy each per
call, which is most of the SDK's own time on a fast upstream. When a channel's
chain is exactly that default (no user interceptors, no retry interceptor),
:class:`FastUnary` applies the same three steps, through the same functions the
interceptors use (:func:`add_request_id`, :func:`effective_timeout`,
:meth:`TraceInterceptor.begin` / :func:`inject_into` / :func:`end_span`), to one
list of metadata pairs, and calls a cached grpc multicallable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grpc

from grpcmesh.sdk.headers import REQUEST_ID, get
from grpcmesh.sdk.interceptors.deadline import DeadlineInterceptor, effective_timeout
from grpcmesh.sdk.interceptors.request_id import RequestIdInterceptor, add_request_id
from grpcmesh.sdk.interceptors.trace import TraceInterceptor, end_span, inject_into

__all__ = ["FastUnary"]

_OK = grpc.StatusCode.OK
_CACHE = 256  # multicallables per channel kept (channels come and go with endpoints)


class FastUnary:
    """One unary attempt with the default chain's effects: request id, deadline, client span."""

    __slots__ = ("_callables", "_default", "_tracer")

    def __init__(self, deadline: DeadlineInterceptor, tracer: TraceInterceptor) -> None:
        self._default = deadline.default
        self._tracer = tracer
        self._callables: dict[tuple[grpc.aio.Channel, str], Callable[..., Any]] = {}

    @classmethod
    def of(cls, interceptors: Sequence[Any]) -> FastUnary | None:
        """The fast path for ``interceptors`` when they are exactly the default chain, else None."""
        kinds = [type(i) for i in interceptors]
        if kinds != [RequestIdInterceptor, DeadlineInterceptor, TraceInterceptor]:
            return None
        return cls(interceptors[1], interceptors[2])

    def _callable(self, channel: grpc.aio.Channel, path: str, ser: Any, deser: Any) -> Callable[..., Any]:
        key = (channel, path)
        found = self._callables.get(key)
        if found is None:
            if len(self._callables) >= _CACHE:
                self._callables.clear()
            found = self._callables[key] = channel.unary_unary(
                path, request_serializer=ser, response_deserializer=deser
            )
        return found

    async def attempt(
        self,
        channel: grpc.aio.Channel,
        path: str,
        codecs: tuple[Any, Any],
        request: Any,
        metadata: Sequence[tuple[str, Any]],
        timeout: float | None,  # noqa: ASYNC109 - the attempt's gRPC deadline
        extra: tuple[Any, Any],
        sent: Callable[[Any, str | None], None],
    ) -> Any:
        """Sends one attempt; ``sent(call, request_id)`` learns the grpc call; raises its AioRpcError."""
        md = list(metadata)
        add_request_id(md)
        span = self._tracer.begin(path)
        inject_into(md, span)
        try:
            call = self._callable(channel, path, *codecs)(
                request,
                timeout=effective_timeout(timeout, self._default),
                metadata=md,
                credentials=extra[0],
                wait_for_ready=extra[1],
            )
            sent(call, get(md, REQUEST_ID))
            result = await call
        except grpc.aio.AioRpcError as err:
            end_span(span, err.code(), err.details() or "")
            raise
        except BaseException as exc:
            span.record_exception(exc)
            end_span(span, grpc.StatusCode.CANCELLED, repr(exc))
            raise
        end_span(span, _OK)
        return result
