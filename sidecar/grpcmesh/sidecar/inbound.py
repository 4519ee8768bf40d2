"""INBOUND listener (mesh → local app): server span, concurrency limit, health passthrough.

Calls from other sidecars are relayed to the local app through a one-endpoint
:class:`~grpcmesh.sdk.cluster.Cluster` (connection reuse and the same relay as
outbound; its breaker is effectively off and it retries only calls that never
reached the app). Beyond ``max_concurrency`` calls in flight new ones get
RESOURCE_EXHAUSTED at once, so the caller's sidecar can retry another
instance. ``grpc.health.v1.Health/Check`` is relayed to the app, answered
NOT_SERVING when the app cannot be reached and while draining, so registries
stop routing here before shutdown. Errors meaning "the app was not reached"
carry the ``x-mesh-not-reached`` trailer, which lets the calling sidecar retry
even non-idempotent methods.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
from grpc_health.v1 import health_pb2

from grpcmesh.sdk.breaker import BreakerConfig
from grpcmesh.sdk.cluster import Cluster, ClusterConfig
from grpcmesh.sdk.discovery import Endpoint, MemoryResolver
from grpcmesh.sdk.headers import MESH_SOURCE
from grpcmesh.sdk.hostport import split_host_port
from grpcmesh.sdk.idempotency import MethodCatalog, fetch_reflection
from grpcmesh.sdk.retry import RetryConfig
from grpcmesh.sidecar.h2.connection import Connection, Headers, Stream
from grpcmesh.sidecar.hop import NOT_REACHED_MD
from grpcmesh.sidecar.listener import Listener, Pools
from grpcmesh.sidecar.telemetry import Telemetry

__all__ = ["HEALTH_CHECK", "NEVER_TRIPS", "Inbound", "app_cluster_config"]

HEALTH_CHECK = "/grpc.health.v1.Health/Check"
HEALTH_TIMEOUT_S = 2.0
_NOT_SERVING: bytes = health_pb2.HealthCheckResponse(
    status=health_pb2.HealthCheckResponse.NOT_SERVING
).SerializeToString()
_NO_DROP: frozenset[str] = frozenset()
_SOURCE = frozenset({MESH_SOURCE})


NEVER_TRIPS = BreakerConfig(consecutive_failures=1 << 30, min_requests=1 << 30)
"""A breaker that never opens: for the local app (the only endpoint) and for ``--bare``."""


def app_cluster_config(max_message_bytes: int) -> ClusterConfig:
    """The local app is the only endpoint: never eject it, retry only undelivered calls."""
    return ClusterConfig(
        balancer="round_robin",
        breaker=NEVER_TRIPS,
        retry=RetryConfig(max_attempts=2, retry_codes=frozenset(), budget_min_per_s=10.0),
        max_message_bytes=max_message_bytes or ClusterConfig.max_message_bytes,
    )


class Inbound(Listener):
    direction = "inbound"

    def __init__(
        self,
        service: str,
        app: str,
        *,
        telemetry: Telemetry | None,
        max_concurrency: int,
        max_message_bytes: int,
        catalog: MethodCatalog,
    ) -> None:
        pools = Pools()  # to the app: loopback, plaintext
        super().__init__(telemetry, pools, max_message_bytes=max_message_bytes, replay_limit=1 << 20)
        host, port = split_host_port(app, min_port=0)
        self.service = service
        self.app = app
        self.catalog = catalog
        self.cluster = Cluster(
            service,
            MemoryResolver({service: [Endpoint(host, port, id="app")]}),
            app_cluster_config(max_message_bytes),
            on_drain=pools.drain,
        )
        self._limit = max_concurrency
        self.draining = False
        self.rejected = 0
        # authorization (sidecar.authz): (caller connection, :path) -> PERMISSION_DENIED message or None
        self.authorize: Callable[[Connection, str], str | None] | None = None

    async def start(self) -> list[str]:
        """Connects to the app and learns its services and method kinds from reflection."""
        await self.cluster.start()
        return await self.learn()

    async def learn(self) -> list[str]:
        return await fetch_reflection(self.cluster.endpoints[0].channel(), self.catalog, timeout=2.0)

    def handle(self, stream: Stream, headers: Headers, end_stream: bool) -> None:
        health = False
        path = ""
        for k, v in headers:
            if k == ":path":
                path = v
                health = v == HEALTH_CHECK
                break
        relay = self._relay(stream, headers, end_stream, HEALTH_TIMEOUT_S if health else None)
        relay.mark_not_reached = True
        if health:
            relay.fallback = _NOT_SERVING  # the app is down or stuck: that is the answer
            if self.draining:
                relay.answer(_NOT_SERVING)
                return
        elif self.authorize is not None and (denied := self.authorize(stream.conn, path)) is not None:
            relay.refuse(grpc.StatusCode.PERMISSION_DENIED, denied)  # never reaches the app
            return
        elif self.in_flight >= self._limit:
            self.rejected += 1
            relay.fail(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"sidecar of {self.service!r}: max_concurrency {self._limit} reached",
                NOT_REACHED_MD,
                local=False,  # overload of this endpoint: the caller's sidecar may count it and go elsewhere
            )
            return
        identity = stream.conn.peer_identity
        if identity is None:
            out, rid, method = self._onward(headers, _NO_DROP, None)
        else:  # mTLS: the caller is who its certificate says, whatever its headers claim
            out, rid, method = self._onward(headers, _SOURCE, None)
            out.append((MESH_SOURCE, identity))
        if health:  # probes every second: no span, no request metrics
            relay.start(self.cluster, out, self.pools, idempotent=True, method=HEALTH_CHECK)
            return
        self._begin(relay, self.cluster, method, headers, out, rid, idempotent=False)

    async def close(self) -> None:
        await self.cluster.close()
        await super().close()
