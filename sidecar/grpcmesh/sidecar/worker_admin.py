"""The admin port of a multi-worker sidecar: each worker's private admin, merged (merge.py).

The supervisor asks every worker's admin (a unix socket of its own) at scrape time, so the
numbers are as fresh as a single sidecar's. A worker that does not answer (restarting) is
left out of that scrape and counted in ``grpcmesh_workers_unreachable``; its counters
restart from zero with it, as any restarted process's do.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from grpcmesh.sdk.hostport import split_host_port
from grpcmesh.sdk.tracing import default_trace_db
from grpcmesh.sidecar.admin import AdminServer, PageRoute, StreamRoute, json_route
from grpcmesh.sidecar.config import SidecarConfig, masked
from grpcmesh.sidecar.map_page import map_routes
from grpcmesh.sidecar.merge import merge_clusters, merge_metrics
from grpcmesh.sidecar.stat_page import SAMPLE_S, MetricsHistory, stat_routes
from grpcmesh.sidecar.trace_pages import trace_routes

__all__ = ["SupervisorAdmin"]

ASK_TIMEOUT_S = 5.0


class SupervisorAdmin:
    """Serves ``cfg.admin`` for ``len(pids())`` workers whose admins are at ``socket_path(i)``."""

    def __init__(
        self,
        cfg: SidecarConfig,
        pids: Callable[[], list[int]],
        socket_path: Callable[[int], str],
        restarts: Callable[[], int],
    ) -> None:
        self.cfg = cfg
        self._pids = pids
        self._socket_path = socket_path
        self._restarts = restarts
        self._latest = ""
        self._history = MetricsHistory(lambda: self._latest)
        self._sampler: asyncio.Task[None] | None = None
        self._server: AdminServer | None = None
        self.port = 0

    async def ask(self, index: int, path: str) -> tuple[int, bytes] | None:
        """(status, body) of worker ``index``'s admin at ``path``; None if it does not answer."""
        connector = aiohttp.UnixConnector(path=self._socket_path(index))
        timeout = aiohttp.ClientTimeout(total=ASK_TIMEOUT_S)
        try:
            async with (
                aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
                session.get(f"http://worker{path}") as resp,
            ):
                return resp.status, await resp.read()
        except (aiohttp.ClientError, OSError, TimeoutError):
            return None

    async def worker_ready(self, index: int) -> bool:
        got = await self.ask(index, "/ready")
        return got is not None and got[0] == 200

    async def _ask_all(self, path: str) -> list[tuple[int, bytes] | None]:
        return list(await asyncio.gather(*(self.ask(i, path) for i in range(len(self._pids())))))

    async def metrics_text(self) -> str:
        answers = await self._ask_all("/metrics")
        texts = [a[1].decode() for a in answers if a is not None and a[0] == 200]
        unreachable = len(answers) - len(texts)
        own = (
            "# HELP grpcmesh_workers Worker processes configured.\n# TYPE grpcmesh_workers gauge\n"
            f"grpcmesh_workers {len(answers)}.0\n"
            "# HELP grpcmesh_workers_unreachable Workers whose admin did not answer this scrape.\n"
            f"# TYPE grpcmesh_workers_unreachable gauge\ngrpcmesh_workers_unreachable {unreachable}.0\n"
            "# HELP grpcmesh_worker_restarts_total Workers restarted after they died.\n"
            "# TYPE grpcmesh_worker_restarts_total counter\n"
            f"grpcmesh_worker_restarts_total {self._restarts()}.0\n"
        )
        return merge_metrics(texts) + own

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        body = (await self.metrics_text()).encode()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _clusters(self, request: web.Request) -> web.StreamResponse:
        answers = await self._ask_all("/clusters")
        snaps: list[dict[str, Any]] = []
        pids: list[int] = []
        for answer, pid in zip(answers, self._pids(), strict=True):
            if answer is not None and answer[0] == 200:
                snaps.append(json.loads(answer[1]))
                pids.append(pid)
        merged = merge_clusters(snaps, pids)
        merged["workers"] = len(answers)
        merged["ready"] = merged["ready"] and len(snaps) == len(answers)
        return web.json_response(merged, status=200, dumps=lambda o: json.dumps(o, indent=2, sort_keys=True))

    async def _ready(self, request: web.Request) -> web.StreamResponse:
        ready = await asyncio.gather(*(self.worker_ready(i) for i in range(len(self._pids()))))
        if all(ready):
            return web.Response(text="ready\n")
        return web.Response(status=503, text=f"not ready: {ready.count(False)} of {len(ready)} workers\n")

    def _workers(self) -> dict[str, Any]:
        return {
            "workers": [{"worker": i, "pid": p} for i, p in enumerate(self._pids())],
            "restarts": self._restarts(),
        }

    async def _sample(self) -> None:
        """Feeds /stat the merged scrape every SAMPLE_S, as a single sidecar's sampler does."""
        while True:
            self._latest = await self.metrics_text()
            self._history.sample()
            await asyncio.sleep(SAMPLE_S)

    async def start(self) -> None:
        cfg = self.cfg
        host, port = split_host_port(cfg.admin, min_port=0)
        tracing = cfg.policies and cfg.tracing.enabled and cfg.tracing.exporter == "store"
        store = (cfg.tracing.endpoint or default_trace_db()) if tracing else None
        pages: dict[str, PageRoute] = {**trace_routes(store), **map_routes(store)}
        if cfg.policies:
            pages.update(stat_routes(self._history))
            self._sampler = asyncio.create_task(self._sample())
        routes = {
            "/live": lambda: (200, "text/plain", b"live\n"),
            "/config": json_route(lambda: masked(cfg)),
            "/workers": json_route(self._workers),
        }
        streams: dict[str, StreamRoute] = {
            "/metrics": self._metrics,
            "/clusters": self._clusters,
            "/ready": self._ready,
        }
        self._server = AdminServer(host, port, routes, pages=pages, streams=streams)
        await self._server.start()
        self.port = self._server.port

    async def close(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
        if self._server is not None:
            await self._server.close()
