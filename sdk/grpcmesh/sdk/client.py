"""``MeshClient`` / ``AsyncMeshClient``: typed stubs to any service in the mesh.

By default calls go to the local sidecar (``GRPCMESH_SIDECAR``, default
``127.0.0.1:15001``) over one pooled channel per target service, whose
``:authority`` names that service, so the sidecar routes, balances, breaks and
retries. With ``direct=True`` (or a
``discovery=`` source) the client resolves services itself and runs the same
policies in-process — no sidecar needed. Either way every call gets a request
id, trace context and a deadline, and failures raise typed exceptions.

Use the SDK (the README quotes this example; a test runs it as a doctest):

>>> import asyncio, grpc
>>> from grpcmesh.api.v1 import querybus_pb2 as pb, querybus_pb2_grpc as rpc
>>> from grpcmesh.sdk import AsyncMeshClient, InvalidArgument, Server, bad_request, rich_status
>>> class Queries(rpc.QueryBusServicer):
...     async def Query(self, request, context):
...         if not request.HasField("payload"):
...             await context.abort_with_status(rich_status(grpc.StatusCode.INVALID_ARGUMENT,
...                 "payload is required", [bad_request({"payload": "must be set"})]))
...         return pb.QueryResponse(position=request.min_position)
>>> async def main() -> None:
...     queries = (Queries(), rpc.add_QueryBusServicer_to_server, "grpcmesh.api.v1.QueryBus")
...     async with Server([queries], name="queries") as server, AsyncMeshClient(
...             service="checkout", discovery={"queries": [server.address]}) as mesh:
...         stub = mesh.stub(rpc.QueryBusStub, target="queries")
...         reply = await stub.Query(pb.QueryRequest(min_position=7, payload={}), timeout=2)
...         print("position", reply.position)
...         try:
...             await stub.Query(pb.QueryRequest())
...         except InvalidArgument as err:
...             print(err.code.name, err.field_violations())
>>> asyncio.run(main())
position 7
INVALID_ARGUMENT {'payload': 'must be set'}
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, Unpack

import grpc
from opentelemetry import trace

from grpcmesh.sdk.channel import Attempt, CallOptions, MeshChannel, StreamHook
from grpcmesh.sdk.client_config import ClientConfig, ClientOptions
from grpcmesh.sdk.direct import ClusterTransport
from grpcmesh.sdk.errors import Unavailable
from grpcmesh.sdk.headers import MESH_SERVICE, names_a_service
from grpcmesh.sdk.interceptors import (
    DeadlineInterceptor,
    IdempotentMethods,
    RequestIdInterceptor,
    RetryInterceptor,
    TraceInterceptor,
)
from grpcmesh.sdk.sync import LoopThread, SyncChannel

__all__ = ["AsyncMeshClient", "ClientClosedError", "ClientConfig", "ClientOptions", "MeshClient"]

S = TypeVar("S")
T = TypeVar("T")
_TARGET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class ClientClosedError(RuntimeError):
    """A stub of a closed client was called."""


class _SidecarTransport:
    """Lazily opened channels to the local sidecar, one per target service.

    Why one per target: the channel's ``:authority`` is the target's name, which
    the sidecar routes by (as Envoy and Linkerd route by authority), so calls
    carry no routing header; and the sidecar stamps ``x-mesh-source`` itself.
    grpc-python pays for every header of every call on both ends (three headers
    cost a fast unary call ~15 % of its throughput), so in sidecar mode a call
    carries only its request id and trace context. ``""`` (no target) keeps the
    sidecar's address as authority: the sidecar routes by proto service name.
    """

    def __init__(self, address: str) -> None:
        self.address = address
        self._channels: dict[str, grpc.aio.Channel] = {}

    def channel(self, target: str = "") -> grpc.aio.Channel:
        found = self._channels.get(target)
        if found is None:
            options: list[tuple[str, Any]] = [("grpc.enable_retries", 0)]
            if names_a_service(target):
                options.append(("grpc.default_authority", target))
            found = self._channels[target] = grpc.aio.insecure_channel(self.address, options=options)
        return found

    def tags(self, options: CallOptions) -> tuple[tuple[str, str], ...]:
        """None, unless the target's name cannot be an authority the sidecar routes by."""
        target = options.target
        return ((MESH_SERVICE, target),) if target and not names_a_service(target) else ()

    async def unary(
        self,
        target: str,
        attempt: Attempt[T],
        *,
        idempotent: bool,
        timeout: float | None,  # noqa: ASYNC109 - handed to the attempt
        method: str = "",
    ) -> T:
        return await attempt(self.channel(target), timeout)

    async def stream(self, target: str) -> tuple[grpc.aio.Channel, StreamHook | None]:
        return self.channel(target), None

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close(None)


