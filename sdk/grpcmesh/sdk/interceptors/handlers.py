"""Rebuilding a server method handler around a new behaviour: the one place that knows the
four call kinds of ``grpc.RpcMethodHandler`` (used by the server interceptors)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]
else:
    Handler = grpc.RpcMethodHandler

__all__ = ["Handler", "rebuild"]

_KINDS = (
    ("unary_unary", grpc.unary_unary_rpc_method_handler),
    ("unary_stream", grpc.unary_stream_rpc_method_handler),
    ("stream_unary", grpc.stream_unary_rpc_method_handler),
    ("stream_stream", grpc.stream_stream_rpc_method_handler),
)


def rebuild(
    handler: Handler,
    wrap: Callable[[Callable[..., Any]], Callable[..., Any] | None],
    deserializer: Callable[[bytes], Any] | None = None,
) -> Handler:
    """``handler`` with its behaviour replaced by ``wrap(behaviour)`` (and its request
    deserializer by ``deserializer`` if given); ``wrap`` returning None keeps the handler."""
    for attr, make in _KINDS:
        behavior = getattr(handler, attr)
        if behavior is None:
            continue
        wrapped = wrap(behavior)
        if wrapped is None:
            return handler
        new: Handler = make(  # type: ignore[operator]
            wrapped,
            request_deserializer=deserializer or handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        return new
    return handler
