"""OUTBOUND listener (local app → mesh): route, resolve, balance, break, retry, inject headers.

The app calls its local sidecar as if it were the upstream; this side picks
the mesh service (:mod:`router`: ``x-mesh-service``, then the ``:authority``
the app dialled, then ``[routes]`` and the proto service name), runs the call
through that service's :class:`~grpcmesh.sdk.cluster.Cluster` (balancer,
breakers, retry budget) via a :class:`~grpcmesh.sidecar.proxy.Relay`, and adds
the mesh headers: ``x-request-id`` (kept or generated), ``traceparent`` /
``tracestate`` of the client span, ``baggage`` untouched, ``x-mesh-source``.
Idempotency levels come from the upstream's reflection, fetched once per
proto service in the background; until then a method counts as
non-idempotent (retried only when the request never reached an app).
"""

from __future__ import annotations

import asyncio
import logging

import grpc

from grpcmesh.sdk.cluster import Cluster, ClusterManager
from grpcmesh.sdk.headers import MESH_SOURCE
from grpcmesh.sdk.idempotency import MethodCatalog, fetch_reflection
from grpcmesh.sidecar.h2.connection import Headers, Stream
from grpcmesh.sidecar.listener import Listener, Pools
from grpcmesh.sidecar.proxy import Relay
from grpcmesh.sidecar.router import RouteError, Router
from grpcmesh.sidecar.telemetry import Telemetry

__all__ = ["Outbound"]

log = logging.getLogger("grpcmesh.sidecar.outbound")

_DROP = frozenset({MESH_SOURCE})  # our own key: we set it


class Outbound(Listener):
    direction = "outbound"

    def __init__(
        self,
        source: str,
        clusters: ClusterManager,
        router: Router,
        catalog: MethodCatalog,
        telemetry: Telemetry | None,
        pools: Pools,
        *,
        max_message_bytes: int,
        replay_limit: int,
    ) -> None:
        super().__init__(telemetry, pools, max_message_bytes=max_message_bytes, replay_limit=replay_limit)
        self.source = source
        self._source_header = (MESH_SOURCE, source)
        self.clusters = clusters
        self.router = router
        self.catalog = catalog
        self._learning: dict[str, asyncio.Task[None]] = {}

    def handle(self, stream: Stream, headers: Headers, end_stream: bool) -> None:
        relay = self._relay(stream, headers, end_stream)
        method = next((v for k, v in headers if k == ":path"), "")
        service = self.router.cached(method, headers)
        if service is None:
            self._spawn(self._route_later(relay, method, headers))
            return
        cluster = self.clusters.get(service)
        if not cluster.started:
            self._spawn(self._start_later(relay, cluster, method, headers))
            return
        self._go(relay, cluster, method, headers)

    async def _route_later(self, relay: Relay, method: str, headers: Headers) -> None:
        try:
            service = await self.router.route(method, headers)
        except RouteError as no_route:  # one name per clause: compiled code types each
            relay.fail(grpc.StatusCode.UNAVAILABLE, str(no_route))
            return
        except Exception as err:  # discovery itself failed: the caller must still get an answer
            log.warning("routing %s failed: %s", method, err)
            relay.fail(grpc.StatusCode.UNAVAILABLE, f"no route for {method!r}: discovery failed: {err}")
            return
        await self._start_later(relay, self.clusters.get(service), method, headers)

    async def _start_later(self, relay: Relay, cluster: Cluster, method: str, headers: Headers) -> None:
        try:
            await cluster.start()
        except Exception as err:
            log.warning("resolving %s failed: %s", cluster.service, err)
            relay.fail(grpc.StatusCode.UNAVAILABLE, f"service {cluster.service!r}: discovery failed: {err}")
            return
        self._go(relay, cluster, method, headers)

    def _go(self, relay: Relay, cluster: Cluster, method: str, headers: Headers) -> None:
        info = self.catalog.get(method)
        if not info.known:
            self._learn(method, cluster)
        out, rid, _ = self._onward(headers, _DROP, cluster.service)
        out.append(self._source_header)
        self._begin(relay, cluster, method, headers, out, rid, idempotent=info.idempotent)

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
            if not found:  # no reflection (yet): non-idempotent meanwhile, ask again later
                await asyncio.sleep(5.0)
                self._learning.pop(proto, None)

        self._learning[proto] = asyncio.create_task(fetch(), name=f"reflect:{proto}")

    async def close(self) -> None:
        for task in self._learning.values():
            task.cancel()
        await asyncio.gather(*self._learning.values(), return_exceptions=True)
        await super().close()
