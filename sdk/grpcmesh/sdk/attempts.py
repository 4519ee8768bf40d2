"""One call's attempt sequence on a cluster: the single attempt loop's state, for both paths.

The sidecar's relay (callbacks on its own HTTP/2 streams) and direct mode
(:meth:`grpcmesh.sdk.cluster.Cluster.invoke`, awaiting grpc calls) drive the
same object, so tried endpoints, the retry budget, the failure classification,
pushback, backoff and the deadline are decided in one place:

    seq = cluster.attempts(method, idempotent=..., deadline=...)
    state = seq.next()                  # an endpoint (raises a not-reached UNAVAILABLE if none)
    ... seq.responded()                 # response headers / first message: latency for the balancer
    seq.settle(kind, code)              # the attempt's outcome, classified (grpcmesh.sdk.failures)
    wait = seq.retry_delay(kind, code, pushback)   # None: final; else sleep, then next()

It is synchronous and allocation-light: the relay calls it from protocol
callbacks on the happy path.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

import grpc

from grpcmesh.sdk.discovery import Endpoint
from grpcmesh.sdk.endpoint_state import EndpointState
from grpcmesh.sdk.failures import Kind
from grpcmesh.sdk.retry import Retries

__all__ = ["AttemptSequence"]

_CANCELLED, _NOT_REACHED = Kind.CANCELLED, Kind.NOT_REACHED  # enum lookups are slow in 3.11


class Endpoints(Protocol):
    """What a sequence needs of its cluster (:class:`grpcmesh.sdk.cluster.Cluster`)."""

    service: str

    def choose(self, exclude: Collection[Endpoint] = ()) -> EndpointState: ...

    def settle(self, state: EndpointState, kind: Kind, code: grpc.StatusCode) -> None: ...


class AttemptSequence:
    """Attempts of one call: which endpoints were tried, and whether to try again."""

    __slots__ = ("_responded", "_started", "cluster", "retries", "state", "tried")

    def __init__(self, cluster: Endpoints, retries: Retries) -> None:
        self.cluster = cluster
        self.retries = retries
        self.tried: list[Endpoint] = []
        self.state: EndpointState | None = None  # of the attempt in flight
        self._started = 0.0
        self._responded = False

    @property
    def attempts(self) -> int:
        return self.retries.attempts

    @property
    def deadline(self) -> float | None:
        return self.retries.deadline

    def next(self) -> EndpointState:
        """The endpoint of the next attempt (balanced, not yet tried when possible).

        Raises a never-reached UNAVAILABLE ``AioRpcError`` when nothing can be tried.
        """
        self.retries.attempts += 1
        state = self.cluster.choose(self.tried)
        self.tried.append(state.endpoint)
        self.state = state
        self._started = self.retries.clock()
        self._responded = False
        return state

    def responded(self) -> None:
        """The attempt's response started: time to first headers/message feeds the EWMA."""
        state = self.state
        if state is not None and not self._responded:
            self._responded = True
            state.load.observe(self.retries.clock() - self._started)

    def settle(self, kind: Kind, code: grpc.StatusCode) -> None:
        """Ends the attempt in flight: endpoint health and load (idempotent: once per attempt)."""
        state, self.state = self.state, None
        if state is None:
            return
        if not self._responded and kind is not _CANCELLED and kind is not _NOT_REACHED:
            # a failure's time counts too (a timeout), but a refusal's speed must not attract traffic
            state.load.observe(self.retries.clock() - self._started)
        self.cluster.settle(state, kind, code)

    def retry_delay(self, kind: Kind, code: grpc.StatusCode, pushback: float | None = None) -> float | None:
        """Seconds before the next attempt, or None when this outcome is the call's answer."""
        return self.retries.delay(kind, code, pushback)
