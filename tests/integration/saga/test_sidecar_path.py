"""The production path: the orchestrator's step calls go through a real ``grpcmesh sidecar``
(routing by the ``x-mesh-service`` the SDK sets), and the idempotency key reaches the participants."""

from __future__ import annotations

from google.protobuf import struct_pb2

from grpcmesh.api.v1 import saga_pb2 as pb
from tests.integration.saga.helpers import Participants, start_orchestrator
from tests.support.mesh import start_sidecar
from tests.support.procs import ProcessGroup, free_port


async def test_steps_travel_through_the_sidecar(
    procs: ProcessGroup, participants: Participants, db: str
) -> None:
    port = free_port()
    sidecar = start_sidecar(
        procs, "saga", f"127.0.0.1:{port}", "--endpoints-file", str(participants.registry)
    )
    orchestrator = start_orchestrator(
        procs, db, participants.registry, port, sidecar=f"127.0.0.1:{sidecar.outbound}"
    )
    try:
        saga_input = struct_pb2.Struct()
        saga_input.update({"order_id": "o-9"})
        started = await orchestrator.stub.Start(
            pb.StartSagaRequest(definition="order", input=saga_input), timeout=10
        )
        final = await orchestrator.finish(started.saga_id)
    finally:
        await orchestrator.close()
    assert final.status == pb.SAGA_STATUS_COMPLETED, final
    charge = (await participants["payments"].calls("/shop.Payments/Charge"))[0]
    assert charge["key"] == f"{started.saga_id}/charge"
    clusters = str(sidecar.admin_json("/clusters"))
    assert "payments" in clusters
    assert "shipping" in clusters
