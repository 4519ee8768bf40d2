"""``serve()`` / :class:`Server`: a grpc.aio server that is ready for the mesh.

Adds what every mesh service needs and nobody should write twice: the
grpc.health.v1 service (SERVING after start, NOT_SERVING while draining so load
balancers stop sending before the listener closes), reflection (the sidecar
learns idempotent methods and service names from it), and a graceful stop on SIGTERM
that lets in-flight calls finish within a grace period. Every call runs inside
:class:`~grpcmesh.sdk.interceptors.ServerContextInterceptor` (request id, trace
span, incoming deadline, access log), so handlers and the calls they make
through ``MeshClient`` carry the request's context without extra code; a request
that does not decode is INVALID_ARGUMENT, never UNKNOWN (:mod:`.interceptors.decoding`). Without
a sidecar, ``register="http://consul:8500"`` registers the instance in Consul
(with a gRPC health check) after start and deregisters it before draining.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import grpc
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry import trace

from grpcmesh.sdk.interceptors.context import ServerContextInterceptor
from grpcmesh.sdk.interceptors.decoding import INT64_MAX, DecodeGuardInterceptor
from grpcmesh.sdk.logging import configure_logging
from grpcmesh.sdk.registration import Registration

__all__ = ["Server", "Servicer", "serve"]

log = logging.getLogger("grpcmesh.server")

# (servicer instance, generated add_XServicer_to_server function, full service name)
Servicer = tuple[Any, Callable[[Any, grpc.aio.Server], None], str]

_DEFAULT_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
    ("grpc.so_reuseport", 0),
)


class Server:
    """A started-on-demand grpc.aio server with health, reflection and drain."""

    def __init__(
        self,
        servicers: Iterable[Servicer],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "",
        interceptors: Sequence[grpc.aio.ServerInterceptor[Any, Any]] = (),
        options: Sequence[tuple[str, Any]] = (),
        grace: float = 10.0,
        tracer_provider: trace.TracerProvider | None = None,
        context: bool = True,
        register: str | None = None,
        advertise: str | None = None,
        credentials: grpc.ServerCredentials | None = None,
        max_unsigned: int | None = INT64_MAX,
    ) -> None:
        """``interceptors`` run after the context interceptor (disable it with ``context=False``).

        ``credentials``: serve TLS itself (no sidecar), e.g. ``mtls_server_credentials`` with an
        ``AuthzInterceptor`` in ``interceptors`` (grpcmesh.sdk.interceptors.authz).

        Every request that does not decode, or has an unsigned 64-bit field above
        ``max_unsigned`` (None: no limit), is answered INVALID_ARGUMENT naming the field.

        ``register`` is a Consul URL to self-register in (needs ``name``); ``advertise``
        is the host other services dial (default: ``host``).
        """
        if register and not name:
            raise ValueError("Server(register=...) needs name= (the service name to register under)")
        if register and (advertise or host) in ("0.0.0.0", "::", ""):
            raise ValueError(f"Server(register=...) listening on {host!r} needs advertise= (a dialable host)")
        self.name = name
        self._register_url = register
        self._advertise = advertise or host
        self._registration: Registration | None = None
        self.grace = grace
        self._host = host
        self._requested_port = port
        self._servicers = list(servicers)
        self._credentials = credentials
        chain: list[grpc.aio.ServerInterceptor[Any, Any]] = (
            [ServerContextInterceptor(tracer_provider=tracer_provider)] if context else []
        )
        chain.append(DecodeGuardInterceptor(max_unsigned))
        self._server = grpc.aio.server(
            interceptors=[*chain, *interceptors], options=[*_DEFAULT_OPTIONS, *options]
        )
        self._health = health_aio.HealthServicer()
        self.port = 0
        self._stopped = asyncio.Event()

    @property
    def address(self) -> str:
        """``host:port`` the server listens on (after :meth:`start`)."""
        return f"{self._host}:{self.port}"

    @property
    def service_names(self) -> list[str]:
        """Fully-qualified gRPC service names served (application services only)."""
        return [full_name for _, _, full_name in self._servicers]

    async def start(self) -> Server:
        """Binds, starts, and marks every service SERVING."""
        for impl, add, _ in self._servicers:
            add(impl, self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            [*self.service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], self._server
        )
        address = f"{self._host}:{self._requested_port}"
        try:
            if self._credentials is not None:
                self.port = self._server.add_secure_port(address, self._credentials)
            else:
                self.port = self._server.add_insecure_port(address)
        except RuntimeError:  # grpc's way of saying the bind failed: an OSError, as for any socket
            self.port = 0
        if self.port == 0:
            raise OSError(f"cannot listen on {address}: address already in use or not available here")
        await self._server.start()
        for svc in ["", *self.service_names]:
            await self._health.set(svc, health_pb2.HealthCheckResponse.SERVING)
        log.info("serving %s on %s", self.service_names, self.address)
        if self._register_url:
            self._registration = Registration(
                self.name,
                self._advertise,
                self.port,
                consul_url=self._register_url,
                grpc_services=self.service_names,
                check_interval="2s",
                check_timeout="1s",
            )
            await self._registration.register()
        return self

    async def set_serving(self, serving: bool) -> None:
        """Health of every service (and ""): NOT_SERVING takes the server out of load balancing
        without stopping it (a standby instance, a dependency gone)."""
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for svc in ["", *self.service_names]:
            await self._health.set(svc, status)

    async def stop(self, grace: float | None = None) -> None:
        """Drains: NOT_SERVING first, then stop accepting and wait for in-flight calls."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._registration is not None:
            try:
                await self._registration.deregister()
            except Exception as err:  # Consul down: the health check will drop us
                log.warning("deregistering %s failed: %s", self.name, err)
            finally:
                await self._registration.close()
        await self._health.enter_graceful_shutdown()
        await self._server.stop(self.grace if grace is None else grace)
        log.info("stopped %s", self.address)

    async def wait(self) -> None:
        """Blocks until stopped."""
        await self._server.wait_for_termination()

    async def run_until_signal(self) -> None:
        """Serves until SIGTERM/SIGINT, then drains gracefully."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await self.stop()

    async def __aenter__(self) -> Server:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop(grace=0)


async def serve(
    *servicers: Servicer,
    port: int = 0,
    host: str = "127.0.0.1",
    name: str = "",
    register: str | None = None,
    grace: float = 10.0,
) -> None:
    """Runs a :class:`Server` until SIGTERM; the one-liner for ``__main__`` blocks.

    Installs JSON logs with request and trace ids when the process has no logging set up.
    """
    if not logging.getLogger().handlers:
        configure_logging()
    server = Server(servicers, host=host, port=port, name=name, register=register, grace=grace)
    await server.start()
    log.info("listening on %s", server.address)
    await server.run_until_signal()
