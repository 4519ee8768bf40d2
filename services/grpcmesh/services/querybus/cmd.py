"""``grpcmesh querybus --eventstore HOST:PORT --db PATH --port N``: projectors + Query service."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("querybus", help="run the query bus (projectors into SQLite read models + Query)")
    p.add_argument(
        "--app",
        default="grpcmesh.services.examples.orders",
        help="module exposing projections() and query_handlers() (default: the orders example)",
    )
    p.add_argument("--db", default="readmodels.db", help="SQLite file of the read models and checkpoints")
    p.add_argument(
        "--eventstore",
        default=None,
        help="event store host:port[,host:port] to call directly; default: through the local sidecar",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=50081, help="port to listen on; 0 picks a free one")
    p.add_argument(
        "--max-wait", type=float, default=30.0, help="longest min_position wait without a deadline"
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from grpcmesh.services.querybus.main import QueryBusConfig, run

    config = QueryBusConfig(
        app=args.app,
        db=args.db,
        eventstore=args.eventstore,
        host=args.host,
        port=args.port,
        max_wait=args.max_wait,
    )
    return asyncio.run(run(config))
