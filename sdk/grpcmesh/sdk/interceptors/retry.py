"""Client retry interceptor: the mesh retry policy as a grpc.aio interceptor.

Off by default when calls go through a sidecar (the sidecar already retries on
another endpoint; retrying at both layers multiplies load during an outage).
It drives the same :class:`grpcmesh.sdk.retry.Retries` decisions as the
sidecar and direct mode (classification, pushback, backoff, never past the
deadline, only while the retry budget allows), so every path retries the same
calls the same way. App-level failures are retried only
for idempotent methods: declared in the proto (``option idempotency_level``)
or matched by the configured patterns; a request that provably never reached
the app is retried for any method.
"""

from __future__ import annotations

import asyncio
import fnmatch
import time
from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool

from grpcmesh.sdk.failures import classify_error
from grpcmesh.sdk.interceptors.base import method_of, replace_details
from grpcmesh.sdk.retry import RetryConfig, RetryPolicy

__all__ = ["IdempotentMethods", "RetryInterceptor", "declared_idempotent"]

_IDEMPOTENT_LEVELS = {
    descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS,
    descriptor_pb2.MethodOptions.IDEMPOTENT,
}


def declared_idempotent(method: str) -> bool:
    """Whether the loaded proto of ``/pkg.Service/Method`` declares it idempotent."""
    service, _, name = method.lstrip("/").partition("/")
    try:
        svc = descriptor_pool.Default().FindServiceByName(service)
    except KeyError:
        return False
    found = svc.methods_by_name.get(name)
    return found is not None and found.GetOptions().idempotency_level in _IDEMPOTENT_LEVELS


class IdempotentMethods:
    """Idempotency test: the proto's declaration, or a match of fnmatch ``patterns`` on the path."""

    def __init__(self, patterns: Sequence[str] = ()) -> None:
        self.patterns = tuple(patterns)
        self._cache: dict[str, bool] = {}

    def __call__(self, method: str) -> bool:
        """Whether ``method`` (``/pkg.Service/Method``) may be retried after reaching the app."""
        known = self._cache.get(method)
        if known is None:
            known = declared_idempotent(method) or any(fnmatch.fnmatchcase(method, p) for p in self.patterns)
            self._cache[method] = known
        return known


class RetryInterceptor(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    """Retries failed unary calls per :class:`~grpcmesh.sdk.retry.RetryPolicy`."""

    def __init__(
        self, config: RetryConfig | None = None, idempotent: IdempotentMethods | None = None
    ) -> None:
        self.policy = RetryPolicy(config or RetryConfig())
        self.idempotent = idempotent or IdempotentMethods()

    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        """Runs the call, and again on a retryable failure while attempts, deadline and budget allow."""
        details: grpc.aio.ClientCallDetails = client_call_details
        deadline = None if details.timeout is None else time.monotonic() + details.timeout
        method = method_of(details)
        retries = self.policy.start(method, idempotent=self.idempotent(method), deadline=deadline)
        while True:
            retries.attempts += 1
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            call = await continuation(replace_details(details, timeout=left), request)
            try:
                await call
                return call
            except grpc.aio.AioRpcError as err:
                kind, pushback = classify_error(err)
                wait = retries.delay(kind, err.code(), pushback)
                if wait is None:
                    raise
            await asyncio.sleep(wait)
