"""Direct mode: the client resolves, balances, breaks and retries in-process.

The same :class:`~grpcmesh.sdk.cluster.Cluster` the sidecar runs, one per
target service: unary calls go through ``Cluster.invoke`` (balanced endpoint,
breaker, retry on another endpoint within the budget), streaming calls are a
one-attempt :class:`~grpcmesh.sdk.attempts.AttemptSequence` whose latency is
the time to the response headers and whose outcome is classified like any
other. A target whose registry entry is empty fails with an error that names
the target and the registry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

import grpc

from grpcmesh.sdk.channel import Attempt, CallOptions, StreamHook
from grpcmesh.sdk.cluster import Cluster, ClusterConfig, ClusterManager
from grpcmesh.sdk.discovery import Endpoint, MemoryResolver, ResolveError, Resolver, resolver_from_url
from grpcmesh.sdk.failures import Kind, classify_error
from grpcmesh.sdk.headers import MESH_SOURCE
from grpcmesh.sdk.hostport import split_host_port
from grpcmesh.sdk.retry import rpc_error

__all__ = ["ClusterTransport", "Discovery", "make_resolver"]

T = TypeVar("T")
Discovery = str | Resolver | Mapping[str, Sequence[str]]
"""A registry URL (``consul://``, ``http://``, ``file://``), a resolver, or ``{service: ["host:port"]}``."""


def _endpoint(service: str, address: str) -> Endpoint:
    try:
        host, port = split_host_port(address)
    except ValueError as err:
        raise ValueError(f"discovery[{service!r}]: {address!r} is not host:port ({err})") from None
    return Endpoint(host, port, id=f"{service}-{address}")


def make_resolver(discovery: Discovery) -> tuple[Resolver, bool]:
    """The resolver for ``discovery`` and whether the client owns (and must close) it."""
    if isinstance(discovery, str):
        return resolver_from_url(discovery), True
    if isinstance(discovery, Mapping):
        fixed: dict[str, Iterable[Endpoint]] = {
            name: [_endpoint(name, a) for a in addresses] for name, addresses in discovery.items()
        }
        return MemoryResolver(fixed), True
    return discovery, False


class ClusterTransport:
    """Routes each target service to its own :class:`Cluster`."""

    def __init__(self, discovery: Discovery, config: ClusterConfig | None = None) -> None:
        self.where = discovery if isinstance(discovery, str) else type(discovery).__name__
        self.resolver, self._owns_resolver = make_resolver(discovery)
        self.clusters = ClusterManager(self.resolver, config or ClusterConfig())
        self._pending: set[asyncio.Task[None]] = set()

    async def _cluster(self, target: str) -> Cluster:
        cluster = self.clusters.get(target)
        if not cluster.started:  # (start() takes a lock: not on every call)
            await cluster.start()
        if not cluster.endpoints:
            raise ResolveError(target, f"no endpoints registered (discovery: {self.where})")
        return cluster

    async def unary(
        self,
        target: str,
        attempt: Attempt[T],
        *,
        idempotent: bool,
        timeout: float | None,  # noqa: ASYNC109 - the overall deadline across retries
        method: str = "",
    ) -> T:
        """One unary call through the target's cluster."""
        cluster = await self._cluster(target)
        return await cluster.invoke(attempt, idempotent=idempotent, timeout=timeout, method=method)

    def tags(self, options: CallOptions) -> tuple[tuple[str, str], ...]:
        """The caller's name (``x-mesh-source``) for the app it reaches; no routing header, as
        nothing between routes."""
        return ((MESH_SOURCE, options.source),) if options.source else ()

    async def stream(self, target: str) -> tuple[grpc.aio.Channel, StreamHook | None]:
        """A balanced endpoint's channel and a hook that reports the call's outcome."""
        cluster = await self._cluster(target)
        seq = cluster.attempts("", idempotent=False, deadline=None)
        state = seq.next()

        async def report(call: Any) -> None:
            try:
                await call.initial_metadata()
                seq.responded()  # time to the response headers, not the stream's whole life
                code = await call.code()
            except asyncio.CancelledError:
                seq.settle(Kind.CANCELLED, grpc.StatusCode.CANCELLED)
                return
            if code is grpc.StatusCode.OK:
                seq.settle(Kind.OK, code)
                return
            details = await call.details()
            trailers = await call.trailing_metadata()
            kind, _ = classify_error(rpc_error(code, details or "", trailers))
            seq.settle(kind, code)

        def hook(call: Any) -> None:
            task = asyncio.get_running_loop().create_task(report(call))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

        return state.channel(), hook

    async def close(self) -> None:
        """Closes every cluster (draining channels) and the resolver if the client made it."""
        await self.clusters.close()
        if self._owns_resolver:
            await self.resolver.close()
