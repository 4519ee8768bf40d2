"""Sidecar mode, the default: gateway → its sidecar → the event store's sidecar → the event store."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

from tests.integration.eventstore.conftest import StartEventStore
from tests.support.gateway import make_token, start_gateway
from tests.support.mesh import start_sidecar
from tests.support.procs import ProcessGroup


async def test_through_two_sidecars_with_the_request_id(
    procs: ProcessGroup, tmp_path: Path, start_eventstore: StartEventStore, sqlite_url: str
) -> None:
    store = start_eventstore(sqlite_url)
    store_sidecar = start_sidecar(procs, "eventstore", store.target, "--access-log")
    edge_sidecar = start_sidecar(
        procs, "gateway", "127.0.0.1:1", "--endpoints", f"eventstore=127.0.0.1:{store_sidecar.inbound}"
    )
    config = (
        f'sidecar = "127.0.0.1:{edge_sidecar.outbound}"\n'
        '[services]\n"grpcmesh.api.v1.EventStore" = "eventstore"\n'
    )
    gateway = start_gateway(procs, tmp_path, config)
    token = make_token("alice")
    event = {"id": str(uuid.uuid4()), "type": "Created", "data": base64.b64encode(b"{}").decode()}
    rid = f"edge-{uuid.uuid4()}"
    reply = await gateway.request(
        "POST", "/v1/streams/mesh-1", token=token, body={"events": [event]}, headers={"X-Request-Id": rid}
    )
    assert reply.status == 200, reply.text
    assert reply.headers["X-Request-Id"] == rid
    store_sidecar.proc.wait_output(f"request_id={rid}", timeout=10)  # the id crossed both hops

    read = await gateway.request("GET", "/v1/streams/mesh-1", token=token)
    assert [e["id"] for e in read.json()] == [event["id"]]
    empty = await gateway.request(
        "POST", "/v1/streams/mesh-1", token=token, body={"events": [], "expectedRevision": {"noStream": {}}}
    )
    assert empty.status == 400  # empty batch: the store's BadRequest survives two proxies
    assert empty.json()["details"][0]["fieldViolations"][0]["field"] == "events"
