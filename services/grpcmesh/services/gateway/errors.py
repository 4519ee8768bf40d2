"""gRPC status → HTTP status, and the one JSON error body every failure answers with.

The table follows google.rpc.Code's documented HTTP mapping (as grpc-gateway and
Envoy's transcoder do), with one documented choice: FAILED_PRECONDITION is 400
(the state of the system must change before retrying; 412 is reserved for HTTP
conditional headers, which the gateway does not implement). 5xx answers never
carry the upstream message or details: they could leak addresses or internals.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import grpc
from google.protobuf import any_pb2, json_format

from grpcmesh.sdk.errors import MeshError

__all__ = ["HTTP_STATUS", "GatewayError", "error_body", "from_mesh_error", "http_status"]

HTTP_STATUS: Mapping[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}

# What a client sees instead of the upstream message when the status is 5xx.
_OPAQUE: Mapping[int, str] = {
    500: "internal error",
    501: "method not implemented by the upstream service",
    503: "upstream service unavailable",
    504: "upstream deadline exceeded",
}


def http_status(code: grpc.StatusCode) -> int:
    """The HTTP status for a gRPC code (500 for anything unknown)."""
    return HTTP_STATUS.get(code, 500)


class GatewayError(Exception):
    """A failure answered as ``{"code", "message", "details", "request_id"}`` with an HTTP status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Sequence[Mapping[str, Any]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = list(details)
        self.headers = dict(headers or {})

    @classmethod
    def bad_request(cls, field: str, description: str) -> GatewayError:
        """400 INVALID_ARGUMENT naming ``field`` in a BadRequest-shaped detail."""
        return cls(400, "INVALID_ARGUMENT", description, [field_violations({field: description})])


def field_violations(violations: Mapping[str, str]) -> dict[str, Any]:
    """A ``google.rpc.BadRequest`` detail in its JSON form."""
    return {
        "@type": "type.googleapis.com/google.rpc.BadRequest",
        "fieldViolations": [{"field": f, "description": d} for f, d in violations.items()],
    }


def _detail_json(packed: any_pb2.Any) -> dict[str, Any]:
    try:
        return json_format.MessageToDict(packed)
    except (TypeError, KeyError, json_format.Error):  # type not in the pool: say what it was
        return {"@type": packed.type_url}


def from_mesh_error(err: MeshError) -> GatewayError:
    """The HTTP answer for a failed upstream call; 5xx hide the upstream message and details."""
    status = http_status(err.code)
    if status >= 500:
        return GatewayError(status, err.code.name, _OPAQUE.get(status, "internal error"))
    details = [_detail_json(d) for d in err.status_details]
    return GatewayError(status, err.code.name, err.details or err.code.name.lower(), details)


def error_body(err: GatewayError, request_id: str) -> bytes:
    """The JSON body of an error answer."""
    body = {"code": err.code, "message": err.message, "details": err.details, "request_id": request_id}
    return json.dumps(body).encode()
