"""The mesh authorization policy for an app that serves mutual TLS itself (no sidecar).

:class:`AuthzInterceptor` applies the same :mod:`grpcmesh.sdk.authz` policy the
sidecar's inbound listener applies, to a :class:`~grpcmesh.sdk.server.Server`
(or any grpc.aio server) using :func:`mtls_server_credentials`. The caller's
identity is the SPIFFE id its verified client certificate carries; a denied
call ends with PERMISSION_DENIED before the handler runs. The credentials and
the policy file are both re-read when their files change, so certificate
rotation and policy edits need no restart here either.
"""

from __future__ import annotations

import collections
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

from grpcmesh.sdk.authz import Policy, PolicyFile, file_signature
from grpcmesh.sdk.interceptors.handlers import rebuild

__all__ = ["AuthzInterceptor", "mtls_server_credentials", "spiffe_id_of"]

log = logging.getLogger("grpcmesh.authz")

_ServerInterceptor: Any = grpc.aio.ServerInterceptor
Check = Callable[[Any], Awaitable[None]]


def mtls_server_credentials(
    cert_file: str | Path, key_file: str | Path, ca_file: str | Path
) -> grpc.ServerCredentials:
    """Server credentials requiring a client certificate from the bundle; rotated files are picked up
    at the next handshake (established connections keep theirs)."""
    files = (Path(cert_file), Path(key_file), Path(ca_file))

    def load() -> Any:
        cert, key, ca = (p.read_bytes() for p in files)
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    seen = [tuple(file_signature(p) for p in files)]

    def fetch() -> Any:
        sig = tuple(file_signature(p) for p in files)
        if sig == seen[0]:
            return None  # None: keep the current configuration
        try:
            config = load()
        except OSError as err:
            log.warning("tls: cannot read the changed certificate files (%s); keeping the old ones", err)
            return None
        seen[0] = sig
        return config

    return grpc.dynamic_ssl_server_credentials(load(), fetch, require_client_authentication=True)


def spiffe_id_of(context: Any) -> str:
    """The spiffe:// URI SAN of the caller's verified certificate ("" without one)."""
    for value in context.auth_context().get("x509_subject_alternative_name", ()):
        text = value.decode() if isinstance(value, bytes) else str(value)
        if text.startswith("spiffe://"):
            return text
    return ""


class AuthzInterceptor(_ServerInterceptor):  # type: ignore[misc]
    """Checks every call against a policy; ``denied`` counts (source, method, mode)."""

    def __init__(self, policy: Policy | PolicyFile, *, poll_interval: float = 1.0) -> None:
        self._source = policy
        self._poll_interval = poll_interval
        self._next_poll = 0.0
        self.denied: collections.Counter[tuple[str, str, str]] = collections.Counter()

    @classmethod
    def from_file(cls, path: str | Path, service: str) -> AuthzInterceptor:
        """The rule set for ``service`` from a policy file, re-read when it changes."""
        return cls(PolicyFile(path, service))

    @property
    def policy(self) -> Policy:
        source = self._source
        if isinstance(source, Policy):
            return source
        now = time.monotonic()
        if now >= self._next_poll:
            self._next_poll = now + self._poll_interval
            if source.poll() is None:
                log.error("authz: %s; keeping the previous policy", source.error)
        return source.policy

    async def _check(self, path: str, context: Any) -> None:
        policy = self.policy
        identity = spiffe_id_of(context)
        decision = policy.decide(identity, path)
        if not decision.denied:
            return
        self.denied[identity, path, "audit" if decision.allowed else "enforce"] += 1
        if decision.allowed:
            log.warning("authz AUDIT (let through): %s", policy.denial(identity, path))
            return
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, policy.denial(identity, path))

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        path: str = handler_call_details.method
        return _guard(handler, lambda context: self._check(path, context))


def _guard(handler: grpc.RpcMethodHandler[Any, Any], check: Check) -> grpc.RpcMethodHandler[Any, Any]:
    """The same handler, its behaviour (async or sync) run only after ``check`` passed."""

    def wrap(behavior: Callable[..., Any]) -> Any:
        streaming = inspect.isasyncgenfunction(behavior) or inspect.isgeneratorfunction(behavior)
        return _gen(behavior, check) if streaming else _call(behavior, check)

    return rebuild(handler, wrap)


def _call(behavior: Callable[..., Any], check: Check) -> Callable[..., Awaitable[Any]]:
    async def run(request: Any, context: Any) -> Any:
        await check(context)
        result = behavior(request, context)
        return await result if inspect.isawaitable(result) else result

    return run


def _gen(behavior: Callable[..., Any], check: Check) -> Callable[..., AsyncIterator[Any]]:
    async def run(request: Any, context: Any) -> AsyncIterator[Any]:
        await check(context)
        items = behavior(request, context)
        if inspect.isasyncgen(items):
            async for item in items:
                yield item
        else:
            for item in items:
                yield item

    return run
