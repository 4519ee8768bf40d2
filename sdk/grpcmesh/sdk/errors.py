"""Typed exceptions for gRPC failures, and rich-status helpers for servers.

Clients catch ``NotFound`` rather than comparing status codes; every exception
keeps the code, details, the decoded ``google.rpc.Status`` details and the
request id. Servers build the same rich status with :func:`rich_status` so a
field error names its field in a ``BadRequest`` detail, never a bare string.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from grpcmesh.sdk.headers import REQUEST_ID

__all__ = [
    "Aborted",
    "AlreadyExists",
    "Cancelled",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "MeshError",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Unknown",
    "abort",
    "bad_request",
    "error_info",
    "from_rpc_error",
    "rich_status",
]


class MeshError(Exception):
    """A failed RPC: code, details, rich status details and the request id."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        details: str,
        *,
        code: grpc.StatusCode | None = None,
        status_details: tuple[any_pb2.Any, ...] = (),
        request_id: str | None = None,
        trailing_metadata: tuple[tuple[str, str | bytes], ...] = (),
    ) -> None:
        super().__init__(details)
        if code is not None:
            self.code = code
        self.details = details
        self.status_details = status_details
        self.request_id = request_id
        self.trailing_metadata = trailing_metadata

    def __str__(self) -> str:
        rid = f" (request id {self.request_id})" if self.request_id else ""
        return f"{self.code.name}: {self.details}{rid}"

    def detail(self, kind: type[Any]) -> Any | None:
        """The first rich detail of protobuf message type ``kind``, unpacked, if any."""
        for packed in self.status_details:
            if packed.Is(kind.DESCRIPTOR):
                msg = kind()
                packed.Unpack(msg)
                return msg
        return None

    def field_violations(self) -> dict[str, str]:
        """``BadRequest`` field → description, for mapping to forms or JSON errors."""
        bad = self.detail(error_details_pb2.BadRequest)
        return {v.field: v.description for v in bad.field_violations} if bad else {}


class Cancelled(MeshError):
    code = grpc.StatusCode.CANCELLED


class Unknown(MeshError):
    code = grpc.StatusCode.UNKNOWN


class InvalidArgument(MeshError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(MeshError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(MeshError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(MeshError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(MeshError):
    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(MeshError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(MeshError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(MeshError):
    """Concurrency conflict; re-read and retry."""

    code = grpc.StatusCode.ABORTED


class Unimplemented(MeshError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(MeshError):
    code = grpc.StatusCode.INTERNAL


class Unavailable(MeshError):
    code = grpc.StatusCode.UNAVAILABLE


class Unauthenticated(MeshError):
    code = grpc.StatusCode.UNAUTHENTICATED


_BY_CODE: dict[grpc.StatusCode, type[MeshError]] = {
    cls.code: cls
    for cls in (
        Cancelled,
        Unknown,
        InvalidArgument,
        DeadlineExceeded,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        ResourceExhausted,
        FailedPrecondition,
        Aborted,
        Unimplemented,
        Internal,
        Unavailable,
        Unauthenticated,
    )
}


def from_rpc_error(err: grpc.RpcError) -> MeshError:
    """Maps a grpc error (sync or aio) to the matching typed exception."""
    call: Any = err
    code: grpc.StatusCode = call.code()
    trailers = tuple(call.trailing_metadata() or ())
    details: tuple[any_pb2.Any, ...] = ()
    try:
        status = rpc_status.from_call(call)
    except ValueError:  # code/message disagree with the packed status: keep the plain one
        status = None
    if status is not None:
        details = tuple(status.details)
    request_id = next((v if isinstance(v, str) else v.decode() for k, v in trailers if k == REQUEST_ID), None)
    cls = _BY_CODE.get(code, MeshError)
    return cls(
        call.details() or "",
        code=code,
        status_details=details,
        request_id=request_id,
        trailing_metadata=trailers,
    )


def bad_request(violations: Mapping[str, str]) -> error_details_pb2.BadRequest:
    """A ``BadRequest`` detail: one violation per field name → why it is wrong."""
    return error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in violations.items()
        ]
    )


def error_info(reason: str, domain: str, metadata: Mapping[str, str]) -> error_details_pb2.ErrorInfo:
    """An ``ErrorInfo`` detail: machine-readable reason plus key/value facts."""
    return error_details_pb2.ErrorInfo(reason=reason, domain=domain, metadata=dict(metadata))


def rich_status(code: grpc.StatusCode, message: str, details: Iterable[Any] = ()) -> grpc.Status:
    """A ``grpc.Status`` carrying ``google.rpc.Status`` details, for ``context.abort_with_status``."""
    packed = []
    for d in details:
        a = any_pb2.Any()
        a.Pack(d)
        packed.append(a)
    proto = status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=packed)
    status: grpc.Status = rpc_status.to_status(proto)
    return status


async def abort(
    context: grpc.aio.ServicerContext[Any, Any],
    code: grpc.StatusCode,
    message: str,
    details: Iterable[Any] = (),
) -> NoReturn:
    """Ends the call being served with a rich status (``details`` packed as ``google.rpc`` details)."""
    untyped: Any = context  # grpc-stubs lacks abort_with_status on the aio context
    await untyped.abort_with_status(rich_status(code, message, details))
    raise AssertionError("abort_with_status returned")  # pragma: no cover - abort always raises
