"""INBOUND listener (mesh → local app): server span, concurrency limit, health passthrough.

Calls from other sidecars are forwarded to the local app through a one-endpoint
:class:`~grpcmesh.sdk.cluster.Cluster` (channel reuse and the same forwarding
code as outbound; its breaker is effectively off and it retries only calls
that never reached the app). Beyond ``max_concurrency`` calls in flight new
ones get RESOURCE_EXHAUSTED at once, so the caller's sidecar can retry another
instance. ``grpc.health.v1.Health/Check`` is answered by asking the app, and
NOT_SERVING while draining, so registries stop routing here before shutdown.
Errors meaning "the app was not reached" carry the ``x-mesh-not-reached``
trailer, which lets the calling sidecar retry even non-idempotent methods.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from grpc_health.v1 import health_pb2

from grpcmesh.sdk.breaker import BreakerConfig
from grpcmesh.sdk.cluster import Cluster, ClusterConfig
from grpcmesh.sdk.discovery import Endpoint, MemoryResolver
from grpcmesh.sdk.headers import HOP_BY_HOP
from grpcmesh.sdk.idempotency import STREAMING_UNKNOWN, CallKind, MethodCatalog, MethodInfo, fetch_reflection
from grpcmesh.sdk.retry import NOT_REACHED, RetryConfig, never_reached
from grpcmesh.sidecar.listener import Listener
from grpcmesh.sidecar.proxy import Ctx, Forwarder, Md, relay_error
from grpcmesh.sidecar.telemetry import Telemetry

__all__ = ["HEALTH_CHECK", "Inbound", "app_cluster_config"]

HEALTH_CHECK = "/grpc.health.v1.Health/Check"
_HEALTH_INFO = MethodInfo(CallKind.UNARY_UNARY, idempotent=True)
_NOT_SERVING: bytes = health_pb2.HealthCheckResponse(
    status=health_pb2.HealthCheckResponse.NOT_SERVING
).SerializeToString()
_NOT_REACHED_MD: Md = [(NOT_REACHED, "1")]


def app_cluster_config(max_message_bytes: int) -> ClusterConfig:
    """The local app is the only endpoint: never eject it, retry only undelivered calls."""
    return ClusterConfig(
        balancer="round_robin",
        breaker=BreakerConfig(consecutive_failures=1 << 30, min_requests=1 << 30),
        retry=RetryConfig(max_attempts=2, retry_codes=frozenset(), budget_min_per_s=10.0),
        max_message_bytes=max_message_bytes,
    )


class Inbound(Listener):
    direction = "inbound"

    def __init__(
        self,
        service: str,
        app: str,
        *,
        forwarder: Forwarder,
        telemetry: Telemetry | None,
        max_concurrency: int,
        max_message_bytes: int,
        catalog: MethodCatalog,
    ) -> None:
        host, _, port = app.rpartition(":")
        self.service = service
        self.app = app
        self.catalog = catalog
        self.cluster = Cluster(
            service,
            MemoryResolver({service: [Endpoint(host, int(port), id="app")]}),
            app_cluster_config(max_message_bytes),
        )
        super().__init__(forwarder, telemetry)
        self._limit = max_concurrency
        self.draining = False
        self.rejected = 0

    async def start(self) -> list[str]:
        """Connects to the app and learns its services and method kinds from reflection."""
        await self.cluster.start()
        return await self.learn()

    async def learn(self) -> list[str]:
        return await fetch_reflection(self.cluster.endpoints[0].channel(), self.catalog, timeout=2.0)

    def method_info(self, method: str) -> MethodInfo:
        if method == HEALTH_CHECK:
            return _HEALTH_INFO
        return self.catalog.get(method) if self.catalog else STREAMING_UNKNOWN

    async def _admit(self, ctx: Ctx) -> None:
        if self.in_flight >= self._limit:
            self.rejected += 1
            await ctx.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"sidecar of {self.service!r}: max_concurrency {self._limit} reached",
                tuple(_NOT_REACHED_MD),
            )

    async def unary(self, method: str, info: MethodInfo, request: bytes, ctx: Ctx) -> bytes:
        if method == HEALTH_CHECK:
            return await self._health(request, ctx)
        await self._admit(ctx)
        md: Md = list(ctx.invocation_metadata() or ())
        out, rid = self._forward_headers(md, HOP_BY_HOP)
        return await self._unary(self.cluster, method, request, md, out, rid, ctx, False)

    async def stream(  # an async generator function: grpc checks for one
        self, method: str, info: MethodInfo, request: bytes | AsyncIterator[bytes], ctx: Ctx
    ) -> AsyncIterator[bytes]:
        await self._admit(ctx)
        md: Md = list(ctx.invocation_metadata() or ())
        out, rid = self._forward_headers(md, HOP_BY_HOP)
        async for msg in self._stream(self.cluster, method, info.kind, request, md, out, rid, ctx, False):
            yield msg

    async def _health(self, request: bytes, ctx: Ctx) -> bytes:
        """Asks the app; NOT_SERVING while draining or when the app does not answer."""
        if self.draining:
            return _NOT_SERVING
        channel = self.cluster.endpoints[0].channel()
        try:
            reply: bytes = await channel.unary_unary(HEALTH_CHECK, None, None)(request, timeout=2.0)
        except grpc.aio.AioRpcError as err:
            if never_reached(err) or err.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
                return _NOT_SERVING  # the app is down or stuck: that is the answer
            await relay_error(ctx, err)  # NOT_FOUND for an unknown service, a decode error, ...
        return reply

    async def close(self) -> None:
        await self.cluster.close()
