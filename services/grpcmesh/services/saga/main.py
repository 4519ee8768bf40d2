"""Runs the saga orchestrator as a stand-alone gRPC service until SIGTERM/SIGINT.

Opens the store, loads the definitions, serves grpcmesh.api.v1.SagaOrchestrator
(with health and reflection) and logs ``listening on HOST:PORT``; once this
instance holds the database's orchestrator lock (see :mod:`.leader`) it
resumes every unfinished saga and starts answering (``active: ...`` logged).
Step calls go through the mesh: the local sidecar by default, or in-process
discovery when ``discovery`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from grpcmesh.api.v1 import saga_pb2_grpc as pb_grpc
from grpcmesh.sdk.client import AsyncMeshClient
from grpcmesh.sdk.server import Server
from grpcmesh.services.saga.caller import MeshStepCaller
from grpcmesh.services.saga.definitions import load_definitions
from grpcmesh.services.saga.engine import Orchestrator
from grpcmesh.services.saga.leader import Leadership, make_leadership
from grpcmesh.services.saga.service import SagaService
from grpcmesh.services.saga.standby import StandbyGate
from grpcmesh.services.saga.store.factory import make_store

__all__ = ["SERVICE_NAME", "SagaConfig", "run"]

log = logging.getLogger("grpcmesh.saga")

SERVICE_NAME = "grpcmesh.api.v1.SagaOrchestrator"
_POLL_S = 1.0  # standby: how often to try the lock; active: half as often, check it is still ours
_SWEEP_EVERY = 3  # lock checks between sweeps for undriven sagas


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
    leadership = make_leadership(config.db)
    client = AsyncMeshClient(
        "saga", retry=False, discovery=config.discovery or None, sidecar=config.sidecar or None
    )
    orchestrator = Orchestrator(store, definitions, MeshStepCaller(client))
    gate = StandbyGate(SERVICE_NAME)
    lost = asyncio.Event()
    try:
        service = SagaService(orchestrator)
        server = Server(
            [(service, pb_grpc.add_SagaOrchestratorServicer_to_server, SERVICE_NAME)],
            host=config.host,
            port=config.port,
            name="saga",
            interceptors=[gate],
        )
        active = await _activate(leadership, orchestrator, gate)  # before serving: no Start races the resume
        await server.start()
        await server.set_serving(active)
        log.info(
            "listening on %s (db %s, %d definition(s), %s)",
            server.address,
            config.db,
            len(definitions),
            "active" if active else "standby: another orchestrator holds this database's lock",
        )
        leading = asyncio.create_task(_lead(leadership, orchestrator, server, gate, lost))
        stopped = asyncio.create_task(server.run_until_signal())
        await asyncio.wait([stopped, asyncio.create_task(lost.wait())], return_when=asyncio.FIRST_COMPLETED)
        leading.cancel()
        if lost.is_set():
            await server.stop()
            stopped.cancel()
    finally:
        await orchestrator.close()
        await client.close()
        await store.close()
        await leadership.release()
    return 1 if lost.is_set() else 0


async def _activate(leadership: Leadership, orchestrator: Orchestrator, gate: StandbyGate) -> bool:
    """Takes the lock if free; then resumes every unfinished saga and opens the gate."""
    if not await leadership.try_acquire():
        return False
    try:
        resumed = await orchestrator.resume()
    except Exception as err:  # the database went away between the lock and the read (a restart)
        # Holding the lock without driving sagas would stall every saga for good: let it go and
        # try again on the next poll, when the store's pool has replaced its broken connection.
        log.warning("took the orchestrator lock but could not resume (%s); releasing it, retrying", err)
        await leadership.release()
        return False
    gate.active = True
    log.info("active: driving this database's sagas (%d resumed)", resumed)
    return True


async def _lead(
    leadership: Leadership, orchestrator: Orchestrator, server: Server, gate: StandbyGate, lost: asyncio.Event
) -> None:
    """A standby polls for the lock; the active one checks that the lock stays its own."""
    while not gate.active:  # polling: a lock's release has no event to wait on across processes
        await asyncio.sleep(_POLL_S)
        if await _activate(leadership, orchestrator, gate):
            await server.set_serving(True)
    checks = 0
    while True:
        await asyncio.sleep(_POLL_S * 2)
        if not await leadership.held():
            break
        checks += 1
        if checks % _SWEEP_EVERY == 0:  # sagas a previous active one left behind (see Orchestrator.sweep)
            with contextlib.suppress(Exception):  # the database is away: the next sweep will do
                await orchestrator.sweep()
    # Refuse new Starts at once (UNAVAILABLE, not reached: the mesh retries them on the new active
    # one): a saga accepted during the drain below would be created but never driven, since the
    # standby has already resumed what it found.
    gate.active = False
    log.error("lost the orchestrator lock (database connection gone); exiting so a standby takes over")
    lost.set()
