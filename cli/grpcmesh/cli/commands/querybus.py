"""``grpcmesh querybus --eventstore HOST:PORT --db PATH --port N``: projectors + Query service."""

from __future__ import annotations

import argparse
from typing import Any

from grpcmesh.cli.service_args import add_db_argument, add_service_arguments

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("querybus", help="run the query bus (projectors into SQLite read models + Query)")
    add_service_arguments(p, 50081, "projections() and query_handlers()")
    add_db_argument(p, "readmodels.db", "read models and checkpoints", postgres=False)
    p.add_argument(
        "--max-wait", type=float, default=30.0, help="longest min_position wait without a deadline"
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from grpcmesh.services.querybus.main import QueryBusConfig, run

    config = QueryBusConfig(args.app, args.db, args.eventstore, args.host, args.port, args.max_wait)
    return asyncio.run(run(config))
