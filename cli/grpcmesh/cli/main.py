"""The ``grpcmesh`` command: one entry point, one module per subcommand.

Subcommands are found through the ``grpcmesh.commands`` entry-point group, so an
installed package adds its own by declaring one (``name = "pkg.module:add_parser"``).
Each ``add_parser(subparsers)`` keeps its heavy imports inside its handler, so
``grpcmesh --help`` stays fast and a broken optional dependency only breaks the
command that needs it. This package is the composition root: the only place
allowed to import both sidecar and services.

Every mistake a user can make before a command is up and serving -- a bad flag, a
bad config value, a port in use, a module that does not import -- ends in ONE line
on stderr and exit status 2 (``-v`` adds the traceback), never a bare traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Iterable, Sequence
from importlib.metadata import EntryPoint, PackageNotFoundError, entry_points, version

from grpcmesh.cli.errors import USAGE_ERROR, CommandError
from grpcmesh.cli.helpfmt import polish
from grpcmesh.sdk.logging import set_access_log

__all__ = ["GROUP", "build_parser", "commands", "main"]

GROUP = "grpcmesh.commands"

log = logging.getLogger("grpcmesh.cli")

# What a command raises for a mistake in its input or environment (config, flags, files,
# ports, modules). Anything else is a bug and keeps its traceback.
STARTUP_ERRORS: tuple[type[BaseException], ...] = (CommandError, ValueError, OSError, ImportError)


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


def _version() -> str:
    try:
        return version("grpcmesh")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "unknown"


def build_parser(eps: Iterable[EntryPoint] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grpcmesh",
        description="A Python gRPC service mesh: sidecar, SDK tooling and CQRS/saga services.",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log at DEBUG level; tracebacks on errors"
    )
    parser.add_argument("--version", action="version", version=f"grpcmesh {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for ep in commands(eps):
        ep.load()(sub)
    polish(parser)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Like ``parse_args``, but an unknown flag is reported with the usage of the subcommand it follows."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        owner: argparse.ArgumentParser = getattr(args, "_parser", parser)
        owner.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: Sequence[str] | None = None, eps: Iterable[EntryPoint] | None = None) -> int:
    parser = build_parser(eps)
    args = _parse(parser, argv)
    if os.getcwd() not in sys.path:  # --app / --definitions modules of the project at hand, as with -m;
        sys.path.append(os.getcwd())  # last, so a local file never shadows an installed package
    if not args.verbose:  # grpc's C core would print its own line before ours on a failed bind
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    set_access_log(True if args.verbose else None)  # a line per served call: GRPCMESH_ACCESS_LOG=1 or -v
    try:
        result: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as err:
        if not _startup_error(err):
            raise
        if args.verbose:
            traceback.print_exc()
        print(f"grpcmesh {args.command}: {describe(err)}", file=sys.stderr)
        return USAGE_ERROR
    return result


def _startup_error(err: Exception) -> bool:
    """A mistake in the input or environment (see STARTUP_ERRORS), or a database that will not open."""
    import sqlite3

    return isinstance(err, (*STARTUP_ERRORS, sqlite3.Error)) or type(err).__module__.startswith("psycopg")


def describe(err: BaseException) -> str:
    """One line for a startup error: its message, with the exception type where that helps."""
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, ModuleNotFoundError) and err.name:
        return f"cannot import {err.name!r}: no such module (check the name and PYTHONPATH)"
    if isinstance(err, CommandError | ValueError) or (isinstance(err, OSError) and err.errno is None):
        return text
    module = type(err).__module__
    prefix = "" if module == "builtins" else f"{module.split('.')[0]}."
    return f"{prefix}{type(err).__name__}: {text}"
