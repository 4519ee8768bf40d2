"""Connection-level limits of the gateway's HTTP listener: header-read timeout and a connection cap.

aiohttp closes idle keep-alive connections (``keepalive_timeout``, our idle timeout) but
has no limit on how long a client may take to send its request headers, nor on how many
connections are open: five clients trickling headers a byte at a time, or thousands of
silent sockets, are held until the file-descriptor limit. Each connection's protocol is
therefore wrapped: request headers must be complete within ``header_timeout`` of the
connection opening or of the first byte of a later request (else ``408`` and close, as
Envoy's ``request_headers_timeout``), and beyond ``max_connections`` a new connection is
answered ``503`` and closed at once, so the peers over a limit are cut off alone.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

__all__ = ["ConnectionLimits", "GuardedRunner"]

log = logging.getLogger("grpcmesh.gateway")


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float = 10.0  # seconds to receive a request's headers
    idle_timeout: float = 60.0  # seconds a keep-alive connection may sit idle
    max_connections: int = 1024


def _raw_response(status: str, code: str, message: str) -> bytes:
    body = json.dumps({"code": code, "message": message, "details": [], "request_id": ""}).encode()
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


_BUSY = _raw_response("503 Service Unavailable", "UNAVAILABLE", "too many connections")
_SLOW = _raw_response("408 Request Timeout", "DEADLINE_EXCEEDED", "request headers took too long")


class _Guarded(asyncio.Protocol):
    """Wraps aiohttp's per-connection protocol with the header timer and the connection count.

    Relies on two attributes of aiohttp's RequestHandler: ``_request_count`` (incremented
    when a request's headers are parsed) and ``_waiter`` (set while it waits for a request).
    """

    def __init__(self, inner: RequestHandler, runner: GuardedRunner) -> None:
        self._inner = inner
        self._runner = runner
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._admitted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport subclass
        self._transport = transport
        if self._runner.open_connections >= self._runner.limits.max_connections:
            transport.write(_BUSY)
            transport.close()
            return
        self._admitted = True
        self._runner.open_connections += 1
        self._inner.connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            return
        waiting = self._inner._waiter
        if self._timer is None and waiting is not None and not waiting.done():
            self._arm()  # the first bytes of a new request on a kept-alive connection
        before = self._inner._request_count
        self._inner.data_received(data)
        if self._inner._request_count != before:
            self._disarm()

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._admitted else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._admitted:
            self._admitted = False
            self._runner.open_connections -= 1
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._runner.limits.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _too_slow(self) -> None:
        self._timer = None
        if self._transport is not None and not self._transport.is_closing():
            log.info(
                "closing a connection: request headers not received within %ss",
                self._runner.limits.header_timeout,
            )
            self._transport.write(_SLOW)
            self._transport.close()


class GuardedRunner(web.AppRunner):
    """An AppRunner whose sites serve through :class:`_Guarded` protocols."""

    def __init__(self, app: web.Application, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(app, keepalive_timeout=limits.idle_timeout, **kwargs)
        self.limits = limits
        self.open_connections = 0

    @property
    def server(self) -> Any:  # what sites call to make each connection's protocol
        inner = super().server
        if inner is None:
            return None
        factory: Callable[[], asyncio.Protocol] = lambda: _Guarded(inner(), self)  # noqa: E731
        return factory
