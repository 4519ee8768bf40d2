"""A 503 names, in the gateway's log, the mesh service it looked up (a mapping typo shows at once)."""

from __future__ import annotations

from pathlib import Path

from tests.support.gateway import start_gateway
from tests.support.procs import ProcessGroup, free_port


async def test_a_503_logs_the_mesh_service_looked_up(procs: ProcessGroup, tmp_path: Path) -> None:
    config = f'[discovery]\neventstore = ["127.0.0.1:{free_port()}"]\n[services]\n"grpcmesh.api.v1.QueryBus" = "queries"\n'
    gateway = start_gateway(procs, tmp_path, config, auth=False)
    reply = await gateway.request("POST", "/v1/queries", body={"minPosition": "1"})
    assert reply.status == 503
    assert reply.json()["code"] == "UNAVAILABLE"
    gateway.proc.wait_output("mesh service 'queries' unavailable", timeout=10)
    assert "503 for grpcmesh.api.v1.QueryBus.Query" in gateway.proc.output()
