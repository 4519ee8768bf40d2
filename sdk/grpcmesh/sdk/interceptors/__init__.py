"""grpc.aio interceptors, one per mesh concern, composable in a list (outermost first).

Client side: :class:`RequestIdInterceptor`, :class:`TraceInterceptor`,
:class:`DeadlineInterceptor`, :class:`RetryInterceptor`; errors become typed
exceptions through :func:`map_errors`. Server side:
:class:`ServerContextInterceptor`. ``MeshClient`` and ``Server`` install them
by default; each also works on a plain ``grpc.aio`` channel or server.
"""

from grpcmesh.sdk.interceptors.context import ServerContextInterceptor
from grpcmesh.sdk.interceptors.deadline import (
    DeadlineInterceptor,
    deadline_var,
    effective_timeout,
    time_remaining,
)
from grpcmesh.sdk.interceptors.errors import map_errors, to_mesh_error
from grpcmesh.sdk.interceptors.request_id import RequestIdInterceptor
from grpcmesh.sdk.interceptors.retry import IdempotentMethods, RetryInterceptor, declared_idempotent
from grpcmesh.sdk.interceptors.trace import TraceInterceptor

__all__ = [
    "DeadlineInterceptor",
    "IdempotentMethods",
    "RequestIdInterceptor",
    "RetryInterceptor",
    "ServerContextInterceptor",
    "TraceInterceptor",
    "deadline_var",
    "declared_idempotent",
    "effective_timeout",
    "map_errors",
    "time_remaining",
    "to_mesh_error",
]
