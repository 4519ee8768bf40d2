"""``grpcmesh gateway --listen HOST:PORT --config gateway.toml``: the HTTP/JSON edge.

``grpcmesh gateway openapi [--config gateway.toml]`` prints the OpenAPI 3.1 document
the running gateway serves at ``/openapi.json``, without starting anything.
"""

from __future__ import annotations

import argparse
from typing import Any

from grpcmesh.cli.service_args import ALLOW_EMPTY_HELP

__all__ = ["add_parser"]


def _config_arguments(p: argparse.ArgumentParser, default: str | None = None) -> None:
    p.add_argument("--config", default=default, help="gateway TOML file (routes, auth, limits, cache)")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("gateway", help="run the HTTP/JSON API gateway in front of the mesh")
    p.add_argument("--listen", default=None, help="HOST:PORT to serve HTTP on (default: 127.0.0.1:8080)")
    _config_arguments(p)
    p.add_argument("--sidecar", default=None, help="local sidecar HOST:PORT (default: $GRPCMESH_SIDECAR)")
    p.add_argument(
        "--discovery",
        default=None,
        help="direct mode without a sidecar: consul://…, file://… or http://… registry URL",
    )
    p.add_argument("--allow-empty-registry", action="store_true", help=ALLOW_EMPTY_HELP)
    p.add_argument("--no-uvloop", action="store_true", help="use the default asyncio event loop")
    p.set_defaults(func=_run)
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=False)
    openapi = verbs.add_parser("openapi", help="print the gateway's OpenAPI 3.1 document (JSON)")
    _config_arguments(openapi, argparse.SUPPRESS)  # `gateway --config X openapi` keeps X
    openapi.set_defaults(func=_openapi)


def _load(args: argparse.Namespace, **overrides: Any) -> Any:
    from grpcmesh.cli.errors import CommandError
    from grpcmesh.services.gateway.config import load_config

    try:
        return load_config(args.config, **overrides)
    except ValueError as err:  # a config mistake: one line, no traceback
        raise CommandError(str(err)) from None


def _openapi(args: argparse.Namespace) -> int:
    import json

    from grpcmesh.services.gateway.openapi import openapi_document
    from grpcmesh.services.gateway.routes import load_routes

    config = _load(args)
    print(json.dumps(openapi_document(config, load_routes(config.protos)), indent=2))
    return 0


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from grpcmesh.cli.registry_check import check_registry
    from grpcmesh.services.gateway.main import run

    loop_factory = None
    if not args.no_uvloop:
        try:
            import uvloop

            loop_factory = uvloop.new_event_loop
        except ImportError:  # uvloop is a dependency on Linux only
            pass
    config = _load(args, listen=args.listen, sidecar=args.sidecar, discovery=args.discovery)
    if isinstance(config.discovery, str):
        check_registry(config.discovery, allow_empty=args.allow_empty_registry)
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        result: int = runner.run(run(config))
    return result
