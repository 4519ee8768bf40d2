"""HTTP → request message: path variables, body "*", query parameters; bad fields are named."""

from __future__ import annotations

from typing import Any

import pytest

from grpcmesh.api.v1 import eventstore_pb2 as pb
from grpcmesh.services.gateway.errors import GatewayError
from grpcmesh.services.gateway.routes import Route, Router, load_routes
from grpcmesh.services.gateway.transcode import build_request, parse_body, to_json

ROUTER = Router(load_routes(["grpcmesh.api.v1.eventstore_pb2"]))
EVENT = {"id": "5b0d4f3e-1c1e-4d5f-9a59-1f7a4e1b2c3d", "type": "Created", "data": "e30="}


def _route(verb: str, path: str) -> tuple[Route, dict[str, str]]:
    return ROUTER.match(verb, path)


def _violations(err: GatewayError) -> list[dict[str, Any]]:
    return list(err.details[0]["fieldViolations"])


def test_body_star_and_path_variable() -> None:
    route, bound = _route("POST", "/v1/streams/order-1")
    msg = build_request(route, bound, {"expectedRevision": {"exact": "3"}, "events": [EVENT]}, [])
    assert isinstance(msg, pb.AppendRequest)
    assert msg.stream_id == "order-1"
    assert msg.expected_revision.exact == 3
    assert msg.events[0].data == b"{}"


def test_path_variable_wins_over_body() -> None:
    route, bound = _route("POST", "/v1/streams/order-1")
    msg = build_request(route, bound, {"streamId": "other", "events": [EVENT]}, [])
    assert msg.stream_id == "order-1"  # type: ignore[attr-defined]


def test_query_parameters_for_get() -> None:
    route, bound = _route("GET", "/v1/streams/s")
    msg = build_request(route, bound, {}, [("max_count", "5"), ("direction", "DIRECTION_BACKWARDS")])
    assert (msg.max_count, msg.direction) == (5, pb.DIRECTION_BACKWARDS)  # type: ignore[attr-defined]


def test_query_cannot_override_path() -> None:
    route, bound = _route("GET", "/v1/streams/s")
    msg = build_request(route, bound, {}, [("stream_id", "evil")])
    assert msg.stream_id == "s"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("verb", "body", "query", "field"),
    [
        ("POST", {"evnts": []}, [], "evnts"),
        ("POST", {"events": [{"idd": "x"}]}, [], "events[0].idd"),
        ("POST", {"expectedRevision": {"exact": "x"}}, [], "expectedRevision.exact"),
        ("GET", {}, [("maxCount", "many")], "maxCount"),
        ("GET", {}, [("bogus", "1")], "bogus"),
        ("GET", {}, [("direction", "SIDEWAYS")], "direction"),
    ],
)
def test_bad_fields_are_400_naming_the_field(
    verb: str, body: Any, query: list[tuple[str, str]], field: str
) -> None:
    route, bound = _route(verb, "/v1/streams/s")
    with pytest.raises(GatewayError) as caught:
        build_request(route, bound, body, query)
    assert caught.value.status == 400
    assert _violations(caught.value)[0]["field"] == field


def test_body_must_be_an_object() -> None:
    route, bound = _route("POST", "/v1/streams/s")
    with pytest.raises(GatewayError, match="JSON object"):
        build_request(route, bound, [EVENT], [])


@pytest.mark.parametrize(
    ("raw", "problem"),
    [(b'{"events": ', "malformed JSON"), (b"\xff\xfe", "not UTF-8"), (b"{'a': 1}", "line 1")],
)
def test_malformed_body(raw: bytes, problem: str) -> None:
    with pytest.raises(GatewayError, match=problem) as caught:
        parse_body(raw)
    assert _violations(caught.value)[0]["field"] == "body"


def test_empty_body_is_an_empty_object() -> None:
    assert parse_body(b"  ") == {}


def test_to_json_includes_zero_values_and_camel_case() -> None:
    data = to_json(pb.AppendResponse(next_revision=0, position=1))
    assert data == {"nextRevision": "0", "position": "1", "duplicate": False}
