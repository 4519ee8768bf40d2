"""Turns a :class:`~grpcmesh.services.cqrs.rejection.Rejected` into a rich gRPC status.

Shared by the command and query bus services: BadRequest for field violations,
ErrorInfo for a machine-readable reason (the domain rule, the conflict kind).
"""

from __future__ import annotations

from typing import Any, NoReturn

import grpc

from grpcmesh.sdk import bad_request, error_info, errors
from grpcmesh.services.cqrs.rejection import Rejected

__all__ = ["DOMAIN", "abort"]

DOMAIN = "cqrs.grpcmesh"


async def abort(context: grpc.aio.ServicerContext[Any, Any], err: Rejected) -> NoReturn:
    details: list[Any] = []
    if err.violations:
        details.append(bad_request(err.violations))
    if err.reason:
        details.append(error_info(err.reason, DOMAIN, err.metadata))
    await errors.abort(context, grpc.StatusCode[err.code], err.message, details)
