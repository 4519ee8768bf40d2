"""An in-memory resolver: the registry for tests of pure logic and for embedding.

Updates are pushed with :meth:`MemoryResolver.set`; watchers wake on change.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

from grpcmesh.sdk.discovery.base import Endpoint, Resolution

__all__ = ["MemoryResolver"]


class MemoryResolver:
    """Resolver over a dict kept in process; changes notify watchers."""

    def __init__(self, services: dict[str, Iterable[Endpoint]] | None = None) -> None:
        self._snapshots: dict[str, Resolution] = {}
        self._changed = asyncio.Condition()
        for name, endpoints in (services or {}).items():
            self._snapshots[name] = Resolution(name, tuple(endpoints))

    async def set(self, service: str, endpoints: Iterable[Endpoint]) -> None:
        """Replaces the endpoints of ``service`` and wakes its watchers."""
        async with self._changed:
            self._snapshots[service] = Resolution(service, tuple(endpoints))
            self._changed.notify_all()

    async def resolve(self, service: str) -> Resolution:
        return self._snapshots.get(service) or Resolution(service, ())

    async def watch(self, service: str) -> AsyncIterator[Resolution]:
        last = await self.resolve(service)
        yield last
        while True:
            async with self._changed:
                while self._snapshots.get(service, last) is last:
                    await self._changed.wait()
                last = self._snapshots[service]
            yield last

    async def close(self) -> None:
        return None
