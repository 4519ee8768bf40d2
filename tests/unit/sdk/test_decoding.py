"""The range check of the decode guard names the field, however deep it is."""

from __future__ import annotations

from grpcmesh.api.v1 import eventstore_pb2 as pb
from grpcmesh.sdk.interceptors.decoding import INT64_MAX, out_of_range


def test_fields_in_range_pass() -> None:
    assert out_of_range(pb.ReadStreamRequest(stream_id="s", from_revision=INT64_MAX)) is None
    assert out_of_range(pb.AppendRequest(stream_id="s", events=[pb.ProposedEvent(id="x")])) is None


def test_the_first_field_out_of_range_is_named() -> None:
    assert out_of_range(pb.ReadStreamRequest(from_revision=2**64 - 1)) == ("from_revision", 2**64 - 1)
    meta = pb.SetStreamMetadataRequest(stream_id="s", metadata=pb.StreamMetadata(truncate_before=2**63))
    assert out_of_range(meta) == ("metadata.truncate_before", 2**63)
    append = pb.AppendRequest(stream_id="s", expected_revision=pb.ExpectedRevision(exact=2**63))
    assert out_of_range(append) == ("expected_revision.exact", 2**63)


def test_a_custom_limit() -> None:
    assert out_of_range(pb.ReadAllRequest(from_position=11), limit=10) == ("from_position", 11)
