"""Flags the service commands share: where to listen; for the buses also the app module and event store."""

from __future__ import annotations

import argparse

__all__ = ["add_listen_arguments", "add_service_arguments"]


def add_service_arguments(p: argparse.ArgumentParser, port: int, needs: str) -> None:
    """The flags both buses share: the application module, the event store, where to listen."""
    p.add_argument(
        "--app",
        default="grpcmesh.services.examples.orders",
        help=f"module exposing {needs} (default: the orders example)",
    )
    p.add_argument(
        "--eventstore",
        default=None,
        help="event store host:port[,host:port] to call directly; default: through the local sidecar",
    )
    add_listen_arguments(p, port)


def add_listen_arguments(p: argparse.ArgumentParser, port: int) -> None:
    """``--host`` / ``--port`` of a gRPC service (port 0 picks a free one)."""
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=port, help=f"port to listen on (default {port}; 0 picks one)")
