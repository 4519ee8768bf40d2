"""``grpcmesh saga --db URL --definitions module:attr --port N``: the saga orchestrator service."""

from __future__ import annotations

import argparse
from typing import Any

from grpcmesh.cli.service_args import ALLOW_EMPTY_HELP, add_db_argument, add_listen_arguments

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("saga", help="run the durable saga orchestrator gRPC service")
    p.add_argument(
        "--definitions",
        required=True,
        help="module:attr naming a SagaDefinition, a list of them, or a function returning either",
    )
    add_db_argument(p, "saga.db", "saga state")
    add_listen_arguments(p, 50091)
    p.add_argument(
        "--discovery",
        default=None,
        help="call participants directly via this registry (file://registry.toml, consul://host:port); "
        "default: through the local sidecar",
    )
    p.add_argument("--allow-empty-registry", action="store_true", help=ALLOW_EMPTY_HELP)
    p.add_argument("--sidecar", default=None, help="local sidecar address (default: $GRPCMESH_SIDECAR)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from grpcmesh.cli.errors import CommandError
    from grpcmesh.cli.registry_check import check_registry
    from grpcmesh.services.saga.definitions import load_definitions
    from grpcmesh.services.saga.main import SagaConfig, run
    from grpcmesh.services.saga.store.factory import make_store

    try:  # fail fast, with one line, on a bad --definitions or --db
        load_definitions(args.definitions)
        make_store(args.db)
    except (ImportError, AttributeError, TypeError, ValueError) as err:
        raise CommandError(str(err)) from None
    if args.discovery:
        check_registry(args.discovery, allow_empty=args.allow_empty_registry)

    config = SagaConfig(
        definitions=args.definitions,
        db=args.db,
        host=args.host,
        port=args.port,
        discovery=args.discovery,
        sidecar=args.sidecar,
    )
    return asyncio.run(run(config))
