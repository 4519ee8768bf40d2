"""Registering a gRPC app in Consul, so :class:`~grpcmesh.sdk.discovery.ConsulResolver` finds it.

Used by the sidecar and by the SDK's server helper in direct mode. What gets
registered:

* a stable id ``name-host-port``: re-registering after a restart replaces the
  entry instead of leaving a ghost next to it;
* tags and meta, plus meta ``grpc_services`` = the comma-separated gRPC
  services the app serves, read from its reflection service (health and
  reflection themselves left out) when not given explicitly (empty, with a
  warning, for an app without reflection);
* Consul's native ``GRPC`` health check against the app's grpc.health.v1
  endpoint (interval, timeout) with ``DeregisterCriticalServiceAfter`` so a
  crashed instance is removed without anyone deregistering it.

:meth:`Registration.deregister` (and leaving ``async with``) removes the entry
on graceful stop. With ``resync`` set, a background task re-registers when the
agent has lost the entry (an agent restarted without state, as in dev mode).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from grpcmesh.sdk.discovery.consul import consul_client
from grpcmesh.sdk.waiting import cancel_and_wait

__all__ = ["Registration", "RegistrationConfig", "list_grpc_services"]

log = logging.getLogger("grpcmesh.registration")

GRPC_SERVICES_META = "grpc_services"
_INFRA_SERVICES = frozenset(
    {health.SERVICE_NAME, reflection.SERVICE_NAME, "grpc.reflection.v1.ServerReflection"}
)


async def list_grpc_services(target: str, rpc_timeout: float = 5.0) -> list[str]:
    """Sorted application service names ``target`` serves, via reflection v1alpha ListServices."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=rpc_timeout
        )
        names: list[str] = []
        async for response in call:
            if response.HasField("error_response"):
                err = response.error_response
                raise RuntimeError(f"reflection on {target}: {err.error_code} {err.error_message}")
            names.extend(s.name for s in response.list_services_response.service)
        return sorted(n for n in names if n not in _INFRA_SERVICES)


@dataclass(frozen=True)
class RegistrationConfig:
    """What to register; ``grpc_services=None`` asks the app's reflection service."""

    name: str
    address: str
    port: int
    tags: tuple[str, ...] = ()
    meta: Mapping[str, str] = field(default_factory=dict)
    grpc_services: tuple[str, ...] | None = None
    check_target: str | None = None  # host:port of the app's health service; default address:port
    check_interval: str = "10s"
    check_timeout: str = "5s"
    deregister_after: str = "1m"
    weight: int = 1

    @property
    def service_id(self) -> str:
        return f"{self.name}-{self.address}-{self.port}"

    @property
    def app_target(self) -> str:
        return self.check_target or f"{self.address}:{self.port}"


class Registration:
    """One service instance in Consul: ``async with Registration(...)`` registers, then deregisters."""

    def __init__(
        self,
        name: str,
        address: str,
        port: int,
        tags: Sequence[str] = (),
        meta: Mapping[str, str] | None = None,
        *,
        consul_url: str = "http://127.0.0.1:8500",
        token: str | None = None,
        grpc_services: Sequence[str] | None = None,
        check_target: str | None = None,
        check_interval: str = "10s",
        check_timeout: str = "5s",
        deregister_after: str = "1m",
        weight: int = 1,
        resync: float | None = None,
    ) -> None:
        self.config = RegistrationConfig(
            name=name,
            address=address,
            port=port,
            tags=tuple(tags),
            meta=dict(meta or {}),
            grpc_services=None if grpc_services is None else tuple(grpc_services),
            check_target=check_target,
            check_interval=check_interval,
            check_timeout=check_timeout,
            deregister_after=deregister_after,
            weight=weight,
        )
        self.consul_url = consul_url
        self.token = token
        self.resync = resync
        self.http_requests = 0
        self._client: Any = None
        self._resync_task: asyncio.Task[None] | None = None

    @property
    def service_id(self) -> str:
        return self.config.service_id

    def _consul(self) -> Any:
        if self._client is None:
            self._client = consul_client(self.consul_url, token=self.token, on_request=self._count)
        return self._client

    def _count(self) -> None:
        self.http_requests += 1

    async def _meta(self) -> dict[str, str]:
        cfg = self.config
        services = cfg.grpc_services
        if services is None:
            try:
                services = tuple(await list_grpc_services(cfg.app_target))
            except grpc.aio.AioRpcError as err:
                if err.code() is not grpc.StatusCode.UNIMPLEMENTED:
                    raise
                log.warning("%s serves no reflection; registering without grpc_services", cfg.app_target)
                services = ()
        return {**cfg.meta, GRPC_SERVICES_META: ",".join(services)}

    def check_definition(self) -> dict[str, object]:
        """Consul's native gRPC check against the app's grpc.health.v1 (overall status, service "")."""
        cfg = self.config
        return {
            "Name": f"gRPC health of {cfg.app_target}",
            "GRPC": cfg.app_target,
            "GRPCUseTLS": False,
            "Interval": cfg.check_interval,
            "Timeout": cfg.check_timeout,
            "DeregisterCriticalServiceAfter": cfg.deregister_after,
        }

    async def register(self) -> str:
        """Registers (or replaces) this instance with its gRPC check; returns the service id."""
        cfg = self.config
        await self._consul().agent.service.register(
            cfg.name,
            service_id=cfg.service_id,
            address=cfg.address,
            port=cfg.port,
            tags=list(cfg.tags),
            meta=await self._meta(),
            weights={"Passing": cfg.weight, "Warning": 1},
            check=self.check_definition(),
            replace_existing_checks=True,
        )
        log.info(
            "registered %s in consul", cfg.service_id, extra={"service": cfg.name, "consul": self.consul_url}
        )
        if self.resync is not None and self._resync_task is None:
            self._resync_task = asyncio.create_task(self._keep_registered(self.resync))
        return cfg.service_id

    async def is_registered(self) -> bool:
        """Whether the local agent currently knows this instance."""
        services: dict[str, Any] = await self._consul().agent.services()
        return self.service_id in services

    async def _keep_registered(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                if not await self.is_registered():
                    log.warning("consul lost %s; registering again", self.service_id)
                    await self.register()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # agent down: try again next round
                log.warning("consul resync of %s failed: %s", self.service_id, err)

    async def _stop_resync(self) -> None:
        await cancel_and_wait(self._resync_task)
        self._resync_task = None

    async def deregister(self) -> None:
        """Removes this instance (graceful stop); stops the resync task."""
        await self._stop_resync()
        await self._consul().agent.service.deregister(self.service_id)
        log.info("deregistered %s", self.service_id, extra={"service": self.config.name})

    async def close(self) -> None:
        """Stops the resync task and closes the HTTP session (does not deregister)."""
        await self._stop_resync()
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def __aenter__(self) -> Registration:
        await self.register()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.deregister()
        finally:
            await self.close()
