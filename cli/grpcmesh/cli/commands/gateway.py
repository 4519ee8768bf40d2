"""``grpcmesh gateway --listen HOST:PORT --config gateway.toml``: the HTTP/JSON edge."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("gateway", help="run the HTTP/JSON API gateway in front of the mesh")
    p.add_argument("--listen", default=None, help="HOST:PORT to serve HTTP on (default 127.0.0.1:8080)")
    p.add_argument("--config", default=None, help="gateway TOML file (routes, auth, limits, cache)")
    p.add_argument("--sidecar", default=None, help="local sidecar HOST:PORT (default $GRPCMESH_SIDECAR)")
    p.add_argument(
        "--discovery",
        default=None,
        help="direct mode without a sidecar: consul://…, file://… or http://… registry URL",
    )
    p.add_argument("--no-uvloop", action="store_true", help="use the default asyncio event loop")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from grpcmesh.services.gateway.config import load_config
    from grpcmesh.services.gateway.main import run

    loop_factory = None
    if not args.no_uvloop:
        try:
            import uvloop

            loop_factory = uvloop.new_event_loop
        except ImportError:  # uvloop is a dependency on Linux only
            pass
    try:
        config = load_config(args.config, listen=args.listen, sidecar=args.sidecar, discovery=args.discovery)
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(run(config))
    except ValueError as err:  # a config mistake: one line, no traceback
        raise SystemExit(f"grpcmesh gateway: {err}") from None
