"""The discovery port: what a resolver returns and promises.

Endpoints are immutable values so a snapshot can be shared between the
balancer, the admin page and the router without copying or locking.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from grpcmesh.sdk.errors import Unavailable

__all__ = ["Endpoint", "Resolution", "ResolveError", "Resolver", "require_endpoints"]

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One instance of a service, as a registry reports it."""

    address: str
    port: int
    tags: tuple[str, ...] = ()
    meta: Mapping[str, str] = field(default_factory=lambda: _EMPTY, hash=False, compare=False)
    weight: int = 1
    id: str = ""

    @property
    def target(self) -> str:
        """``host:port`` form that grpc channels accept (IPv6 bracketed)."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Resolution:
    """A snapshot of a service's healthy endpoints.

    ``stale`` is set when the registry could not be reached and the snapshot is
    the last one known; ``updated_at`` (monotonic seconds) lets callers expose
    its age rather than fail calls during a registry outage.
    """

    service: str
    endpoints: tuple[Endpoint, ...]
    stale: bool = False
    updated_at: float = field(default_factory=time.monotonic)

    @property
    def age(self) -> float:
        """Seconds since this snapshot was last confirmed by the registry."""
        return time.monotonic() - self.updated_at


class ResolveError(Unavailable):
    """A service resolved to nothing usable; maps to gRPC UNAVAILABLE at call time.

    It is an :class:`~grpcmesh.sdk.errors.Unavailable`, so callers that handle
    typed mesh errors (and the sidecar, which aborts with ``err.code``) treat
    "nowhere to send it" like any other unavailable upstream.
    """

    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"service {service!r}: {reason}")
        self.service = service
        self.reason = reason


def require_endpoints(resolution: Resolution) -> tuple[Endpoint, ...]:
    """The endpoints of ``resolution``; raises :class:`ResolveError` when there are none.

    Resolvers answer an unknown or fully unhealthy service with an empty
    snapshot (never an exception from a registry client); this is the one place
    a call turns that into UNAVAILABLE, with a message that says why.
    """
    if resolution.endpoints:
        return resolution.endpoints
    if resolution.stale:
        reason = f"no endpoints known and the registry is unreachable (last answer {resolution.age:.1f}s ago)"
    else:
        reason = "no healthy endpoints registered"
    raise ResolveError(resolution.service, reason)


@runtime_checkable
class Resolver(Protocol):
    """Answers "where does service X run" from a cache kept current in the background."""

    async def resolve(self, service: str) -> Resolution:
        """Current snapshot; an unknown service yields an empty, non-raising result."""
        ...

    def watch(self, service: str) -> AsyncIterator[Resolution]:
        """Yields the current snapshot, then one per change, until cancelled."""
        ...

    async def close(self) -> None:
        """Stops background watches and releases connections."""
        ...
