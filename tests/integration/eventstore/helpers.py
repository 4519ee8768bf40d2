"""Request builders and error decoding shared by the event store integration tests."""

from __future__ import annotations

import uuid

from google.rpc import error_details_pb2

from grpcmesh.api.v1 import eventstore_pb2 as pb
from grpcmesh.sdk.errors import MeshError


def event(type_: str = "Happened", data: bytes = b"{}", **meta: str) -> pb.ProposedEvent:
    return pb.ProposedEvent(
        id=str(uuid.uuid4()), type=type_, data=data, content_type="application/json", metadata=meta
    )


def append(stream_id: str, events: list[pb.ProposedEvent], expected: str | int = "any") -> pb.AppendRequest:
    if isinstance(expected, int):
        rev = pb.ExpectedRevision(exact=expected)
    else:
        rev = pb.ExpectedRevision(**{expected: pb.Empty()})
    return pb.AppendRequest(stream_id=stream_id, expected_revision=rev, events=events)


def error_metadata(err: MeshError) -> dict[str, str]:
    info = err.detail(error_details_pb2.ErrorInfo)
    return dict(info.metadata) if info else {}
