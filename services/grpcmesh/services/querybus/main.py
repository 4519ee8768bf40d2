"""Runs the query bus (projectors + Query service) until SIGTERM/SIGINT.

The application module (``--app``, default the orders example) exposes
``projections() -> list[Projection]`` and ``query_handlers() -> list[QueryHandler]``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from grpcmesh.api.v1 import querybus_pb2_grpc as qb_grpc
from grpcmesh.sdk import Server
from grpcmesh.services.common.app import DEFAULT_APP, load_app
from grpcmesh.services.common.eventstore import eventstore_client
from grpcmesh.services.cqrs.queries import Projection, QueryHandler
from grpcmesh.services.querybus.projector import Projector, ProjectorConfig
from grpcmesh.services.querybus.readstore import ReadStore
from grpcmesh.services.querybus.service import SERVICE_NAME, QueryBusService

__all__ = ["QueryBusConfig", "run"]

log = logging.getLogger("grpcmesh.querybus")


@dataclass(frozen=True, slots=True)
class QueryBusConfig:
    app: str = DEFAULT_APP
    db: str = "readmodels.db"
    eventstore: str | None = None  # host:port[,host:port]; None: through the sidecar
    host: str = "127.0.0.1"
    port: int = 50081
    max_wait: float = 30.0
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)


async def run(config: QueryBusConfig) -> int:
    projections: list[Projection] = list(load_app(config.app, "projections")())  # type: ignore[arg-type]
    handlers: list[QueryHandler] = list(load_app(config.app, "query_handlers")())  # type: ignore[arg-type]
    names = {p.name for p in projections}
    for h in handlers:
        if h.projection not in names:
            raise ValueError(f"query {h.type_url} reads unknown projection {h.projection!r}")
    store = ReadStore(config.db)
    await store.open(projections)
    try:
        async with eventstore_client("querybus", config.eventstore) as client:
            projectors = {p.name: Projector(p, store, client, config=config.projector) for p in projections}
            for projector in projectors.values():
                await projector.start()
            service = QueryBusService({h.type_url: h for h in handlers}, projectors, store, config.max_wait)
            server = Server(
                [(service, qb_grpc.add_QueryBusServicer_to_server, SERVICE_NAME)],
                host=config.host,
                port=config.port,
                name="querybus",
            )
            try:
                await server.start()
                log.info("listening on %s (read models in %s)", server.address, config.db)
                await server.run_until_signal()
            finally:
                for projector in projectors.values():
                    await projector.stop()
    finally:
        await store.close()
    return 0