class AsyncMeshClient:
    """Stubs to mesh services for asyncio code; use as ``async with`` or call :meth:`close`."""

    def __init__(
        self,
        service: str = "",
        *,
        config: ClientConfig | None = None,
        interceptors: Sequence[Any] = (),
        tracer_provider: trace.TracerProvider | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        """``service`` names the caller; see :class:`ClientOptions` (or pass a built ``config``).

        ``interceptors`` (grpc.aio client interceptors) run outermost, before the mesh's own.
        """
        self.config = config or ClientConfig.build(service, **options)
        self._idempotent = IdempotentMethods(self.config.idempotent)
        chain: list[Any] = [*interceptors, RequestIdInterceptor(), DeadlineInterceptor(self.config.timeout)]
        if self.config.retry is not None and not self.config.direct:
            chain.append(RetryInterceptor(self.config.retry, self._idempotent))
        chain.append(TraceInterceptor(tracer_provider))
        self._interceptors = tuple(chain)
        self._transport: _SidecarTransport | ClusterTransport = (
            ClusterTransport(self.config.discovery, self.config.cluster)
            if self.config.discovery is not None
            else _SidecarTransport(self.config.sidecar)
        )
        self._channels: dict[str, MeshChannel] = {}
        self._closed = False

    def __repr__(self) -> str:
        where = (
            f"discovery={self.config.discovery!r}"
            if self.config.direct
            else f"sidecar={self.config.sidecar!r}"
        )
        return f"{type(self).__name__}(service={self.config.service!r}, {where})"

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def channel(self, target: str | None = None) -> MeshChannel:
        """The pooled channel for ``target`` (``None``: let the sidecar route by proto service name)."""
        name = target or ""
        if name and not _TARGET.fullmatch(name):
            raise ValueError(f"target {target!r} is not a service name (letters, digits, '.', '_', '-')")
        if not name and self.config.direct:
            raise ValueError("direct mode needs stub(..., target='service-name') to know what to resolve")
        self._check_open("stub()", name)
        if name not in self._channels:
            options = CallOptions(
                target=name,
                source=self.config.service,
                default_timeout=self.config.timeout,
                interceptors=self._interceptors,
                idempotent=self._idempotent,
            )
            self._channels[name] = MeshChannel(self._transport, options, lambda m: self._check_open(m, name))
        return self._channels[name]

    def stub(self, stub_type: Callable[[Any], S], target: str | None = None) -> S:
        """A generated stub (e.g. ``OrdersStub``) whose calls are routed to ``target``."""
        return stub_type(self.channel(target))

    def _check_open(self, what: str, target: str) -> None:
        if self._closed:
            raise ClientClosedError(
                f"{self!r} is closed: cannot use {what} for target {target!r} after close()"
            )

    async def ready(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 - bounded probe
        """Waits until the sidecar accepts connections; raises :class:`Unavailable` naming it if not.

        Direct mode has no single address to probe: it returns at once (a target with no
        endpoints fails its first call with an ``Unavailable`` that names it).
        """
        self._check_open("ready()", "")
        if not isinstance(self._transport, _SidecarTransport):
            return
        try:
            async with asyncio.timeout(timeout):
                await self._transport.channel().channel_ready()
        except TimeoutError:
            raise Unavailable(
                f"sidecar at {self.config.sidecar} (from {self.config.sidecar_source}) is not reachable "
                f"after {timeout}s; start `grpcmesh sidecar` or use direct=True"
            ) from None

    async def close(self) -> None:
        """Releases channels (and the discovery watch in direct mode); stubs then raise."""
        if not self._closed:
            self._closed = True
            await self._transport.close()

    async def __aenter__(self) -> AsyncMeshClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class MeshClient:
    """The blocking facade: same options and stubs as :class:`AsyncMeshClient`, no ``await``."""

    def __init__(
        self,
        service: str = "",
        *,
        config: ClientConfig | None = None,
        interceptors: Sequence[Any] = (),
        tracer_provider: trace.TracerProvider | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        """Same arguments as :class:`AsyncMeshClient`; calls run on a private event-loop thread."""
        self._async = AsyncMeshClient(
            service, config=config, interceptors=interceptors, tracer_provider=tracer_provider, **options
        )
        self._runner = LoopThread(name=f"grpcmesh-client-{service or 'anon'}")

    @property
    def config(self) -> ClientConfig:
        """The resolved configuration."""
        return self._async.config

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._async.closed

    def stub(self, stub_type: Callable[[Any], S], target: str | None = None) -> S:
        """A generated stub whose calls block and return responses (or iterators for streams)."""
        return stub_type(SyncChannel(self._async.channel(target), self._runner))

    def ready(self, timeout: float = 5.0) -> None:
        """Blocking :meth:`AsyncMeshClient.ready`."""
        self._runner.run(lambda: self._async.ready(timeout))

    def close(self) -> None:
        """Releases channels and stops the client's event-loop thread."""
        if not self._async.closed:
            self._runner.run(self._async.close)
            self._runner.stop()

    def __enter__(self) -> MeshClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
