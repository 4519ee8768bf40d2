"""One upstream service as the caller sees it: endpoints, channels and policies.

A :class:`Cluster` keeps the resolver's endpoints current (a background
watch), one channel pool per endpoint reused across calls, a balancer, a
breaker per endpoint and a retry policy with its budget. ``invoke`` runs a
unary call through all of them; ``pick``/``record`` let streaming callers (the
sidecar's stream path) use the same state. The SDK's direct mode and the
sidecar both run this class, so the policies behave the same in both.

Endpoints that discovery removes are drained (channel closed with a grace
period), never cut mid-call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc

from grpcmesh.sdk.balance import LoadStats, make_balancer
from grpcmesh.sdk.breaker import Breaker, BreakerConfig, BreakerState, StateListener
from grpcmesh.sdk.discovery import Endpoint, Resolution, Resolver
from grpcmesh.sdk.endpoint_state import EndpointState
from grpcmesh.sdk.retry import NOT_REACHED, RetryConfig, RetryPolicy, rpc_error

__all__ = ["Cluster", "ClusterConfig", "ClusterManager", "EndpointState", "unavailable"]

log = logging.getLogger("grpcmesh.cluster")

T = TypeVar("T")


@dataclass(frozen=True)
class ClusterConfig:
    balancer: str = "p2c_ewma"
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    max_message_bytes: int = 16 * 1024 * 1024
    channels_per_endpoint: int = 1
    drain_s: float = 10.0
    ewma_tau_s: float = 10.0
    channel_options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        make_balancer(self.balancer)  # validates the name
        if self.max_message_bytes < 1:
            raise ValueError("max_message_bytes must be >= 1")
        if self.channels_per_endpoint < 1:
            raise ValueError("channels_per_endpoint must be >= 1")

    def grpc_options(self) -> list[tuple[str, Any]]:
        return [
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.use_local_subchannel_pool", 1),
            ("grpc.enable_retries", 0),  # retries are ours, with a budget
            ("grpc.optimization_target", "throughput"),
            ("grpc.http2.bdp_probe", 0),
            *self.channel_options,
        ]


def unavailable(details: str) -> grpc.aio.AioRpcError:
    """A locally-made UNAVAILABLE error marked as never having reached an app."""
    return rpc_error(grpc.StatusCode.UNAVAILABLE, details, grpc.aio.Metadata((NOT_REACHED, "1")))


class Cluster:
    """One upstream service: watched endpoints, channel pools, balancer, breakers, retry budget."""

    def __init__(
        self,
        service: str,
        resolver: Resolver,
        config: ClusterConfig = ClusterConfig(),
        *,
        on_breaker_change: StateListener | None = None,
        on_drain: Callable[[EndpointState], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self.service = service
        self.on_drain = on_drain
        self.config = config
        self._credentials = credentials  # TLS for the endpoint channels; None: plaintext
        self._resolver = resolver
        self._balancer = make_balancer(config.balancer)
        self.retry = RetryPolicy(config.retry)
        self._on_change = on_breaker_change
        self._clock = clock
        self._states: dict[tuple[str, int], EndpointState] = {}
        self._healthy: list[EndpointState] = []
        self._by_channel: dict[grpc.aio.Channel, EndpointState] = {}
        self._started = False
        self._start_lock = asyncio.Lock()
        self._watch: asyncio.Task[None] | None = None
        self._draining: set[asyncio.Task[None]] = set()
        self.requests_total = 0
        self.last_resolution: Resolution | None = None

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        async with self._start_lock:
            if self._started:
                return
            self._apply(await self._resolver.resolve(self.service))
            self._watch = asyncio.create_task(self._watch_loop(), name=f"watch:{self.service}")
            self._started = True

    async def close(self) -> None:
        """Stops watching and drains every channel."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watch
        for state in list(self._states.values()):
            self._drain(state)
        self._states.clear()
        self._healthy = []
        if self._draining:
            await asyncio.gather(*self._draining, return_exceptions=True)
        self._started = False

    async def _watch_loop(self) -> None:
        while True:
            try:
                async for resolution in self._resolver.watch(self.service):
                    self._apply(resolution)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("watch of %s failed; retrying", self.service)
            await asyncio.sleep(1.0)

    def _apply(self, resolution: Resolution) -> None:
        self.last_resolution = resolution
        seen: dict[tuple[str, int], Endpoint] = {(e.address, e.port): e for e in resolution.endpoints}
        for key, state in list(self._states.items()):
            if key not in seen:
                del self._states[key]
                self._drain(state)
        for key, ep in seen.items():
            existing = self._states.get(key)
            if existing is None:
                self._states[key] = self._new_state(ep)
            elif existing.endpoint.meta != ep.meta or existing.endpoint.tags != ep.tags:
                existing.endpoint = ep
        self._healthy = list(self._states.values())

    def _new_state(self, ep: Endpoint) -> EndpointState:
        options = self.config.grpc_options()
        creds = self._credentials
        channels = [
            grpc.aio.secure_channel(ep.target, creds, options=options)
            if creds is not None
            else grpc.aio.insecure_channel(ep.target, options=options)
            for _ in range(self.config.channels_per_endpoint)
        ]
        breaker = Breaker(
            self.config.breaker,
            name=f"{self.service}/{ep.target}",
            clock=self._clock,
            on_change=self._on_change,
        )
        state = EndpointState(ep, channels, breaker, LoadStats(tau=self.config.ewma_tau_s, clock=self._clock))
        for ch in channels:
            self._by_channel[ch] = state
        return state

    def _drain(self, state: EndpointState) -> None:
        state.draining = True
        if self.on_drain is not None:
            self.on_drain(state)

        async def close() -> None:
            for ch in state.channels:
                await ch.close(grace=self.config.drain_s)
                self._by_channel.pop(ch, None)

        task = asyncio.create_task(close())
        self._draining.add(task)
        task.add_done_callback(self._draining.discard)

    # -- picking -------------------------------------------------------------------
    @property
    def endpoints(self) -> list[EndpointState]:
        return self._healthy

    @property
    def started(self) -> bool:
        return self._started

    def choose(self, exclude: Collection[Endpoint] = ()) -> EndpointState:
        """An endpoint for one attempt (balancer, skipping OPEN breakers); pair with :meth:`settle`.

        Synchronous, for callers that drive their own transport (the sidecar's
        HTTP/2 relay); call :meth:`start` first. Raises a never-reached
        UNAVAILABLE error when nothing can be tried.
        """
        state = self._pick_state(exclude)
        state.load.in_flight += 1
        return state

    async def pick(self, exclude: Collection[Endpoint] = ()) -> tuple[Endpoint, grpc.aio.Channel]:
        """An endpoint (balancer, skipping OPEN breakers) and its channel; pair with :meth:`record`."""
        if not self._started:
            await self.start()
        state = self._pick_state(exclude)
        state.load.in_flight += 1
        return state.endpoint, state.channel()

    def _pick_state(self, exclude: Collection[Endpoint]) -> EndpointState:
        states = self._healthy
        if not states:
            raise unavailable(f"no endpoints for service {self.service!r}")
        if len(states) == 1 and not exclude:
            only = states[0]
            if only.breaker.acquire():
                return only
            raise unavailable(f"service {self.service!r}: breaker open for every endpoint")
        candidates = [s for s in states if s.breaker.available() and s.endpoint not in exclude]
        if not candidates and exclude:  # nothing new to try: reuse an already-tried endpoint
            candidates = [s for s in states if s.breaker.available()]
        if not candidates:
            raise unavailable(f"service {self.service!r}: breaker open for every endpoint")
        state = self._balancer.pick(candidates)
        state.breaker.acquire()
        return state

    def record(self, endpoint: Endpoint, code: grpc.StatusCode, latency_s: float) -> None:
        """Outcome of a call started with :meth:`pick`: updates breaker and load stats."""
        state = self._states.get((endpoint.address, endpoint.port))
        if state is not None:
            self.settle(state, code, latency_s)

    @staticmethod
    def settle(state: EndpointState, code: grpc.StatusCode, latency_s: float) -> None:
        """Outcome of an attempt on ``state`` (from :meth:`choose`): breaker and load stats."""
        load = state.load
        load.in_flight -= 1
        load.observe(latency_s)
        state.breaker.record(code)

    # -- unary path ----------------------------------------------------------------
    async def invoke(
        self,
        call: Callable[[grpc.aio.Channel, float | None], Awaitable[T]],
        *,
        idempotent: bool,
        timeout: float | None,  # noqa: ASYNC109 - a gRPC deadline, passed on per attempt
    ) -> T:
        """Runs ``call`` on a balanced endpoint; retries per policy and budget on another endpoint."""
        if not self._started:
            await self.start()
        clock = self._clock
        deadline = None if timeout is None else clock() + timeout
        self.requests_total += 1
        tried: list[Endpoint] = []

        def attempt() -> Awaitable[T]:
            return self._attempt(call, deadline, tried)

        return await self.retry.run(attempt, idempotent=idempotent, deadline=deadline, clock=clock)

    async def _attempt(
        self,
        call: Callable[[grpc.aio.Channel, float | None], Awaitable[T]],
        deadline: float | None,
        tried: list[Endpoint],
    ) -> T:
        clock = self._clock
        remaining = None
        if deadline is not None:
            remaining = deadline - clock()
            if remaining <= 0:
                raise rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")
        state = self._pick_state(tried)
        tried.append(state.endpoint)
        state.load.in_flight += 1
        started = clock()
        try:
            result = await call(state.channel(), remaining)
        except grpc.aio.AioRpcError as err:
            self.settle(state, err.code(), clock() - started)
            raise
        except BaseException:
            self.settle(state, grpc.StatusCode.CANCELLED, clock() - started)
            raise
        self.settle(state, grpc.StatusCode.OK, clock() - started)
        return result

    # -- introspection -------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        res = self.last_resolution
        return {
            "service": self.service,
            "balancer": self._balancer.name,
            "requests_total": self.requests_total,
            "retry": self.retry.snapshot(),
            "stale": bool(res and res.stale),
            "endpoints": [s.snapshot() for s in self._healthy],
            "open_breakers": sum(1 for s in self._healthy if s.breaker.state is BreakerState.OPEN),
        }


