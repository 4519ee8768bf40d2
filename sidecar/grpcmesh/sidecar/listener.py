"""What both listeners do around every forwarded call: span, metrics, in-flight count.

:class:`Outbound` and :class:`Inbound` differ in how they pick the cluster and
build the onward metadata; the bracket around the forwarding itself (open a
span and inject its context, count the call in flight, record the outcome
even when the caller cancels) is the same and lives here once.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import grpc
from opentelemetry.trace import Span

from grpcmesh.sdk.cluster import Cluster
from grpcmesh.sdk.headers import REQUEST_ID, TRACEPARENT, TRACESTATE, new_request_id
from grpcmesh.sdk.idempotency import CallKind
from grpcmesh.sidecar.proxy import CallResult, Ctx, Forwarder, Md
from grpcmesh.sidecar.telemetry import Telemetry

__all__ = ["Listener"]

_OK = grpc.StatusCode.OK
_CANCELLED = grpc.StatusCode.CANCELLED


class Listener:
    direction = ""

    def __init__(self, forwarder: Forwarder, telemetry: Telemetry | None) -> None:
        self._fwd = forwarder
        self._tel = telemetry
        self._tracing = telemetry is not None and telemetry.tracing
        self.in_flight = 0

    def _forward_headers(self, md: Md, drop: frozenset[str]) -> tuple[Md, str]:
        """Onward metadata in one pass: no ``drop``/``grpc-*`` keys, the request id kept or made.

        With tracing on, incoming trace headers are dropped too: the span opened
        for this call re-injects its own context (see :meth:`_open`).
        """
        out: Md = []
        rid = ""
        for k, v in md:
            if k in drop or k.startswith("grpc-"):
                continue
            if k == REQUEST_ID:
                rid = v if isinstance(v, str) else v.decode()
            elif self._tracing and k in (TRACEPARENT, TRACESTATE):
                continue
            out.append((k, v))
        if not rid:
            rid = new_request_id()
            out.append((REQUEST_ID, rid))
        return out, rid

    def _open(self, cluster: Cluster, method: str, md: Md, out: Md) -> tuple[Span | None, float, CallResult]:
        """Starts the bracket: span (its context joins ``out``), start time, in-flight count."""
        span = None
        if self._tel is not None:
            span, trace_headers = self._tel.start_span(self.direction, cluster.service, method, md)
            out.extend(trace_headers)
        self.in_flight += 1
        return span, time.perf_counter(), CallResult()

    def _close(
        self,
        cluster: Cluster,
        method: str,
        span: Span | None,
        started: float,
        rid: str,
        result: CallResult,
        completed: bool,
    ) -> None:
        self.in_flight -= 1
        if not completed and result.code is _OK:  # cancelled (or failed before any status)
            result.code = _CANCELLED
        if self._tel is not None:
            self._tel.finish(self.direction, cluster.service, method, started, span, rid, result, cluster)

    async def _unary(
        self,
        cluster: Cluster,
        method: str,
        request: bytes,
        md: Md,
        out: Md,
        rid: str,
        ctx: Ctx,
        idempotent: bool,
    ) -> bytes:
        span, started, result = self._open(cluster, method, md, out)
        completed = False
        try:
            reply = await self._fwd.unary(
                cluster, method, request, out, ctx, idempotent=idempotent, result=result
            )
            completed = True
            return reply
        finally:
            self._close(cluster, method, span, started, rid, result, completed)

    async def _stream(
        self,
        cluster: Cluster,
        method: str,
        kind: CallKind,
        request: bytes | AsyncIterator[bytes],
        md: Md,
        out: Md,
        rid: str,
        ctx: Ctx,
        idempotent: bool,
    ) -> AsyncIterator[bytes]:
        span, started, result = self._open(cluster, method, md, out)
        completed = False
        try:
            async for msg in self._fwd.stream(
                cluster, method, kind, request, out, ctx, idempotent=idempotent, result=result
            ):
                yield msg
            completed = True
        finally:
            self._close(cluster, method, span, started, rid, result, completed)
