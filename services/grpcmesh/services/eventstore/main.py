"""Runs the event store as a stand-alone gRPC service until SIGTERM/SIGINT.

Built once at the edge (CLI) into a frozen :class:`EventStoreConfig`; opens the storage,
serves grpcmesh.api.v1.EventStore with health and reflection through
:class:`grpcmesh.sdk.server.Server`, logs ``listening on HOST:PORT``, drains on signal.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from grpcmesh.api.v1 import eventstore_pb2_grpc as pb_grpc
from grpcmesh.sdk.server import Server
from grpcmesh.services.eventstore.factory import make_storage
from grpcmesh.services.eventstore.service import EventStoreService
from grpcmesh.services.eventstore.subscriptions import SubscriptionConfig
from grpcmesh.services.eventstore.validation import Limits

__all__ = ["SERVICE_NAME", "EventStoreConfig", "run"]

log = logging.getLogger("grpcmesh.eventstore")

SERVICE_NAME = "grpcmesh.api.v1.EventStore"


@dataclass(frozen=True, slots=True)
class EventStoreConfig:
    db: str = "sqlite://eventstore.db"
    host: str = "127.0.0.1"
    port: int = 50061
    limits: Limits = field(default_factory=Limits)
    subscriptions: SubscriptionConfig = field(default_factory=SubscriptionConfig)


async def run(config: EventStoreConfig) -> int:
    storage = make_storage(config.db)
    await storage.open()
    try:
        service = EventStoreService(storage, config.limits, config.subscriptions)
        server = Server(
            [(service, pb_grpc.add_EventStoreServicer_to_server, SERVICE_NAME)],
            host=config.host,
            port=config.port,
            name="eventstore",
        )
        await server.start()
        log.info("listening on %s (db %s)", server.address, config.db.split("?")[0].split("@")[-1])
        await server.run_until_signal()
    finally:
        await storage.close()
    return 0
