"""Flags the service commands share: where to listen, the database, the app module, the event store.

Every ``--db`` accepts the same forms -- ``sqlite:///abs/path.db``,
``sqlite://rel/path.db``, a plain file path, and (where the service supports it)
``postgresql://user@host:port/db`` -- and is normalised here, so a service only
ever sees its canonical form and a wrong form is a usage error naming the flag.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = [
    "ALLOW_EMPTY_HELP",
    "add_db_argument",
    "add_listen_arguments",
    "add_service_arguments",
    "db_url",
    "sqlite_path",
]

ALLOW_EMPTY_HELP = "start even if the registry file is missing or malformed (empty until a good one appears)"

_POSTGRES = ("postgresql://", "postgres://")


def db_url(value: str) -> str:
    """``events.db`` / ``sqlite://…`` / ``postgresql://…`` → the canonical URL (``sqlite://events.db``)."""
    text = value.strip()
    if text.startswith(_POSTGRES):
        return text
    if text.startswith("sqlite://"):
        if not text[len("sqlite://") :].split("?")[0]:
            raise argparse.ArgumentTypeError(f"{value!r}: no file after sqlite://")
        return text
    if not text or "://" in text:
        raise argparse.ArgumentTypeError(
            f"{value!r}: expected a file path, sqlite:///abs/path.db, sqlite://rel/path.db "
            "or postgresql://user@host:port/db"
        )
    return f"sqlite://{text}"


def sqlite_path(value: str) -> str:
    """The same forms as :func:`db_url`, for a service that keeps SQLite only: the file path."""
    url = db_url(value)
    if url.startswith(_POSTGRES):
        raise argparse.ArgumentTypeError(f"{value!r}: this service keeps its data in SQLite only")
    path = url[len("sqlite://") :]
    if "?" in path:
        raise argparse.ArgumentTypeError(f"{value!r}: no ?options here")
    return path


def add_db_argument(p: argparse.ArgumentParser, default: str, what: str, *, postgres: bool = True) -> None:
    """``--db`` in the shared forms; ``postgres=False`` for SQLite-only services (gives a path)."""
    kind: Callable[[str], str] = db_url if postgres else sqlite_path
    forms = "a file path, sqlite:///abs.db, sqlite://rel.db" + (
        " or postgresql://user@host:port/db" if postgres else ""
    )
    p.add_argument("--db", type=kind, default=kind(default), help=f"{what}: {forms} (default: {default})")


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
    p.add_argument("--port", type=int, default=port, help=f"port to listen on (default: {port}; 0 picks one)")
