"""The accepting side: HTTP/2 connections from callers, each new stream handed to a handler.

The handler (a listener) receives ``(stream, headers, end_stream)`` of a
well-formed gRPC request and sets ``stream.owner``; everything after that is
the owner's business. A malformed request (RFC 9113 §8) is reset with
PROTOCOL_ERROR, one over MAX_CONCURRENT_STREAMS with REFUSED_STREAM, and one
that is not gRPC gets grpc-go's answer (HTTP 415 or 405 with a grpc-status)
before any handler sees it. While
shutting down, connections send GOAWAY and new streams are refused with
REFUSED_STREAM, which gRPC clients retry transparently elsewhere.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any

import grpc

from grpcmesh.sdk.waiting import wait_set
from grpcmesh.sidecar.h2.connection import Connection, Headers, Stream, snapshot
from grpcmesh.sidecar.h2.frames import ErrorCode, H2Error, StreamError
from grpcmesh.sidecar.h2.grpcwire import status_trailers
from grpcmesh.sidecar.h2.limits import H2Limits
from grpcmesh.sidecar.h2.states import NEXT, Event, State
from grpcmesh.sidecar.h2.validate import Request, check_request, grpc_refusal

__all__ = ["H2Server", "ServerConnection", "StreamHandler"]

# What HEADERS (with END_STREAM) does to an idle stream, read from the §5.1 table once.
_AFTER_HEADERS = NEXT[State.IDLE][Event.RECV_HEADERS]
_AFTER_HEADERS_END = NEXT[_AFTER_HEADERS][Event.RECV_END_STREAM]

StreamHandler = Callable[[Stream, Headers, bool], None]


def peer_identity(peercert: Any) -> str | None:
    """The service a verified client certificate names (mTLS), None without one.

    The first DNS subjectAltName, else the name in a ``spiffe://<td>/service/<name>`` URI SAN, else
    ``""``: a certificate that names no service still proves the caller is not who its own
    ``x-mesh-source`` header may claim, so that header must never pass.
    """
    if not peercert:
        return None
    sans = peercert.get("subjectAltName", ())
    for kind, value in sans:
        if kind == "DNS":
            return str(value)
    for kind, value in sans:
        if kind == "URI" and str(value).startswith("spiffe://") and "/service/" in str(value):
            return str(value).rsplit("/service/", 1)[1]
    return ""


class ServerConnection(Connection):
    client = False

    def __init__(self, handler: StreamHandler, server: H2Server) -> None:
        super().__init__(server.limits)
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

    def new_stream(
        self, sid: int, headers: Headers, end_stream: bool, malformed: str | None, size: int
    ) -> None:
        """A caller's request: checked (§5.1.1, §5.1.2, §8, gRPC) before the handler sees it."""
        if not sid & 1:
            raise H2Error(ErrorCode.PROTOCOL_ERROR, f"client opened even stream id {sid}")
        self.opened(sid)
        stream = Stream(self, sid, None)
        self.streams[sid] = stream
        stream.state = _AFTER_HEADERS_END if end_stream else _AFTER_HEADERS
        if self.goaway_sent:
            stream.reset(ErrorCode.REFUSED_STREAM)
            return
        if len(self.streams) > self.limits.max_concurrent_streams:
            raise StreamError(sid, ErrorCode.REFUSED_STREAM, "over MAX_CONCURRENT_STREAMS")
        request = Request()
        problem = malformed or check_request(headers, request)
        if problem is not None:
            raise StreamError(sid, ErrorCode.PROTOCOL_ERROR, f"malformed request: {problem}")
        stream.content_length = request.content_length
        if end_stream and request.content_length:
            raise StreamError(sid, ErrorCode.PROTOCOL_ERROR, "content-length but no DATA")
        refusal = grpc_refusal(request)
        if refusal is not None:
            _answer_early(stream, *refusal)
            return
        if self.header_bytes + size > self.limits.max_header_bytes_per_connection:
            raise StreamError(sid, ErrorCode.ENHANCE_YOUR_CALM, "header bytes of open streams over the limit")
        stream.header_bytes = size
        self.header_bytes += size
        self._handler(stream, headers, end_stream)


def _answer_early(stream: Stream, http_status: int, grpc_status: grpc.StatusCode, message: str) -> None:
    """What grpc-go answers a request it will not serve: an HTTP status and grpc-status.

    A short text body follows for the HTTP clients such requests come from. The
    request body, if any, is read and dropped (the stream has no owner), so its
    content-length is still checked.
    """
    headers: Headers = [
        (":status", str(http_status)),
        ("content-type", "text/plain; charset=utf-8"),
        *status_trailers(grpc_status, message),
    ]
    stream.send_headers(headers)
    stream.send_data(message.encode() + b"\n", end_stream=True)


class H2Server:
    """A listening socket whose connections hand their streams to ``handler``."""

    def __init__(self, handler: StreamHandler, limits: H2Limits | None = None) -> None:
        self._handler = handler
        self.limits = limits or H2Limits()
        self.connections: set[ServerConnection] = set()
        self.stopping = False
        self._idle = asyncio.Event()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def listen(
        self,
        host: str,
        port: int,
        *,
        reuse_port: bool = False,
        tls: ssl.SSLContext | None = None,
        limits: H2Limits | None = None,
    ) -> int:
        if limits is not None:
            self.limits = limits
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: ServerConnection(self._handler, self),
            host.strip("[]") or None,
            port,
            reuse_port=reuse_port or None,
            backlog=1024,
            ssl=tls,
        )
        self.port = _bound_port(self._server)
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


def _bound_port(server: Any) -> int:
    """The port a server listens on. ``Any``: uvloop's ``sockets`` is a list where asyncio's is a
    tuple, and compiled code would check the type the stubs declare."""
    return int(server.sockets[0].getsockname()[1])
