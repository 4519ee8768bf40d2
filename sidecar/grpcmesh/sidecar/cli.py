"""The ``grpcmesh`` command: one entry point, one module per subcommand.

Each subcommand module exposes ``add_parser(subparsers)`` and keeps its heavy
imports inside its handler, so ``grpcmesh --help`` stays fast and a broken
optional dependency only breaks the command that needs it. This module is the
composition root: the only place allowed to import both sidecar and services.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

__all__ = ["COMMANDS", "build_parser", "main"]

# Subcommand modules, in the order `--help` lists them.
COMMANDS: tuple[str, ...] = (
    "grpcmesh.sidecar.cmd_proto",
    "grpcmesh.sidecar.cmd_demo",
    "grpcmesh.sidecar.cmd_sidecar",
    "grpcmesh.sidecar.cmd_traces",
    "grpcmesh.sidecar.cmd_ca",
    "grpcmesh.services.eventstore.cmd",
    "grpcmesh.services.gateway.cmd",
    "grpcmesh.services.saga.cmd",
    "grpcmesh.services.commandbus.cmd",
    "grpcmesh.services.querybus.cmd",
)


class CommandError(Exception):
    """A user-facing failure: printed without a traceback, exit status 1."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grpcmesh",
        description="A Python gRPC service mesh: sidecar, SDK tooling and CQRS/saga services.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        result: int = args.func(args)
    except CommandError as err:
        print(f"grpcmesh {args.command}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
