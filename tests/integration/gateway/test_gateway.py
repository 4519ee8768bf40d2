"""The gateway in front of a real event store: transcoding, errors, auth, request ids."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from tests.integration.gateway.conftest import StartGateway
from tests.support.gateway import GatewayProc, make_token


def event(type_: str = "Created", data: bytes = b'{"n": 1}') -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "type": type_, "data": base64.b64encode(data).decode()}


def append_body(*events: dict[str, Any], expected: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"events": list(events)}
    if expected is not None:
        body["expectedRevision"] = expected
    return body


TOKEN = make_token("alice")


async def test_append_then_read_back_as_json(gateway: GatewayProc) -> None:
    first, second = event("Created", b'{"n": 1}'), event("Shipped", b'{"n": 2}')
    reply = await gateway.request(
        "POST", "/v1/streams/order-1", token=TOKEN, body=append_body(first, second, expected={"noStream": {}})
    )
    assert reply.status == 200, reply.text
    assert reply.json() == {"nextRevision": "1", "position": "2", "duplicate": False}
    assert reply.headers["Content-Type"].startswith("application/json")

    read = await gateway.request("GET", "/v1/streams/order-1", token=TOKEN)
    assert read.status == 200, read.text
    events = read.json()
    assert [e["id"] for e in events] == [first["id"], second["id"]]
    assert [e["revision"] for e in events] == ["0", "1"]
    assert base64.b64decode(events[1]["data"]) == b'{"n": 2}'
    assert all(e["streamId"] == "order-1" for e in events)

    backwards = await gateway.request(
        "GET", "/v1/streams/order-1?direction=DIRECTION_BACKWARDS&maxCount=1", token=TOKEN
    )
    assert [e["type"] for e in backwards.json()] == ["Shipped"]


async def test_read_as_ndjson_streams_one_message_per_line(gateway: GatewayProc) -> None:
    body = append_body(event("A"), event("B"), event("C"))
    assert (await gateway.request("POST", "/v1/streams/nd", token=TOKEN, body=body)).status == 200
    reply = await gateway.request(
        "GET", "/v1/streams/nd", token=TOKEN, headers={"Accept": "application/x-ndjson"}
    )
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/x-ndjson")
    assert [json.loads(line)["type"] for line in reply.text.splitlines()] == ["A", "B", "C"]
    missing = await gateway.request(
        "GET", "/v1/streams/none-here", token=TOKEN, headers={"Accept": "application/x-ndjson"}
    )
    assert missing.status == 404  # the failure came before the first line: a real status


async def test_version_conflict_is_409_with_the_actual_revision(gateway: GatewayProc) -> None:
    ok = await gateway.request("POST", "/v1/streams/acct-7", token=TOKEN, body=append_body(event(), event()))
    assert ok.status == 200
    stale = append_body(event(), expected={"exact": "0"})
    reply = await gateway.request("POST", "/v1/streams/acct-7", token=TOKEN, body=stale)
    assert reply.status == 409, reply.text
    body = reply.json()
    assert body["code"] == "ABORTED"
    info = next(d for d in body["details"] if d["@type"].endswith("google.rpc.ErrorInfo"))
    assert info["reason"] == "WRONG_EXPECTED_REVISION"
    assert info["metadata"]["actual"] == "1"
    assert info["metadata"]["expected"] == "0"


async def test_bad_fields_are_400_naming_them(gateway: GatewayProc) -> None:
    typo = await gateway.request("POST", "/v1/streams/s", token=TOKEN, body={"evnts": [event()]})
    assert typo.status == 400
    violations = typo.json()["details"][0]["fieldViolations"]
    assert violations[0]["field"] == "evnts"

    # Caught by the event store itself: its BadRequest detail reaches the client.
    bad_id = await gateway.request(
        "POST", "/v1/streams/s", token=TOKEN, body={"events": [{"id": "x", "type": "T"}]}
    )
    assert bad_id.status == 400
    assert bad_id.json()["details"][0]["fieldViolations"][0]["field"] == "events[0].id"

    malformed = await gateway.request("POST", "/v1/streams/s", token=TOKEN, raw=b'{"events": [')
    assert malformed.status == 400
    assert "malformed JSON" in malformed.json()["message"]

    query = await gateway.request("GET", "/v1/streams/s?maxCont=3", token=TOKEN)
    assert query.status == 400
    assert query.json()["details"][0]["fieldViolations"][0]["field"] == "maxCont"

    deadline = await gateway.request("GET", "/v1/streams/s", token=TOKEN, headers={"grpc-timeout": "soon"})
    assert deadline.status == 400
    assert "grpc-timeout" in deadline.json()["message"]


async def test_missing_and_bad_tokens_are_401(gateway: GatewayProc) -> None:
    none = await gateway.request("GET", "/v1/streams/s")
    assert none.status == 401
    assert none.headers["WWW-Authenticate"].startswith("Bearer")
    assert none.json()["code"] == "UNAUTHENTICATED"

    forged = make_token("mallory", secret="a-different-secret-of-at-least-32-bytes")
    bad = await gateway.request("GET", "/v1/streams/s", token=forged)
    assert bad.status == 401
    assert 'error="invalid_token"' in bad.headers["WWW-Authenticate"]

    expired = make_token("alice", exp=1)
    assert (await gateway.request("GET", "/v1/streams/s", token=expired)).status == 401


async def test_scopes_and_public_routes(gateway_for: StartGateway) -> None:
    gateway = gateway_for(
        '[routes."grpcmesh.api.v1.EventStore.Append"]\nscopes = ["events:write"]\n'
        '[routes."grpcmesh.api.v1.EventStore.ReadStream"]\npublic = true\n'
    )
    body = append_body(event())
    reader = make_token("bob", scope="events:read")
    denied = await gateway.request("POST", "/v1/streams/pub", token=reader, body=body)
    assert denied.status == 403
    assert "events:write" in denied.json()["message"]
    writer = make_token("carol", scope="events:read events:write")
    assert (await gateway.request("POST", "/v1/streams/pub", token=writer, body=body)).status == 200
    anonymous = await gateway.request("GET", "/v1/streams/pub")
    assert anonymous.status == 200
    assert len(anonymous.json()) == 1


async def test_request_id_echoed_or_generated(gateway: GatewayProc) -> None:
    mine = await gateway.request("GET", "/v1/streams/rid", token=TOKEN, headers={"X-Request-Id": "req-42"})
    assert mine.status == 404, (mine.headers, mine.text)  # no such stream: the id is still echoed
    assert mine.headers["X-Request-Id"] == "req-42", (mine.headers, mine.text)
    assert mine.json()["request_id"] == "req-42"
    fresh = await gateway.request("POST", "/v1/streams/rid", token=TOKEN, body=append_body(event()))
    assert uuid.UUID(fresh.headers["X-Request-Id"])
    other = await gateway.request("POST", "/v1/streams/rid", token=TOKEN, body=append_body(event()))
    assert other.headers["X-Request-Id"] != fresh.headers["X-Request-Id"]


async def test_unknown_routes_and_unreachable_upstreams(gateway: GatewayProc) -> None:
    assert (await gateway.request("GET", "/v2/nothing", token=TOKEN)).status == 404
    wrong_verb = await gateway.request("DELETE", "/v1/streams/s", token=TOKEN)
    assert wrong_verb.status == 405
    assert wrong_verb.headers["Allow"] == "GET, POST"
    # No query bus is running: 503 without leaking addresses or the gRPC text.
    down = await gateway.request("POST", "/v1/queries", token=TOKEN, body={})
    assert down.status == 503
    assert down.json()["message"] == "upstream service unavailable"
    assert "127.0.0.1" not in down.text


async def test_health_and_metrics(gateway: GatewayProc) -> None:
    health = await gateway.request("GET", "/healthz")
    assert health.status == 200
    assert health.json()["status"] == "ok"
    await gateway.request("GET", "/v1/streams/m", token=TOKEN)
    metrics = await gateway.request("GET", "/metrics")
    assert 'grpcmesh_gateway_requests_total{route="grpcmesh.api.v1.EventStore.ReadStream",status="404"}' in (
        metrics.text
    )


async def test_oversized_body_is_413_json(gateway: GatewayProc) -> None:
    huge = b'{"events": [], "pad": "' + b"x" * (5 * 1024 * 1024) + b'"}'
    reply = await gateway.request("POST", "/v1/streams/big", token=TOKEN, raw=huge)
    assert reply.status == 413
    assert reply.json()["code"] == "REQUEST_ENTITY_TOO_LARGE"
    assert reply.headers["X-Request-Id"] == reply.json()["request_id"]
