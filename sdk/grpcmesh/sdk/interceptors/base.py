"""Plumbing shared by the client interceptors: call details and metadata edits.

Most mesh concerns only rewrite the outgoing call (add a header, set a
timeout). :class:`RewritingInterceptor` implements the four grpc.aio client
interceptor kinds once, so each concern is one ``rewrite`` method and stays a
real grpc.aio interceptor that also works on a plain ``grpc.aio`` channel.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc

__all__ = ["RewritingInterceptor", "method_of", "replace_details", "with_metadata"]


def method_of(details: grpc.aio.ClientCallDetails) -> str:
    """The full method path (``/pkg.Service/Method``); grpc.aio passes it as bytes."""
    method: str | bytes = details.method
    return method.decode() if isinstance(method, bytes) else method


def with_metadata(
    details: grpc.aio.ClientCallDetails, pairs: Iterable[tuple[str, str]], *, overwrite: bool
) -> grpc.aio.Metadata:
    """The call's metadata plus ``pairs``; existing keys win unless ``overwrite``."""
    extra = dict(pairs)
    kept = [(k, v) for k, v in (details.metadata or ()) if not (overwrite and k in extra)]
    present = {k for k, _ in kept}
    added = [(k, v) for k, v in extra.items() if k not in present]
    return grpc.aio.Metadata(*kept, *added)


_UNSET: Any = object()


def replace_details(
    details: grpc.aio.ClientCallDetails,
    *,
    timeout: float | None = _UNSET,
    metadata: grpc.aio.Metadata | None = _UNSET,
) -> grpc.aio.ClientCallDetails:
    """A copy of ``details`` with ``timeout`` and/or ``metadata`` replaced."""
    return grpc.aio.ClientCallDetails(
        details.method,
        details.timeout if timeout is _UNSET else timeout,
        details.metadata if metadata is _UNSET else metadata,
        details.credentials,
        details.wait_for_ready,
    )


class RewritingInterceptor(
    grpc.aio.UnaryUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.aio.UnaryStreamClientInterceptor,  # type: ignore[type-arg]
    grpc.aio.StreamUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.aio.StreamStreamClientInterceptor,  # type: ignore[type-arg]
):
    """A client interceptor that only rewrites call details before the call starts."""

    def rewrite(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        """Returns the details the call should go out with."""
        raise NotImplementedError

    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        """Rewrites, then continues."""
        return await continuation(self.rewrite(client_call_details), request)

    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        """Rewrites, then continues."""
        return await continuation(self.rewrite(client_call_details), request)

    async def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        """Rewrites, then continues."""
        return await continuation(self.rewrite(client_call_details), request_iterator)

    async def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        """Rewrites, then continues."""
        return await continuation(self.rewrite(client_call_details), request_iterator)
