"""Opens the Storage adapter a ``--db`` URL names (the one place that knows both adapters).

``sqlite:///abs/path.db`` or ``sqlite://rel/path.db`` (add ``?synchronous=normal`` to trade
power-loss durability for speed); ``postgresql://user@host:port/db`` (any libpq DSN URL).
"""

from __future__ import annotations

from urllib.parse import parse_qs

from grpcmesh.services.eventstore.storage.base import Storage

__all__ = ["make_storage"]


def make_storage(url: str) -> Storage:
    if url.startswith("sqlite://"):
        from grpcmesh.services.eventstore.storage.sqlite import SQLiteStorage

        path, _, query = url[len("sqlite://") :].partition("?")
        sync = parse_qs(query).get("synchronous", ["full"])[0].lower()
        if not path or sync not in ("full", "normal"):
            raise ValueError(f"bad SQLite URL {url!r}: want sqlite:///path[?synchronous=full|normal]")
        return SQLiteStorage(path, synchronous="full" if sync == "full" else "normal")
    if url.startswith(("postgresql://", "postgres://")):
        from grpcmesh.services.eventstore.storage.postgres import PostgresStorage

        return PostgresStorage(url)
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:///path or postgresql://...")
