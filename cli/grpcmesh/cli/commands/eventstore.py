"""``grpcmesh eventstore --db URL --port N``: the event store as a stand-alone service."""

from __future__ import annotations

import argparse
from typing import Any

from grpcmesh.cli.service_args import add_db_argument, add_listen_arguments

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("eventstore", help="run the event store gRPC service (SQLite or PostgreSQL)")
    add_db_argument(p, "eventstore.db", "event log (sqlite URLs take ?synchronous=full|normal)")
    add_listen_arguments(p, 50061)
    p.add_argument(
        "--max-event-bytes", type=int, default=1024 * 1024, help="size limit of one event in bytes"
    )
    p.add_argument("--max-batch", type=int, default=1000, help="most events in one append")
    p.add_argument(
        "--subscriber-buffer-bytes",
        type=int,
        default=1024 * 1024,
        help="bytes a live subscriber may lag before it is cut off (default: 1 MiB)",
    )
    p.add_argument(
        "--max-replaying",
        type=int,
        default=16,
        help="catch-up subscriptions reading history at once, server-wide; the rest queue (default: 16)",
    )
    p.add_argument(
        "--subscription-page-bytes",
        type=int,
        default=64 * 1024,
        help="bytes a catch-up subscription reads ahead of its client (default: 64 KiB)",
    )
    p.add_argument(
        "--max-subscriptions",
        type=int,
        default=1000,
        help="concurrent subscriptions; more get RESOURCE_EXHAUSTED (default: 1000)",
    )
    p.add_argument("--poll-interval", type=float, default=1.0, help="seconds between subscription polls")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from grpcmesh.services.eventstore.main import EventStoreConfig, run
    from grpcmesh.services.eventstore.subscriptions import SubscriptionConfig
    from grpcmesh.services.eventstore.validation import Limits

    config = EventStoreConfig(
        db=args.db,
        host=args.host,
        port=args.port,
        limits=Limits(max_event_bytes=args.max_event_bytes, max_batch_events=args.max_batch),
        subscriptions=SubscriptionConfig(
            page_bytes=args.subscription_page_bytes,
            buffer_bytes=args.subscriber_buffer_bytes,
            poll_interval=args.poll_interval,
            max_subscriptions=args.max_subscriptions,
            max_replaying=args.max_replaying,
        ),
    )
    return asyncio.run(run(config))
