"""One upstream service as the caller sees it: endpoints, channels and policies.

A :class:`Cluster` keeps the resolver's endpoints current (a background
watch), one channel pool per endpoint reused across calls, a balancer, a
breaker per endpoint and a retry policy with its budget. Every call is an
:class:`~grpcmesh.sdk.attempts.AttemptSequence` (:meth:`attempts`): ``invoke``
drives one for a unary grpc call, the sidecar's relay drives one over its own
HTTP/2 streams, so the policies behave the same in both.

Ejection is capped: at most ``breaker.max_ejection_percent`` of the endpoints
are ejected at once (at least one), and when fewer than
``breaker.panic_threshold_percent`` are healthy the balancer uses them all
(Envoy's panic mode): policies may slow a service down, never switch it off.

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

from grpcmesh.sdk.attempts import AttemptSequence
from grpcmesh.sdk.balance import LoadStats, make_balancer
from grpcmesh.sdk.breaker import Breaker, BreakerConfig, BreakerState, StateListener
from grpcmesh.sdk.discovery import Endpoint, Resolution, Resolver
from grpcmesh.sdk.endpoint_state import EndpointState
from grpcmesh.sdk.failures import (
    LOCAL_TRAILER,
    NOT_REACHED_TRAILER,
    Kind,
    classify_error,
    counts_against_endpoint,
)
from grpcmesh.sdk.picking import Picker
from grpcmesh.sdk.retry import RetryConfig, RetryPolicy, rpc_error

__all__ = ["Cluster", "ClusterConfig", "ClusterManager", "EndpointState", "unavailable"]

log = logging.getLogger("grpcmesh.cluster")
_CANCELLED, _LOCAL = Kind.CANCELLED, Kind.LOCAL  # enum lookups are slow in 3.11

T = TypeVar("T")


@dataclass(frozen=True)
class ClusterConfig:
    balancer: str = "p2c_ewma"
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    max_message_bytes: int = 64 * 1024 * 1024  # of the cluster's own grpc channels (direct mode)
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
            # (no "grpc.optimization_target": "throughput" batches in the core and cost a fast
            # unary call ~15 % more CPU in bench/sdk_client.py, for no throughput gained)
            ("grpc.http2.bdp_probe", 0),
            *self.channel_options,
        ]


def unavailable(details: str) -> grpc.aio.AioRpcError:
    """A locally-made UNAVAILABLE error: never reached an app, made here (not an endpoint's answer)."""
    return rpc_error(
        grpc.StatusCode.UNAVAILABLE, details, grpc.aio.Metadata(NOT_REACHED_TRAILER, LOCAL_TRAILER)
    )


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
        self._picker = Picker(config.balancer, config.breaker)
        self.retry = RetryPolicy(config.retry)
        self._on_change = on_breaker_change
        self._clock = clock
        self._states: dict[tuple[str, int], EndpointState] = {}
        self._healthy: list[EndpointState] = []
        self._app_codes = config.breaker.app_failure_codes
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
            allow_open=self._may_eject,
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

    def _may_eject(self) -> bool:
        return self._picker.may_eject(self._healthy)

    def attempts(
        self,
        method: str,
        *,
        idempotent: bool,
        deadline: float | None,
    ) -> AttemptSequence:
        """The attempt sequence of one new call (call :meth:`start` first)."""
        self.requests_total += 1
        retries = self.retry.start(method, idempotent=idempotent, deadline=deadline, clock=self._clock)
        return AttemptSequence(self, retries)

    def choose(self, exclude: Collection[Endpoint] = ()) -> EndpointState:
        """An endpoint for one attempt, counted in flight; pair with :meth:`settle`.

        Raises a never-reached UNAVAILABLE error when nothing can be tried.
        """
        state = self._pick_state(exclude)
        state.load.in_flight += 1
        return state

    def _pick_state(self, exclude: Collection[Endpoint]) -> EndpointState:
        if not self._healthy:
            raise unavailable(f"no endpoints for service {self.service!r}")
        return self._picker.pick(self._healthy, exclude, self._none)

    def _none(self, reason: str) -> Exception:
        return unavailable(f"service {self.service!r}: {reason}")

    def settle(self, state: EndpointState, kind: Kind, code: grpc.StatusCode) -> None:
        """Outcome of an attempt on ``state`` (from :meth:`choose`): in-flight count and health."""
        state.load.in_flight -= 1
        breaker = state.breaker
        if kind is _CANCELLED or kind is _LOCAL:
            breaker.release()
        else:
            breaker.record_outcome(counts_against_endpoint(kind, code, self._app_codes))

    # -- unary path ----------------------------------------------------------------
    async def invoke(
        self,
        call: Callable[[grpc.aio.Channel, float | None], Awaitable[T]],
        *,
        idempotent: bool,
        timeout: float | None,  # noqa: ASYNC109 - a gRPC deadline, passed on per attempt
        method: str = "",
    ) -> T:
        """Runs ``call`` on a balanced endpoint; retries per policy and budget on another endpoint."""
        if not self._started:
            await self.start()
        clock = self._clock
        seq = self.attempts(
            method, idempotent=idempotent, deadline=None if timeout is None else clock() + timeout
        )
        deadline = seq.deadline
        while True:
            remaining = None
            if deadline is not None:
                remaining = deadline - clock()
                if remaining <= 0:
                    raise rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")
            state = seq.next()
            try:
                result = await call(state.channel(), remaining)
            except grpc.aio.AioRpcError as err:
                kind, pushback = classify_error(err)
                seq.settle(kind, err.code())
                wait = seq.retry_delay(kind, err.code(), pushback)
                if wait is None:
                    raise
                await asyncio.sleep(wait)
                continue
            except BaseException:
                seq.settle(Kind.CANCELLED, grpc.StatusCode.CANCELLED)
                raise
            seq.settle(Kind.OK, grpc.StatusCode.OK)
            return result

    # -- introspection -------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        res = self.last_resolution
        return {
            "service": self.service,
            "balancer": self._picker.balancer,
            "requests_total": self.requests_total,
            "retry": self.retry.snapshot(),
            "stale": bool(res and res.stale),
            "endpoints": [s.snapshot() for s in self._healthy],
            "open_breakers": sum(1 for s in self._healthy if s.breaker.state is BreakerState.OPEN),
            "panic": self._picker.panicking(self._healthy),
            "panic_picks": self._picker.panics,
            "outlier": self._picker.settings(),
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
