"""Real gRPC apps (grpcmesh Server: health + reflection) registered in a real Consul."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from grpcmesh.api.v1 import eventstore_pb2_grpc
from grpcmesh.sdk.discovery import Resolver
from grpcmesh.sdk.registration import Registration
from grpcmesh.sdk.server import Server
from tests.support.procs import wait_for_async

SERVICE = "orders"
EVENTSTORE = "grpcmesh.api.v1.EventStore"
CHECK_INTERVAL = 1.0  # Consul's native gRPC check runs this often (seconds)


async def start_app(port: int = 0) -> Server:
    """An app serving the EventStore contract (unimplemented methods are fine here)."""
    servicer = (
        eventstore_pb2_grpc.EventStoreServicer(),
        eventstore_pb2_grpc.add_EventStoreServicer_to_server,
        EVENTSTORE,
    )
    return await Server([servicer], port=port, grace=0).start()


def registration(consul_url: str, app: Server, **kwargs: object) -> Registration:
    return Registration(
        SERVICE,
        "127.0.0.1",
        app.port,
        tags=("v1",),
        meta={"zone": "test"},
        consul_url=consul_url,
        check_interval=f"{CHECK_INTERVAL:g}s",
        check_timeout="1s",
        deregister_after="1m",
        **kwargs,  # type: ignore[arg-type]
    )


@dataclass
class Fleet:
    """N apps, each registered; :meth:`stop_app` / :meth:`restart_app` flip one's health."""

    consul_url: str
    apps: list[Server] = field(default_factory=list)
    regs: list[Registration] = field(default_factory=list)

    @property
    def ports(self) -> set[int]:
        return {app.port for app in self.apps}

    async def stop_app(self, i: int) -> None:
        await self.apps[i].stop(grace=0)

    async def restart_app(self, i: int) -> None:
        self.apps[i] = await start_app(self.apps[i].port)


@contextlib.asynccontextmanager
async def fleet(consul_url: str, n: int, **reg_kwargs: object) -> AsyncIterator[Fleet]:
    group = Fleet(consul_url)
    try:
        for _ in range(n):
            app = await start_app()
            group.apps.append(app)
            reg = registration(consul_url, app, **reg_kwargs)
            group.regs.append(reg)
            await reg.register()
        yield group
    finally:
        for reg in group.regs:
            with contextlib.suppress(Exception):
                await reg.deregister()
            await reg.close()
        for app in group.apps:
            await app.stop(grace=0)


async def ports_of(resolver: Resolver, service: str = SERVICE) -> set[int]:
    return {ep.port for ep in (await resolver.resolve(service)).endpoints}


async def until_ports(resolver: Resolver, expected: set[int], timeout: float, what: str) -> None:
    """Polls the resolver's cache (no I/O per call) until it shows exactly ``expected``."""

    async def matches() -> bool:
        return await ports_of(resolver) == expected

    await wait_for_async(matches, timeout=timeout, interval=0.02, what=what)


async def next_matching(watch: AsyncIterator[object], predicate: object, timeout: float) -> object:
    """The first item of ``watch`` for which ``predicate(item)`` holds, within ``timeout``."""

    async def scan() -> object:
        async for item in watch:
            if predicate(item):  # type: ignore[operator]
                return item
        raise AssertionError("watch ended")

    return await asyncio.wait_for(scan(), timeout)
