"""Runs the command bus as a stand-alone gRPC service until SIGTERM/SIGINT.

The handlers come from an application module (``--app``, default the orders
example) exposing ``command_handlers() -> list[CommandHandler]``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from grpcmesh.api.v1 import commandbus_pb2_grpc as cb_grpc
from grpcmesh.sdk import Server
from grpcmesh.services.commandbus.cache import CachedStreams
from grpcmesh.services.commandbus.dispatcher import DispatchConfig, Dispatcher
from grpcmesh.services.commandbus.registry import HandlerRegistry
from grpcmesh.services.commandbus.service import SERVICE_NAME, CommandBusService
from grpcmesh.services.commandbus.store import RemoteStreams
from grpcmesh.services.common.app import DEFAULT_APP, load_app
from grpcmesh.services.common.eventstore import eventstore_client
from grpcmesh.services.cqrs.handlers import CommandHandler

__all__ = ["CommandBusConfig", "run"]

log = logging.getLogger("grpcmesh.commandbus")


@dataclass(frozen=True, slots=True)
class CommandBusConfig:
    app: str = DEFAULT_APP
    eventstore: str | None = None  # host:port[,host:port]; None: through the sidecar
    host: str = "127.0.0.1"
    port: int = 50071
    dispatch: DispatchConfig = field(default_factory=DispatchConfig)


async def run(config: CommandBusConfig) -> int:
    handlers: list[CommandHandler] = list(load_app(config.app, "command_handlers")())  # type: ignore[arg-type]
    registry = HandlerRegistry(handlers)
    async with eventstore_client("commandbus", config.eventstore) as client:
        dispatcher = Dispatcher(registry, CachedStreams(RemoteStreams(client)), config.dispatch)
        service = CommandBusService(dispatcher)
        server = Server(
            [(service, cb_grpc.add_CommandBusServicer_to_server, SERVICE_NAME)],
            host=config.host,
            port=config.port,
            name="commandbus",
        )
        await server.start()
        log.info("listening on %s (%d command types)", server.address, len(registry))
        await server.run_until_signal()
    return 0
