"""Picks the saga store adapter for a database URL.

Apart from the port (:mod:`.base`) so that the adapters import the port and only
this module imports the adapters: no cycle between a port and its implementations.
"""

from __future__ import annotations

from grpcmesh.services.saga.store.base import SagaStore

__all__ = ["make_store"]


def make_store(url: str) -> SagaStore:
    """``sqlite:///abs/path.db``, ``sqlite://rel/path.db`` or ``postgresql://user@host:port/db``."""
    if url.startswith("sqlite://"):
        from grpcmesh.services.saga.store.sqlite import SQLiteSagaStore

        path = url[len("sqlite://") :]
        if not path:
            raise ValueError(f"bad SQLite URL {url!r}: want sqlite:///path")
        return SQLiteSagaStore(path)
    if url.startswith(("postgresql://", "postgres://")):
        from grpcmesh.services.saga.store.postgres import PostgresSagaStore

        return PostgresSagaStore(url)
    raise ValueError(f"unsupported saga database URL {url!r}: use sqlite:///path or postgresql://...")
