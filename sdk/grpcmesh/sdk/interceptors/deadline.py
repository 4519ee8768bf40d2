"""Deadlines: every call gets one, and a call made while serving never outlives its caller.

gRPC Python does not propagate deadlines from a served call to the calls it
makes. The server context interceptor stores the incoming deadline in
:data:`deadline_var`; :class:`DeadlineInterceptor` then gives each outgoing call
the smallest of its explicit timeout (or the configured default) and the time
the incoming call has left, so a deadline set at the edge shrinks hop by hop.
(On the wire gRPC may send a ``grpc-timeout`` up to ~3 % longer, reusing a
recent HPACK entry; the calling side still cancels at the exact deadline.)
"""

from __future__ import annotations

import contextvars
import time
from typing import Any

import grpc

from grpcmesh.sdk.interceptors.base import RewritingInterceptor, replace_details

__all__ = ["DeadlineInterceptor", "deadline_var", "effective_timeout", "time_remaining"]

deadline_var: contextvars.ContextVar[float | None] = contextvars.ContextVar("grpcmesh_deadline", default=None)
"""Absolute ``time.monotonic()`` deadline of the call being served in this task, if any."""


def time_remaining() -> float | None:
    """Seconds the call being served has left (may be ≤ 0), or ``None`` without a deadline."""
    deadline = deadline_var.get()
    return None if deadline is None else deadline - time.monotonic()


def effective_timeout(explicit: float | None, default: float | None) -> float | None:
    """The timeout an outgoing call gets: explicit or default, capped by the incoming deadline."""
    timeout = explicit if explicit is not None else default
    left = time_remaining()
    if left is not None:
        left = max(left, 0.0)
        timeout = left if timeout is None else min(timeout, left)
    return timeout


class DeadlineInterceptor(RewritingInterceptor):
    """Sets a per-call timeout: a unary-response call without one gets ``default`` seconds.

    Server-streaming and bidirectional calls (subscriptions, watches) are often meant to
    stay open: they get no default, only the cap of the incoming deadline.
    """

    def __init__(self, default: float | None = 30.0) -> None:
        if default is not None and default <= 0:
            raise ValueError(f"default deadline must be positive seconds, got {default!r}")
        self.default = default

    def rewrite(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        """Replaces the timeout by :func:`effective_timeout` with the default."""
        return replace_details(details, timeout=effective_timeout(details.timeout, self.default))

    def _capped(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        return replace_details(details, timeout=effective_timeout(details.timeout, None))

    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        """No default deadline for a response stream; the incoming deadline still caps it."""
        return await continuation(self._capped(client_call_details), request)

    async def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        """No default deadline for a bidirectional stream; the incoming deadline still caps it."""
        return await continuation(self._capped(client_call_details), request_iterator)
