"""gRPC status → HTTP status and the JSON error body; 5xx never leak upstream text."""

from __future__ import annotations

import json

import grpc
import pytest
from google.protobuf import any_pb2

from grpcmesh.sdk.errors import MeshError, bad_request, error_info
from grpcmesh.services.gateway.errors import GatewayError, error_body, from_mesh_error, http_status

TABLE = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}


def test_table_covers_every_code() -> None:
    assert set(TABLE) == {c.name for c in grpc.StatusCode}


@pytest.mark.parametrize(("code", "status"), sorted(TABLE.items()))
def test_http_status(code: str, status: int) -> None:
    assert http_status(grpc.StatusCode[code]) == status


def _packed(*details: object) -> tuple[any_pb2.Any, ...]:
    out = []
    for d in details:
        a = any_pb2.Any()
        a.Pack(d)  # type: ignore[arg-type]
        out.append(a)
    return tuple(out)


def test_invalid_argument_keeps_field_violations() -> None:
    err = MeshError(
        "bad",
        code=grpc.StatusCode.INVALID_ARGUMENT,
        status_details=_packed(bad_request({"events[0].id": "uuid"})),
    )
    mapped = from_mesh_error(err)
    assert (mapped.status, mapped.code, mapped.message) == (400, "INVALID_ARGUMENT", "bad")
    assert mapped.details == [
        {
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [{"field": "events[0].id", "description": "uuid"}],
        }
    ]


def test_conflict_keeps_error_info() -> None:
    info = error_info("WRONG_EXPECTED_REVISION", "es", {"actual": "3"})
    mapped = from_mesh_error(
        MeshError("conflict", code=grpc.StatusCode.ABORTED, status_details=_packed(info))
    )
    assert mapped.status == 409
    assert mapped.details[0]["metadata"] == {"actual": "3"}


@pytest.mark.parametrize("code", ["INTERNAL", "UNKNOWN", "UNAVAILABLE", "DATA_LOSS", "DEADLINE_EXCEEDED"])
def test_server_errors_hide_upstream_text_and_details(code: str) -> None:
    secret = "connect to 10.0.0.7:5432 failed: password authentication failed for user admin"
    err = MeshError(secret, code=grpc.StatusCode[code], status_details=_packed(error_info("X", "d", {})))
    mapped = from_mesh_error(err)
    assert mapped.status >= 500
    assert "10.0.0.7" not in mapped.message
    assert mapped.details == []


def test_unknown_detail_type_is_named_not_dropped() -> None:
    alien = any_pb2.Any(type_url="type.googleapis.com/acme.Secret", value=b"\x08\x01")
    mapped = from_mesh_error(MeshError("nope", code=grpc.StatusCode.NOT_FOUND, status_details=(alien,)))
    assert mapped.details == [{"@type": "type.googleapis.com/acme.Secret"}]


def test_error_body_shape() -> None:
    body = json.loads(error_body(GatewayError.bad_request("body", "malformed JSON"), "rid-1"))
    assert set(body) == {"code", "message", "details", "request_id"}
    assert body["request_id"] == "rid-1"
    assert body["details"][0]["fieldViolations"] == [{"field": "body", "description": "malformed JSON"}]
