"""The ``grpcmesh`` command: one entry point, one module per subcommand.

Subcommands are found through the ``grpcmesh.commands`` entry-point group, so an
installed package adds its own by declaring one (``name = "pkg.module:add_parser"``).
Each ``add_parser(subparsers)`` keeps its heavy imports inside its handler, so
``grpcmesh --help`` stays fast and a broken optional dependency only breaks the
command that needs it. This package is the composition root: the only place
allowed to import both sidecar and services.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterable, Sequence
from importlib.metadata import EntryPoint, entry_points

from grpcmesh.cli.errors import CommandError

__all__ = ["GROUP", "build_parser", "commands", "main"]

GROUP = "grpcmesh.commands"

log = logging.getLogger("grpcmesh.cli")


def commands(eps: Iterable[EntryPoint] | None = None) -> list[EntryPoint]:
    """The subcommands (default: the installed ones) by name, one per name.

    A name declared twice keeps grpcmesh's own (a plugin cannot shadow a built-in),
    otherwise the first by target, and a warning names both.
    """
    found: dict[str, EntryPoint] = {}
    for ep in sorted(entry_points(group=GROUP) if eps is None else eps, key=_precedence):
        if ep.name in found:
            log.warning(
                "grpcmesh command %r declared twice: using %s, not %s",
                ep.name,
                found[ep.name].value,
                ep.value,
            )
            continue
        found[ep.name] = ep
    return list(found.values())


def _precedence(ep: EntryPoint) -> tuple[str, bool, str]:
    return ep.name, ep.dist is None or ep.dist.name != "grpcmesh", ep.value


def build_parser(eps: Iterable[EntryPoint] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grpcmesh",
        description="A Python gRPC service mesh: sidecar, SDK tooling and CQRS/saga services.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for ep in commands(eps):
        ep.load()(sub)
    return parser


def main(argv: Sequence[str] | None = None, eps: Iterable[EntryPoint] | None = None) -> int:
    parser = build_parser(eps)
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
