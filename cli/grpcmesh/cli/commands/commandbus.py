"""``grpcmesh commandbus --eventstore HOST:PORT --port N``: the command bus as a service."""

from __future__ import annotations

import argparse
from typing import Any

from grpcmesh.cli.service_args import add_service_arguments

__all__ = ["add_parser"]


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
