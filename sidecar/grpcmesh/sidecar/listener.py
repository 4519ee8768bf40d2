"""What both listeners do around every relayed call: onward headers, span, metrics, in-flight.

:class:`Outbound` and :class:`Inbound` differ in how they pick the cluster and
which headers they add; reading the caller's request headers once (path,
deadline, request id, what to drop), opening the span and injecting its
context, counting the call in flight and recording the outcome however the
call ends is the same and lives here once.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any

from grpcmesh.sdk.cluster import Cluster, EndpointState
from grpcmesh.sdk.headers import REQUEST_ID, TRACEPARENT, TRACESTATE, new_request_id
from grpcmesh.sidecar.h2.client import Pool
from grpcmesh.sidecar.h2.connection import Headers, Stream
from grpcmesh.sidecar.h2.grpcwire import parse_timeout
from grpcmesh.sidecar.h2.server import H2Server
from grpcmesh.sidecar.hop import SET_PER_HOP, CallRecord
from grpcmesh.sidecar.proxy import Relay
from grpcmesh.sidecar.telemetry import Telemetry

__all__ = ["Listener", "Pools"]

_TRACE = frozenset({TRACEPARENT, TRACESTATE})
_TE: tuple[str, str] = ("te", "trailers")


class Pools:
    """HTTP/2 connection pools per upstream endpoint, drained when discovery drops the endpoint.

    With ``tls``, connections are mutual TLS and each endpoint's certificate
    must name the service it was resolved for.
    """

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self._tls = tls
        self._pools: dict[tuple[str, str, int], Pool] = {}

    def __call__(self, service: str, state: EndpointState) -> Pool:
        ep = state.endpoint
        key = (service, ep.address, ep.port)
        pool = self._pools.get(key)
        if pool is None or pool.closed:
            pool = self._pools[key] = Pool(ep.address, ep.port, tls=self._tls, server_name=service)
        return pool

    def retls(self, tls: ssl.SSLContext) -> None:
        """A reloaded certificate: new connections use ``tls``, open ones finish their calls."""
        self._tls = tls
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.drain()

    def drain(self, state: EndpointState) -> None:
        ep = state.endpoint
        for key in [k for k in self._pools if k[1:] == (ep.address, ep.port)]:
            self._pools.pop(key).drain()

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Open upstream connections and streams per endpoint (for /clusters)."""
        return {pool.target: pool.snapshot() for pool in self._pools.values()}

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()


class Listener:
    direction = ""

    def __init__(
        self,
        telemetry: Telemetry | None,
        pools: Pools,
        *,
        max_message_bytes: int,
        replay_limit: int,
    ) -> None:
        self._tel = telemetry
        self._tracing = telemetry is not None and telemetry.tracing
        self.pools = pools
        self._max_message = max_message_bytes
        self._replay_limit = replay_limit
        self.in_flight = 0
        self.server = H2Server(self.handle)
        self._tasks: set[asyncio.Task[Any]] = set()

    def handle(self, stream: Stream, headers: Headers, end_stream: bool) -> None:
        """A new call from a caller (the H2 server's stream handler)."""
        raise NotImplementedError

    def _relay(self, stream: Stream, headers: Headers, end_stream: bool, cap: float | None = None) -> Relay:
        """A relay owning ``stream`` from now on, with the caller's deadline (capped at ``cap`` s)."""
        deadline = None
        loop = stream.conn.loop
        for k, v in headers:
            if k == "grpc-timeout":
                timeout = parse_timeout(v)
                if timeout is not None:
                    deadline = loop.time() + timeout
                break
        if cap is not None:
            deadline = min(deadline or float("inf"), loop.time() + cap)
        return Relay(
            stream,
            end_stream,
            deadline=deadline,
            max_message_bytes=self._max_message,
            replay_limit=self._replay_limit,
            on_done=self._done,
            call=CallRecord(self.direction),
        )

    def _onward(
        self, headers: Headers, drop: frozenset[str], authority: str | None
    ) -> tuple[Headers, str, str]:
        """(onward request headers, request id, method path) in one pass over the caller's block.

        Pseudo-headers are rebuilt, ``te``/``grpc-timeout`` are set per attempt,
        ``drop`` keys are left out and, with tracing on, so are incoming trace
        headers (the span re-injects its own context, see :meth:`_begin`).
        """
        path = ""
        out: Headers = []
        rid = ""
        tracing = self._tracing
        for k, v in headers:
            if k[0] == ":":
                if k == ":path":
                    path = v
                elif k == ":authority" and authority is None:
                    authority = v
                continue
            if k in drop or k in SET_PER_HOP or (tracing and k in _TRACE):
                continue
            if k == REQUEST_ID:
                rid = v
            out.append((k, v))
        if not rid:
            rid = new_request_id()
            out.append((REQUEST_ID, rid))
        pseudo: Headers = [(":method", "POST"), (":scheme", "http"), (":path", path)]
        if authority:
            pseudo.append((":authority", authority))
        pseudo.append(_TE)
        pseudo.extend(out)
        return pseudo, rid, path

    def _begin(
        self,
        relay: Relay,
        cluster: Cluster,
        method: str,
        incoming: Headers,
        out: Headers,
        rid: str,
        *,
        idempotent: bool,
    ) -> None:
        """Opens the bracket (span, its context in ``out``, in-flight count) and starts the relay."""
        if relay.finished:  # the caller gave up while the route or connection was being found
            return
        call = relay.call
        if self._tel is not None:
            call.span, trace_headers = self._tel.start_span(self.direction, cluster.service, method, incoming)
            out.extend(trace_headers)
        self.in_flight += 1
        call.service = cluster.service
        call.method = method
        call.request_id = rid
        call.started = time.perf_counter()
        relay.start(cluster, out, self.pools, idempotent=idempotent, method=method)

    def _done(self, relay: Relay) -> None:
        call = relay.call
        if call.started is None:
            return
        self.in_flight -= 1
        if self._tel is not None:
            self._tel.finish(call)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
