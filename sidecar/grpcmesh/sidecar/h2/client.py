"""The dialling side: HTTP/2 connections to one upstream endpoint, pooled.

A :class:`Pool` keeps one connection per endpoint (more when the peer's
MAX_CONCURRENT_STREAMS is reached) and reuses it for every call. When the
peer sends GOAWAY, streams it never processed are reset with REFUSED_STREAM
(safe to retry anywhere) and the next call dials a fresh connection. A
connection that cannot be made raises :class:`ConnectFailed`, which the relay
reports as "never reached" so any method may be retried on another endpoint.
"""

from __future__ import annotations

import asyncio
import ssl

from grpcmesh.sidecar.h2.connection import Connection, Headers, Stream, StreamOwner, snapshot
from grpcmesh.sidecar.h2.frames import ErrorCode
from grpcmesh.sidecar.h2.states import Event

__all__ = ["ClientConnection", "ConnectFailed", "Pool"]

_MAX_STREAM_ID = (1 << 31) - 1


class ConnectFailed(Exception):
    """No connection to the endpoint could be made (nothing was sent)."""


class ClientConnection(Connection):
    client = True

    def __init__(self, pool: Pool) -> None:
        super().__init__()
        self._pool = pool
        self.next_id = 1

    def usable(self) -> bool:
        return (
            not self.closed
            and self.goaway_received is None
            and not self.goaway_sent
            and len(self.streams) < self.peer_max_streams
            and self.next_id < _MAX_STREAM_ID
        )

    def open(self, owner: StreamOwner, headers: Headers, end_stream: bool) -> Stream:
        sid = self.next_id
        self.next_id += 2
        stream = Stream(self, sid, owner)
        self.streams[sid] = stream
        self.write_headers(stream, headers, end_stream)
        self.probe_soon()
        return stream

    def _max_known_stream(self) -> int:
        return self.next_id - 2

    def on_goaway(self, last_stream_id: int, code: int, debug: bytes) -> None:
        self.goaway_received = last_stream_id
        for sid, stream in list(self.streams.items()):
            if sid > last_stream_id:  # never processed by the peer: the owner may retry anywhere
                stream.close(Event.RECV_RST_STREAM)
                if stream.owner is not None:
                    stream.owner.on_reset(stream, ErrorCode.REFUSED_STREAM)
        self._close_if_idle()

    def on_closed(self) -> None:
        self._pool.forget(self)


class Pool:
    """Connections to one ``host:port``, dialled on demand and reused."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        connect_timeout: float = 5.0,
        tls: ssl.SSLContext | None = None,
        server_name: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.target = f"{host}:{port}"
        self._connect_timeout = connect_timeout
        self._tls = tls
        self._server_name = server_name  # the identity the peer's certificate must prove
        self._conns: list[ClientConnection] = []
        self._dialling: asyncio.Future[ClientConnection] | None = None
        self.closed = False

    def ready(self) -> ClientConnection | None:
        """A connected connection with room for one more stream, or None (then :meth:`connect`)."""
        for conn in self._conns:
            if conn.usable():
                return conn
        return None

    async def connect(self) -> ClientConnection:
        """A usable connection, dialling one if needed (one dial at a time per pool)."""
        conn = self.ready()
        if conn is not None:
            return conn
        if self.closed:
            raise ConnectFailed(f"connection pool to {self.target} is closed")
        if self._dialling is None:
            self._dialling = asyncio.ensure_future(self._dial())
        dialling = self._dialling
        try:
            conn = await asyncio.shield(dialling)
        finally:
            if dialling.done() and self._dialling is dialling:
                self._dialling = None
        if conn.closed or conn.goaway_received is not None:
            # lost (a failed TLS handshake, a peer that closes at once) or refusing streams before
            # this caller resumed: a stream opened on it would never be reset by anyone
            raise ConnectFailed(f"connection to {self.target} closed before the call started")
        return conn

    async def _dial(self) -> ClientConnection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: ClientConnection(self),
                    self.host,
                    self.port,
                    ssl=self._tls,
                    server_hostname=self._server_name if self._tls is not None else None,
                )
        except (OSError, TimeoutError) as err:
            raise ConnectFailed(f"failed to connect to {self.target}: {err or type(err).__name__}") from None
        self._conns.append(conn)
        return conn

    def forget(self, conn: ClientConnection) -> None:
        if conn in self._conns:
            self._conns.remove(conn)

    def snapshot(self) -> dict[str, int]:
        return snapshot(self._conns)

    def drain(self) -> None:
        """No new streams; each connection closes once its streams are done."""
        self.closed = True
        for conn in list(self._conns):
            conn.shutdown()

    def close(self) -> None:
        self.closed = True
        for conn in list(self._conns):
            conn.close()
        self._conns.clear()
