"""The accepting side: HTTP/2 connections from callers, each new stream handed to a handler.

The handler (a listener) receives ``(stream, headers, end_stream)`` and sets
``stream.owner``; everything after that is the owner's business. While
shutting down, connections send GOAWAY and new streams are refused with
REFUSED_STREAM, which gRPC clients retry transparently elsewhere.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any

from grpcmesh.sdk.waiting import wait_set
from grpcmesh.sidecar.h2.connection import Connection, Headers, Stream, snapshot
from grpcmesh.sidecar.h2.frames import ErrorCode, H2Error

__all__ = ["H2Server", "ServerConnection", "StreamHandler"]

StreamHandler = Callable[[Stream, Headers, bool], None]


def peer_identity(peercert: Any) -> str | None:
    """The first DNS subjectAltName of a verified client certificate (mTLS), else None."""
    for kind, value in (peercert or {}).get("subjectAltName", ()):
        if kind == "DNS":
            return str(value)
    return None


class ServerConnection(Connection):
    client = False

    def __init__(self, handler: StreamHandler, server: H2Server) -> None:
        super().__init__()
        self._handler = handler
        self._server = server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.peer_identity = peer_identity(transport.get_extra_info("peercert"))  # once per connection
        self._server.connections.add(self)
        if self._server.stopping:
            self.shutdown()

    def on_closed(self) -> None:
        self._server.forget(self)

    def new_stream(self, sid: int, headers: Headers, end_stream: bool) -> None:
        if not sid & 1:
            raise H2Error(ErrorCode.PROTOCOL_ERROR, f"client opened even stream id {sid}")
        self.last_peer_stream = sid
        stream = Stream(self, sid, None)
        stream.remote_closed = end_stream
        if self.goaway_sent:
            self.streams[sid] = stream
            stream.reset(ErrorCode.REFUSED_STREAM)
            return
        self.streams[sid] = stream
        method = path = None
        for k, v in headers:
            if k == ":path":
                path = v
            elif k == ":method":
                method = v
            elif not k.startswith(":"):
                break
        if method != "POST" or not path:
            stream.reset(ErrorCode.PROTOCOL_ERROR)
            return
        self._handler(stream, headers, end_stream)


class H2Server:
    """A listening socket whose connections hand their streams to ``handler``."""

    def __init__(self, handler: StreamHandler) -> None:
        self._handler = handler
        self.connections: set[ServerConnection] = set()
        self.stopping = False
        self._idle = asyncio.Event()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def listen(
        self, host: str, port: int, *, reuse_port: bool = False, tls: ssl.SSLContext | None = None
    ) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: ServerConnection(self._handler, self),
            host.strip("[]") or None,
            port,
            reuse_port=reuse_port or None,
            backlog=1024,
            ssl=tls,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def forget(self, conn: ServerConnection) -> None:
        self.connections.discard(conn)
        if self.stopping and not self.connections:
            self._idle.set()

    def snapshot(self) -> dict[str, int]:
        """Open caller connections and streams (for /clusters)."""
        return snapshot(self.connections)

    async def stop(self, grace: float) -> None:
        """Stops accepting, GOAWAY on every connection, waits up to ``grace`` for streams to end."""
        self.stopping = True
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.shutdown()
        if self.connections:
            await wait_set(self._idle, grace)
        for conn in list(self.connections):
            conn.close()
        self.connections.clear()
