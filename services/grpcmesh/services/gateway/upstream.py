"""Calls a route's gRPC method through the mesh with :class:`~grpcmesh.sdk.AsyncMeshClient`.

No generated stubs: each route gets a generic multicallable built from its message
classes (``SerializeToString`` / ``FromString``) on the client's channel to the
mesh service that serves it — the local sidecar by default, or resolved in-process
in direct mode. The deadline comes from the ``grpc-timeout`` header (gRPC syntax,
e.g. ``500m``, or plain seconds) or the default, capped by ``max_timeout``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

from google.protobuf.message import Message

from grpcmesh.sdk import AsyncMeshClient
from grpcmesh.services.gateway.errors import GatewayError
from grpcmesh.services.gateway.routes import Route

__all__ = ["Upstream", "parse_timeout"]

_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
_GRPC_TIMEOUT = re.compile(r"(\d{1,8})([HMSmun])")


def parse_timeout(header: str | None, default: float, maximum: float) -> float:
    """Seconds for the call: the header's value (capped at ``maximum``) or ``default``; 400 if bad."""
    if header is None or not header.strip():
        return default
    text = header.strip()
    m = _GRPC_TIMEOUT.fullmatch(text)
    try:
        seconds = int(m.group(1)) * _UNITS[m.group(2)] if m else float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0 or seconds != seconds:  # negative, zero or NaN
        raise GatewayError.bad_request(
            "grpc-timeout", f"grpc-timeout must be a positive duration like 500m or 2S, got {text!r}"
        )
    return min(seconds, maximum)


class Upstream:
    """One multicallable per route, on the channel of the route's mesh service."""

    def __init__(self, client: AsyncMeshClient, services: Mapping[str, str]) -> None:
        self._client = client
        self._services = dict(services)
        self._calls: dict[str, Any] = {}

    def _target(self, route: Route) -> str | None:
        named = self._services.get(route.service)
        if named is None and self._client.config.direct:
            return route.service  # direct mode resolves the proto service name itself
        return named  # sidecar mode: None lets the sidecar route by proto service name

    def target_name(self, route: Route) -> str:
        """The mesh service a route's calls go to (for logs): mapped, or the proto service name."""
        return self._target(route) or route.service

    def _callable(self, route: Route) -> Any:
        call = self._calls.get(route.name)
        if call is None:
            channel = self._client.channel(self._target(route))
            kind = channel.unary_stream if route.server_streaming else channel.unary_unary
            call = kind(
                route.grpc_path,
                request_serializer=route.input_type.SerializeToString,
                response_deserializer=route.output_type.FromString,
            )
            self._calls[route.name] = call
        return call

    async def unary(
        self, route: Route, request: Message, *, deadline: float, metadata: list[tuple[str, str]]
    ) -> Message:
        """The response; raises the SDK's typed ``MeshError`` on failure."""
        response: Message = await self._callable(route)(request, timeout=deadline, metadata=metadata)
        return response

    async def stream(
        self, route: Route, request: Message, *, deadline: float, metadata: list[tuple[str, str]]
    ) -> AsyncIterator[Message]:
        """The responses of a server-streaming method, as they arrive."""
        async for response in self._callable(route)(request, timeout=deadline, metadata=metadata):
            yield response

    async def close(self) -> None:
        await self._client.close()
