"""``grpcmesh commandbus --eventstore HOST:PORT --port N``: the command bus as a service."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser", "add_service_arguments"]


def add_service_arguments(p: argparse.ArgumentParser, port: int, needs: str) -> None:
    """The flags both buses share: the application module, the event store, where to listen."""
    p.add_argument(
        "--app",
        default="grpcmesh.services.examples.orders",
        help=f"module exposing {needs} (default: the orders example)",
    )
    p.add_argument(
        "--eventstore",
        default=None,
        help="event store host:port[,host:port] to call directly; default: through the local sidecar",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=port, help=f"port to listen on (default {port}; 0 picks one)")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("commandbus", help="run the command bus (Dispatch → aggregate → event store)")
    add_service_arguments(p, 50071, "command_handlers()")
    p.add_argument("--max-attempts", type=int, default=10, help="loads+appends per command on conflicts")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from grpcmesh.services.commandbus.dispatcher import DispatchConfig
    from grpcmesh.services.commandbus.main import CommandBusConfig, run

    dispatch = DispatchConfig(max_attempts=args.max_attempts)
    config = CommandBusConfig(args.app, args.eventstore, args.host, args.port, dispatch)
    return asyncio.run(run(config))
