"""grpcmesh.sdk: everything a Python process needs to be part of the mesh.

Call services with :class:`AsyncMeshClient` / :class:`MeshClient` (through the
local sidecar, or ``direct=True``), serve them with :class:`Server` /
:func:`serve`, catch the typed errors below, and build rich error details with
:func:`rich_status`, :func:`bad_request` and :func:`error_info`. The request id
of the call being served is :func:`current_request_id`.
"""

from grpcmesh.sdk.client import AsyncMeshClient, ClientClosedError, ClientConfig, MeshClient
from grpcmesh.sdk.errors import (
    Aborted,
    AlreadyExists,
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    MeshError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    Unknown,
    bad_request,
    error_info,
    from_rpc_error,
    rich_status,
)
from grpcmesh.sdk.headers import current_request_id
from grpcmesh.sdk.logging import configure_logging
from grpcmesh.sdk.retry import RetryConfig
from grpcmesh.sdk.server import Server, Servicer, serve

__all__ = [
    "Aborted",
    "AlreadyExists",
    "AsyncMeshClient",
    "Cancelled",
    "ClientClosedError",
    "ClientConfig",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "MeshClient",
    "MeshError",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "RetryConfig",
    "Server",
    "Servicer",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Unknown",
    "bad_request",
    "configure_logging",
    "current_request_id",
    "error_info",
    "from_rpc_error",
    "rich_status",
    "serve",
]
