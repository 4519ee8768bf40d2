"""OUTBOUND listener (local app → mesh): route, resolve, balance, break, retry, inject headers.

The app calls its local sidecar as if it were the upstream; this side picks
the mesh service (:mod:`router`), runs the call through that service's
:class:`~grpcmesh.sdk.cluster.Cluster` (balancer, breakers, retry budget) and
adds the mesh headers: ``x-request-id`` (kept or generated),
``traceparent``/``tracestate`` of the client span, ``baggage`` untouched, and
``x-mesh-source``. Method kinds and idempotency come from the upstream's
reflection, fetched once per proto service in the background, so the first
calls of a new method take the (always correct) stream path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc

from grpcmesh.sdk.cluster import Cluster, ClusterManager
from grpcmesh.sdk.headers import HOP_BY_HOP, MESH_SOURCE
from grpcmesh.sdk.idempotency import MethodCatalog, MethodInfo, fetch_reflection
from grpcmesh.sidecar.listener import Listener
from grpcmesh.sidecar.proxy import Ctx, Forwarder, Md
from grpcmesh.sidecar.router import RouteError, Router
from grpcmesh.sidecar.telemetry import Telemetry

__all__ = ["Outbound"]

log = logging.getLogger("grpcmesh.sidecar.outbound")

# Never forwarded from the app: connection headers, and our own key (we set it).
_DROP = HOP_BY_HOP | {MESH_SOURCE}


class Outbound(Listener):
    direction = "outbound"

    def __init__(
        self,
        source: str,
        clusters: ClusterManager,
        router: Router,
        catalog: MethodCatalog,
        forwarder: Forwarder,
        telemetry: Telemetry | None,
    ) -> None:
        self.source = source
        self.clusters = clusters
        self.router = router
        self.catalog = catalog
        super().__init__(forwarder, telemetry)
        self._learning: dict[str, asyncio.Task[None]] = {}

    def method_info(self, method: str) -> MethodInfo:
        return self.catalog.get(method)

    # -- per call --------------------------------------------------------------------
    def _headers(self, md: Md) -> tuple[Md, str]:
        """Forwardable metadata + request id, marked with this sidecar's service as the source."""
        out, rid = self._forward_headers(md, _DROP)
        out.append((MESH_SOURCE, self.source))
        return out, rid

    async def _route(self, method: str, md: Md, ctx: Ctx) -> Cluster:
        service = self.router.cached(method, md)
        if service is None:
            try:
                service = await self.router.route(method, md)
            except RouteError as err:
                await ctx.abort(grpc.StatusCode.UNAVAILABLE, str(err))
        cluster = self.clusters.get(service)
        if not self.catalog.get(method).known:
            self._learn(method, cluster)
        return cluster

    def _learn(self, method: str, cluster: Cluster) -> None:
        proto = method.split("/")[1] if method.count("/") == 2 else ""
        if not proto or proto in self._learning or proto.startswith("grpc."):
            return

        async def fetch() -> None:
            await cluster.start()
            ready = [s for s in cluster.endpoints if s.breaker.available()]
            found = (
                await fetch_reflection(ready[0].channel(), self.catalog, services=[proto]) if ready else []
            )
            if not found:  # no reflection (yet): stay on the stream path, ask again later
                await asyncio.sleep(5.0)
                self._learning.pop(proto, None)

        self._learning[proto] = asyncio.create_task(fetch(), name=f"reflect:{proto}")

    async def unary(self, method: str, info: MethodInfo, request: bytes, ctx: Ctx) -> bytes:
        md: Md = list(ctx.invocation_metadata() or ())
        cluster = await self._route(method, md, ctx)
        out, rid = self._headers(md)
        return await self._unary(cluster, method, request, md, out, rid, ctx, info.idempotent)

    async def stream(  # an async generator function: grpc checks for one
        self, method: str, info: MethodInfo, request: bytes | AsyncIterator[bytes], ctx: Ctx
    ) -> AsyncIterator[bytes]:
        md: Md = list(ctx.invocation_metadata() or ())
        cluster = await self._route(method, md, ctx)
        out, rid = self._headers(md)
        async for msg in self._stream(
            cluster, method, info.kind, request, md, out, rid, ctx, info.idempotent
        ):
            yield msg

    async def close(self) -> None:
        for task in self._learning.values():
            task.cancel()
        await asyncio.gather(*self._learning.values(), return_exceptions=True)
