"""Runs the saga orchestrator as a stand-alone gRPC service until SIGTERM/SIGINT.

Opens the store, loads the definitions, resumes every unfinished saga, then serves
grpcmesh.api.v1.SagaOrchestrator (with health and reflection) and logs
``listening on HOST:PORT``. Step calls go through the mesh: the local sidecar by
default, or in-process discovery when ``discovery`` is set.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from grpcmesh.api.v1 import saga_pb2_grpc as pb_grpc
from grpcmesh.sdk.client import AsyncMeshClient
from grpcmesh.sdk.server import Server
from grpcmesh.services.saga.caller import MeshStepCaller
from grpcmesh.services.saga.definitions import load_definitions
from grpcmesh.services.saga.engine import Orchestrator
from grpcmesh.services.saga.service import SagaService
from grpcmesh.services.saga.store.base import make_store

__all__ = ["SERVICE_NAME", "SagaConfig", "run"]

log = logging.getLogger("grpcmesh.saga")

SERVICE_NAME = "grpcmesh.api.v1.SagaOrchestrator"


@dataclass(frozen=True, slots=True)
class SagaConfig:
    definitions: str
    db: str = "sqlite://saga.db"
    host: str = "127.0.0.1"
    port: int = 50091
    discovery: str | None = None
    """Registry URL for direct mode (file://, consul://); None sends calls through the sidecar."""
    sidecar: str | None = None


async def run(config: SagaConfig) -> int:
    definitions = load_definitions(config.definitions)
    store = make_store(config.db)
    await store.open()
    client = AsyncMeshClient(
        "saga", retry=False, discovery=config.discovery or None, sidecar=config.sidecar or None
    )
    orchestrator = Orchestrator(store, definitions, MeshStepCaller(client))
    try:
        service = SagaService(orchestrator)
        server = Server(
            [(service, pb_grpc.add_SagaOrchestratorServicer_to_server, SERVICE_NAME)],
            host=config.host,
            port=config.port,
            name="saga",
        )
        resumed = await orchestrator.resume()  # before serving: no Start can race the resume
        await server.start()
        log.info(
            "listening on %s (db %s, %d definition(s), %d resumed)",
            server.address,
            config.db,
            len(definitions),
            resumed,
        )
        await server.run_until_signal()
    finally:
        await orchestrator.close()
        await client.close()
        await store.close()
    return 0
