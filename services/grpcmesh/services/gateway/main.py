"""Builds a :class:`~grpcmesh.services.gateway.app.Gateway` from its config and serves it.

The composition root of the gateway: routes from the configured proto modules, an
``AsyncMeshClient`` (sidecar mode, or direct mode when ``discovery`` is set), the
limiter backend, the cache. Logs ``listening on HOST:PORT`` once it accepts
connections and stops cleanly on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from aiohttp import web

from grpcmesh.sdk import AsyncMeshClient
from grpcmesh.services.gateway.app import Gateway
from grpcmesh.services.gateway.cache import ResponseCache
from grpcmesh.services.gateway.config import GatewayConfig
from grpcmesh.services.gateway.connections import GuardedRunner
from grpcmesh.services.gateway.ratelimit import Limiter, MemoryLimiter, RedisLimiter
from grpcmesh.services.gateway.routes import Router, load_routes
from grpcmesh.services.gateway.upstream import Upstream

__all__ = ["build_gateway", "run"]

log = logging.getLogger("grpcmesh.gateway")


def build_gateway(config: GatewayConfig, client: AsyncMeshClient | None = None) -> Gateway:
    """Everything wired from ``config``; ``client`` overrides the one the config describes."""
    router = Router(load_routes(config.protos))
    if client is None:
        if config.discovery is not None:
            client = AsyncMeshClient("gateway", discovery=config.discovery, timeout=config.timeout)
        else:
            client = AsyncMeshClient("gateway", sidecar=config.sidecar, timeout=config.timeout)
    limiter: Limiter = (
        MemoryLimiter() if config.rate_limit_backend == "memory" else RedisLimiter(config.rate_limit_backend)
    )
    cache = ResponseCache(config.cache_entries)
    return Gateway(config, router, Upstream(client, config.services), limiter, cache)


def _split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--listen {listen!r}: expected HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


async def run(config: GatewayConfig) -> int:
    gateway = build_gateway(config)
    for route in gateway.router.routes:
        log.info("route %s %s -> %s", route.verb, route.template.template, route.name)
    if config.auth is None:
        log.warning("no [auth] configured: every route is public")
    host, port = _split_listen(config.listen)
    runner = GuardedRunner(gateway.application(), config.connections, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0]
        log.info("listening on %s:%s", bound[0], bound[1])
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("draining")
    finally:
        await runner.cleanup()
    return 0