class ClusterManager:
    """Clusters by service name, created on first use with that service's config."""

    def __init__(
        self,
        resolver: Resolver,
        config: ClusterConfig
        | Mapping[str, ClusterConfig]
        | Callable[[str], ClusterConfig] = ClusterConfig(),
        *,
        on_breaker_change: StateListener | None = None,
        on_drain: Callable[[EndpointState], None] | None = None,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self.resolver = resolver
        self._config = config
        self._credentials = credentials
        self._on_change = on_breaker_change
        self._on_drain = on_drain
        self._clusters: dict[str, Cluster] = {}

    def config_for(self, service: str) -> ClusterConfig:
        cfg = self._config
        if isinstance(cfg, ClusterConfig):
            return cfg
        if callable(cfg):
            return cfg(service)
        return cfg.get(service) or ClusterConfig()

    def get(self, service: str) -> Cluster:
        cluster = self._clusters.get(service)
        if cluster is None:
            cluster = Cluster(
                service,
                self.resolver,
                self.config_for(service),
                on_breaker_change=self._on_change,
                on_drain=self._on_drain,
                credentials=self._credentials,
            )
            self._clusters[service] = cluster
        return cluster

    def __iter__(self) -> Any:
        return iter(list(self._clusters.values()))

    def snapshot(self) -> list[dict[str, Any]]:
        return [c.snapshot() for c in self._clusters.values()]

    async def close(self) -> None:
        clusters, self._clusters = list(self._clusters.values()), {}
        await asyncio.gather(*(c.close() for c in clusters), return_exceptions=True)
