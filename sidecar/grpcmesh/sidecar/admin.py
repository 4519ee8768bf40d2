"""Admin HTTP endpoint (default 127.0.0.1:15090): /ready /live /metrics /clusters /config.

Served by ``aiohttp.web`` (a dependency already, for the gateway) rather than a
parser of our own: a port open to probes, Prometheus and operators gets a
maintained HTTP/1.1 implementation with its header size limits. Each route is a
callable returning (status, content type, body); a prefix route (``/traces/``)
receives the rest of the path. A page route (``/traces``, ``/map``...) gets the
rest of the path and the query string and runs in a thread, as it reads files.
A stream route (``/tap``) writes a response body as long as the client reads it.
Only GET and HEAD; an unknown path lists the routes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

__all__ = ["AdminServer", "PageRoute", "PrefixRoute", "Route", "StreamRoute", "json_route"]

log = logging.getLogger("grpcmesh.sidecar.admin")

Route = Callable[[], tuple[int, str, bytes]]
PrefixRoute = Callable[[str], tuple[int, str, bytes]]
PageRoute = Callable[[str, Mapping[str, list[str]]], tuple[int, str, bytes]]
StreamRoute = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_route(produce: Callable[[], Any], ok: Callable[[], bool] = lambda: True) -> Route:
    def route() -> tuple[int, str, bytes]:
        body = json.dumps(produce(), indent=2, sort_keys=True, default=str).encode()
        return (200 if ok() else 503), "application/json", body

    return route


class AdminServer:
    def __init__(
        self,
        host: str,
        port: int,
        routes: dict[str, Route],
        prefixes: dict[str, PrefixRoute] | None = None,
        *,
        pages: dict[str, PageRoute] | None = None,
        streams: dict[str, StreamRoute] | None = None,
        unix: str | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._routes = routes
        self._prefixes = prefixes or {}
        self._pages = pages or {}
        self._streams = streams or {}
        self._unix = unix  # a worker's private admin (workers.py): a unix socket, not host:port
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        self._runner = runner
        if self._unix is not None:
            await web.UnixSite(runner, self._unix).start()
            return
        await web.TCPSite(runner, self._host, self._port).start()
        self.port = int(runner.addresses[0][1])
        log.info("admin on http://%s:%d", self._host, self.port)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _route(self, path: str) -> Route | None:
        route = self._routes.get(path)
        if route is not None:
            return route
        for prefix, handler in self._prefixes.items():
            if path.startswith(prefix) and len(path) > len(prefix):
                rest = path[len(prefix) :]
                return lambda: handler(rest)
        return None

    def _page(self, path: str) -> tuple[PageRoute, str] | None:
        """The page route for ``path`` (``/map`` or ``/traces/<rest>``) and the rest of the path."""
        for prefix, page in self._pages.items():
            if path == prefix or path.startswith(prefix + "/"):
                return page, path[len(prefix) + 1 :]
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        stream = self._streams.get(request.path)
        page = self._page(request.path)
        if request.method not in ("GET", "HEAD"):
            status, ctype, body = 405, "text/plain", b"only GET\n"
        elif stream is not None:
            return await stream(request)
        elif page is not None:
            query = {k: request.query.getall(k) for k in request.query}
            status, ctype, body = await asyncio.to_thread(page[0], page[1], query)
        else:
            route = self._route(request.path)
            if route is None:
                known = sorted([*self._routes, *self._pages, *self._streams])
                status, ctype, body = 404, "text/plain", ("\n".join(known) + "\n").encode()
            else:
                status, ctype, body = route()
        return web.Response(status=status, body=body, headers={"Content-Type": ctype})
