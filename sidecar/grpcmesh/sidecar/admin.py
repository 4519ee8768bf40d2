"""Admin HTTP endpoint (default 127.0.0.1:15090): /ready /live /metrics /clusters /config.

A deliberately tiny HTTP/1.1 server on asyncio streams: a handful of GET
routes read by probes, Prometheus and operators do not justify a web framework
in the proxy process. Each route is a callable returning (status, content
type, body); a prefix route (``/traces/``) receives the rest of the path.
Connections are closed after one response.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

__all__ = ["AdminServer", "PrefixRoute", "Route", "json_route"]

log = logging.getLogger("grpcmesh.sidecar.admin")

Route = Callable[[], tuple[int, str, bytes]]
PrefixRoute = Callable[[str], tuple[int, str, bytes]]
_REASONS = {
    200: "OK",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
    400: "Bad Request",
}


def json_route(produce: Callable[[], Any], ok: Callable[[], bool] = lambda: True) -> Route:
    def route() -> tuple[int, str, bytes]:
        body = json.dumps(produce(), indent=2, sort_keys=True, default=str).encode()
        return (200 if ok() else 503), "application/json", body

    return route


class AdminServer:
    def __init__(
        self, host: str, port: int, routes: dict[str, Route], prefixes: dict[str, PrefixRoute] | None = None
    ) -> None:
        self._host = host
        self._port = port
        self._routes = routes
        self._prefixes = prefixes or {}
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self._host, self._port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("admin on http://%s:%d", self._host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await self._server.wait_closed()

    def _prefix_route(self, path: str) -> Route | None:
        for prefix, handler in self._prefixes.items():
            if path.startswith(prefix) and len(path) > len(prefix):
                rest = path[len(prefix) :]
                return lambda: handler(rest)
        return None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5.0):
                head = await reader.readuntil(b"\r\n\r\n")
            parts = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            if len(parts) != 3:
                status, ctype, body = 400, "text/plain", b"bad request\n"
            elif parts[0] not in ("GET", "HEAD"):
                status, ctype, body = 405, "text/plain", b"only GET\n"
            else:
                path = parts[1].split("?", 1)[0]
                route = self._routes.get(path) or self._prefix_route(path)
                if route is None:
                    listing = "\n".join(sorted(self._routes)) + "\n"
                    status, ctype, body = 404, "text/plain", listing.encode()
                else:
                    status, ctype, body = route()
                if parts[0] == "HEAD":
                    body = b""
            writer.write(
                f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            pass
        except Exception:
            log.exception("admin request failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
