"""The buses behind sidecars: every call to the event store (Append, ReadStream, Subscribe) crosses two proxies."""

from __future__ import annotations

import sys
from pathlib import Path

from grpcmesh.api.examples.orders.v1 import orders_pb2 as o
from grpcmesh.api.v1 import commandbus_pb2_grpc as cb_grpc
from grpcmesh.api.v1 import querybus_pb2_grpc as qb_grpc
from grpcmesh.sdk import AsyncMeshClient
from tests.integration.cqrs.orders import add, command, order_of, query
from tests.support.mesh import start_sidecar
from tests.support.procs import ProcessGroup, free_port, start_service


def behind_sidecar(procs: ProcessGroup, name: str, eventstore_inbound: int, *args: str) -> int:
    """Starts ``grpcmesh NAME`` whose event store calls go through its own sidecar; returns its port."""
    port = free_port()
    sidecar = start_sidecar(
        procs, name, f"127.0.0.1:{port}", "--endpoints", f"eventstore=127.0.0.1:{eventstore_inbound}"
    )
    argv = [sys.executable, "-m", "grpcmesh.cli", name, "--port", str(port), *args]
    proc = procs.start(argv, name, env={"GRPCMESH_SIDECAR": f"127.0.0.1:{sidecar.outbound}"})
    proc.wait_output(f"listening on 127.0.0.1:{port}", timeout=30)
    return port


async def test_orders_through_sidecars(procs: ProcessGroup, tmp_path: Path) -> None:
    eventstore = start_service(procs, "eventstore", "--db", f"sqlite://{tmp_path / 'events.db'}")
    es_sidecar = start_sidecar(procs, "eventstore", eventstore.address)
    commandbus = behind_sidecar(procs, "commandbus", es_sidecar.inbound)
    querybus = behind_sidecar(procs, "querybus", es_sidecar.inbound, "--db", str(tmp_path / "read.db"))
    discovery = {"commandbus": [f"127.0.0.1:{commandbus}"], "querybus": [f"127.0.0.1:{querybus}"]}
    async with AsyncMeshClient("tests", discovery=discovery, timeout=10, retry=False) as client:
        commands = client.stub(cb_grpc.CommandBusStub, target="commandbus")
        queries = client.stub(qb_grpc.QueryBusStub, target="querybus")
        order_id = (await commands.Dispatch(command(o.CreateOrder(customer_id="c")))).aggregate_id
        added = await commands.Dispatch(command(add("a", 3, 7), order_id))
        order = order_of(await queries.Query(query(o.GetOrder(order_id=order_id), added.position)))
    assert (order.total_cents, order.applied_events) == (21, 2)
