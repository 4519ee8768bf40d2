"""The sidecar process: two gRPC listeners, the admin endpoint, discovery and drain.

Composition root of the sidecar: builds the resolver, clusters, router,
telemetry and the OUTBOUND / INBOUND listeners from one :class:`SidecarConfig`,
then runs until SIGTERM: deregister from discovery, mark NOT_SERVING, stop
accepting, let in-flight calls finish up to ``drain_timeout_s``, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import signal
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from grpcmesh.sdk.cluster import ClusterConfig, ClusterManager
from grpcmesh.sdk.discovery import Endpoint, MemoryResolver, Resolver, resolver_from_url
from grpcmesh.sdk.discovery.consul_client import consul_client
from grpcmesh.sdk.hostport import split_host_port
from grpcmesh.sdk.idempotency import MethodCatalog
from grpcmesh.sdk.registration import Registration
from grpcmesh.sdk.retry import RetryConfig
from grpcmesh.sdk.tracing import configure_tracing, default_trace_db
from grpcmesh.sdk.waiting import cancel_and_wait
from grpcmesh.sidecar.admin import AdminServer, StreamRoute, json_route
from grpcmesh.sidecar.authz import InboundAuthz
from grpcmesh.sidecar.cluster_metrics import ClusterCollector
from grpcmesh.sidecar.config import SidecarConfig, masked
from grpcmesh.sidecar.inbound import NEVER_TRIPS, Inbound
from grpcmesh.sidecar.listener import Listener, Pools
from grpcmesh.sidecar.map_page import map_routes
from grpcmesh.sidecar.outbound import Outbound
from grpcmesh.sidecar.router import Router
from grpcmesh.sidecar.stat_page import MetricsHistory, stat_routes
from grpcmesh.sidecar.telemetry import Telemetry
from grpcmesh.sidecar.tls import ReloadingTls, channel_credentials, server_name_option
from grpcmesh.sidecar.trace_pages import trace_routes

__all__ = ["Sidecar", "build_resolver", "register", "run"]

log = logging.getLogger("grpcmesh.sidecar")

Deregister = Callable[[], Awaitable[None]]


def build_resolver(cfg: SidecarConfig) -> Resolver:
    """The ONE place discovery is chosen: Consul, a watched registry file, or inline endpoints.

    Consul and the registry file go through :func:`resolver_from_url`, so the
    sidecar and the SDK's direct mode read the same URLs and the same file format.
    """
    if cfg.consul:
        return resolver_from_url(cfg.consul)
    if cfg.endpoints_file:
        return resolver_from_url(cfg.endpoints_file)
    return MemoryResolver({name: [_endpoint(t) for t in targets] for name, targets in cfg.endpoints.items()})


def _endpoint(target: str) -> Endpoint:
    return Endpoint(*split_host_port(target, min_port=0))


async def agent_address(cfg: SidecarConfig) -> str:
    """The local Consul agent's own LAN address (``Member.Addr`` of /v1/agent/self).

    A wildcard inbound (``0.0.0.0``, the shipped default) is registered under it: that is
    the address other machines reach this host at, as Consul itself advertises it.
    Registering 127.0.0.1 would send every other host's calls to itself.
    """
    client = consul_client(cfg.consul or "", token=cfg.consul_token)
    try:
        me: dict[str, Any] = await client.agent.self()
    finally:
        await client.close()
    return str(me["Member"]["Addr"])


async def register(cfg: SidecarConfig, grpc_services: list[str], inbound_port: int) -> Deregister:
    """Registers this instance in Consul (in the background, retried); no-op without Consul.

    The registered address is the INBOUND listener (a wildcard one under the local agent's
    address), so callers reach the app through this sidecar, and Consul's gRPC health check
    hits the inbound's Health/Check, which asks the app. Returns the coroutine that deregisters.
    """

    async def nothing() -> None:
        return None

    if not cfg.consul:
        return nothing
    host, port = split_host_port(cfg.advertise or cfg.inbound, min_port=0)
    if not cfg.advertise:
        port = inbound_port
    made: list[Registration] = []

    async def registration() -> Registration:
        if not made:
            address = await agent_address(cfg) if host in ("0.0.0.0", "::", "") else host
            made.append(
                Registration(
                    cfg.service,
                    address,
                    port,
                    consul_url=cfg.consul or "",
                    token=cfg.consul_token,
                    grpc_services=grpc_services or None,  # None: read through the inbound (reflection)
                    # mTLS inbound: Consul has no client certificate, so it checks the app's health
                    # directly (the agent runs on the same host, as Consul agents do)
                    check_target=cfg.app if cfg.tls.enabled else None,
                    resync=30.0,
                )
            )
        return made[0]

    async def keep_trying() -> None:
        while True:
            try:
                await (await registration()).register()
                return
            except asyncio.CancelledError:
                raise
            except Exception as err:  # agent or app not up yet
                log.warning("consul registration of %s failed (%s); retrying", cfg.service, err)
                await asyncio.sleep(2.0)

    task = asyncio.create_task(keep_trying())

    async def deregister() -> None:
        await cancel_and_wait(task)
        if not made:
            return
        try:
            await made[0].deregister()
        finally:
            await made[0].close()

    return deregister


def _bare(cfg: ClusterConfig) -> ClusterConfig:
    """Policies off: round robin, no retries, a breaker that never trips."""
    return dataclasses.replace(
        cfg,
        balancer="round_robin",
        retry=RetryConfig(max_attempts=1),
        breaker=NEVER_TRIPS,
    )


class Sidecar:
    def __init__(
        self,
        cfg: SidecarConfig,
        *,
        resolver: Resolver | None = None,
        worker: int | None = None,
        admin_unix: str | None = None,
    ) -> None:
        """``worker``: one of ``cfg.workers`` processes (workers.py), whose supervisor registers
        in discovery and serves the admin port; this one's admin is on ``admin_unix``."""
        self.cfg = cfg
        self.worker = worker
        self._admin_unix = admin_unix
        self.resolver = resolver or build_resolver(cfg)
        self.registry = CollectorRegistry()
        provider = None
        if cfg.policies and cfg.tracing.enabled:
            provider = configure_tracing(
                f"{cfg.service}-sidecar",
                sample_ratio=cfg.tracing.sample_ratio,
                exporter=cfg.tracing.exporter,
                endpoint=cfg.tracing.endpoint,
                set_global=False,
            )
        self.provider = provider
        self.telemetry = (
            Telemetry(cfg.service, registry=self.registry, provider=provider, access_log=cfg.access_log)
            if cfg.policies
            else None
        )

        def cluster_config(service: str) -> ClusterConfig:
            c = cfg.cluster_for(service)
            if cfg.max_message_bytes:
                c = dataclasses.replace(c, max_message_bytes=cfg.max_message_bytes)
            if cfg.tls.enabled:
                c = dataclasses.replace(c, channel_options=(*c.channel_options, server_name_option(service)))
            return c if cfg.policies else _bare(c)

        self.certs = ReloadingTls(cfg.tls, self.registry) if cfg.tls.enabled else None
        self.tls = self.certs.front if self.certs else None
        self.pools = Pools(self.certs.client if self.certs else None)
        if self.certs is not None:
            self.certs.on_client = self.pools.retls  # rotated certificate: upstream pools redial
        self.clusters = ClusterManager(
            self.resolver,
            cluster_config,
            on_breaker_change=self.telemetry.on_breaker_change if self.telemetry else None,
            on_drain=self.pools.drain,
            credentials=channel_credentials(cfg.tls) if cfg.tls.enabled else None,
        )
        self.outbound = Outbound(
            cfg.service,
            self.clusters,
            Router(self.resolver, cfg.routes, own_authorities=(cfg.outbound,)),
            MethodCatalog(cfg.methods),
            self.telemetry,
            self.pools,
            max_message_bytes=cfg.max_message_bytes,
            replay_limit=cfg.cluster.retry.stream_replay_bytes,
        )
        self.inbound = Inbound(
            cfg.service,
            cfg.app,
            telemetry=self.telemetry,
            max_concurrency=cfg.max_concurrency,
            max_message_bytes=cfg.max_message_bytes,
            catalog=MethodCatalog(cfg.methods),
        )
        certs = self.certs
        self.authz = (
            InboundAuthz(
                cfg.authz_policy, cfg.service, self.registry, lambda: certs.identity if certs else ""
            )
            if cfg.authz_policy
            else None
        )
        if self.authz is not None:
            self.inbound.authorize = self.authz.check
        self.registry.register(
            ClusterCollector(
                lambda: [*self.clusters, self.inbound.cluster],
                lambda: {"outbound": self.outbound.in_flight, "inbound": self.inbound.in_flight},
            )
        )
        self.ready = False
        self.grpc_services: list[str] = []
        self.ports: dict[str, int] = {}
        self._admin: AdminServer | None = None
        self._deregister: Deregister | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def _listen(
        self, side: Listener, listen: str, name: str, tls: ssl.SSLContext | None = None
    ) -> None:
        host, port = split_host_port(listen, min_port=0)
        try:
            self.ports[name] = await side.server.listen(
                host, port, reuse_port=self.cfg.reuse_port, tls=tls, limits=self.cfg.h2
            )
        except OSError as err:
            raise OSError(f"{name}: cannot listen on {listen}: {err.strerror or err}") from err

    async def start(self) -> None:
        cfg = self.cfg
        host, port = split_host_port(cfg.admin, min_port=0)
        store = (
            cfg.tracing.endpoint or default_trace_db()
            if self.provider and cfg.tracing.exporter == "store"
            else None
        )
        pages = {**trace_routes(store), **map_routes(store)}
        streams: dict[str, StreamRoute] = {}
        if self.telemetry is not None:  # golden metrics and tap need the per-call telemetry
            history = MetricsHistory(lambda: generate_latest(self.registry).decode())
            pages.update(stat_routes(history))
            streams["/tap"] = self.telemetry.tap.stream
            self._spawn(history.run())
        self._admin = AdminServer(
            host, port, self._routes(), pages=pages, streams=streams, unix=self._admin_unix
        )
        await self._admin.start()
        self.ports["admin"] = self._admin.port
        await self._listen(self.outbound, cfg.outbound, "outbound")
        await self._listen(self.inbound, cfg.inbound, "inbound", self.tls)
        self._watch_security()
        self.grpc_services = await self.inbound.start()
        if not self.grpc_services:
            self._spawn(self._learn_later())
        if self.worker is None:
            self._deregister = await register(cfg, self.grpc_services, self.ports["inbound"])
        self.ready = True
        settle_heap()
        log.info(
            "sidecar%s ready service=%s outbound=%d inbound=%d admin=%d app=%s grpc_services=%s",
            "" if self.worker is None else f" worker {self.worker}",  # not "sidecar ready": the supervisor's
            cfg.service,
            self.ports["outbound"],
            self.ports["inbound"],
            self.ports["admin"],
            cfg.app,
            ",".join(self.grpc_services),
        )

    def _watch_security(self) -> None:
        """Reload rotated certificates and policy edits; say so when the inbound is unauthenticated."""
        if self.certs is not None:
            self._spawn(self.certs.watch())
        else:
            log.warning(
                "inbound %s has no mTLS: x-mesh-source is UNAUTHENTICATED (any caller can claim any "
                "identity); use --tls-cert/--tls-key/--tls-ca, and --require-tls to make this fatal",
                self.cfg.inbound,
            )
        if self.authz is not None:
            self._spawn(self.authz.watch())

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _learn_later(self) -> None:
        """The app was not up (or has no reflection): keep asking, the stream path works meanwhile."""
        for _ in range(120):
            await asyncio.sleep(1.0)
            self.grpc_services = await self.inbound.learn()
            if self.grpc_services:
                log.info("learned app services %s", ",".join(self.grpc_services))
                return

    def _routes(self) -> dict[str, Any]:
        def metrics() -> tuple[int, str, bytes]:
            return 200, CONTENT_TYPE_LATEST, generate_latest(self.registry)

        return {
            "/live": lambda: (200, "text/plain", b"live\n"),
            "/ready": lambda: (
                (200, "text/plain", b"ready\n") if self.ready else (503, "text/plain", b"not ready\n")
            ),
            "/metrics": metrics,
            "/clusters": json_route(self.clusters_snapshot),
            "/config": json_route(lambda: masked(self.cfg)),
        }

    def clusters_snapshot(self) -> dict[str, Any]:
        return {
            "service": self.cfg.service,
            "ready": self.ready,
            "outbound": self.clusters.snapshot(),
            "routes": self.outbound.router.snapshot(),
            "methods": self.outbound.catalog.snapshot(),
            "http2": {
                "outbound_listener": self.outbound.server.snapshot(),
                "inbound_listener": self.inbound.server.snapshot(),
                "upstream": self.pools.snapshot(),
                "app": self.inbound.pools.snapshot(),
            },
            "inbound": {
                "app": self.cfg.app,
                "grpc_services": self.grpc_services,
                "methods": self.inbound.catalog.snapshot(),
                "in_flight": self.inbound.in_flight,
                "rejected": self.inbound.rejected,
                "cluster": self.inbound.cluster.snapshot(),
            },
        }

    async def drain(self) -> None:
        """Deregister, NOT_SERVING, stop accepting, wait for in-flight calls up to the drain timeout."""
        self.ready = False
        self.inbound.draining = True
        if self._deregister is not None:
            with contextlib.suppress(Exception):
                await self._deregister()
        grace = self.cfg.drain_timeout_s
        await asyncio.gather(self.outbound.server.stop(grace), self.inbound.server.stop(grace))
        for task in list(self._tasks):
            task.cancel()
        await self.outbound.close()
        await self.clusters.close()
        await self.inbound.close()
        self.pools.close()
        if self._admin is not None:
            await self._admin.close()
        await self.resolver.close()
        if self.provider is not None:
            self.provider.shutdown()
        log.info("sidecar drained")

    async def run_until_signal(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        try:
            await stop.wait()
            log.info("signal received: draining (up to %.1fs)", self.cfg.drain_timeout_s)
        finally:
            await self.drain()


async def run(cfg: SidecarConfig) -> int:
    await Sidecar(cfg).run_until_signal()
    return 0


def settle_heap() -> None:
    """Tunes the garbage collector for a proxy, once started.

    What exists at startup (modules, config, protos) lives as long as the
    process: frozen, it is no longer traversed by every full collection. Per
    relayed call a few hundred short-lived objects are made, almost none in
    cycles; at the default threshold (700) a young collection ran every few
    calls. 20,000 keeps the young generation a few MB at most.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)
