"""One service's current :class:`Resolution`, published to any number of watchers.

Both background resolvers (Consul, static file) keep one :class:`Published` per
service: the refresher task calls :meth:`Published.publish`, callers read
:attr:`Published.current` without any I/O, and :meth:`Published.changes` wakes
every watcher once per change. Readers never block the writer and a slow
watcher only ever skips to the newest snapshot, so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from grpcmesh.sdk.discovery.base import Endpoint, Resolution

__all__ = ["Published", "endpoints_key"]


def endpoints_key(endpoints: tuple[Endpoint, ...]) -> tuple[object, ...]:
    """Comparable identity of an endpoint set, meta included (Endpoint equality ignores meta)."""
    return tuple((ep, tuple(sorted(ep.meta.items()))) for ep in endpoints)


class Published:
    """Latest snapshot of one service plus a change signal (single event loop)."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.current = Resolution(service, ())
        self.version = 0
        self.ready = asyncio.Event()
        self.closed = False
        self._changed = asyncio.Event()

    def publish(self, endpoints: tuple[Endpoint, ...], *, stale: bool = False) -> bool:
        """Stores a fresh snapshot; wakes watchers when endpoints or staleness changed.

        A fresh, unchanged answer still renews ``updated_at`` (so ``age`` measures
        time since the registry last confirmed the snapshot) but wakes nobody.
        """
        old = self.current
        changed = (
            not self.ready.is_set()
            or old.stale != stale
            or endpoints_key(old.endpoints) != endpoints_key(endpoints)
        )
        updated_at = old.updated_at if stale and self.ready.is_set() else time.monotonic()
        self.current = Resolution(self.service, endpoints, stale=stale, updated_at=updated_at)
        self.ready.set()
        if changed:
            self.version += 1
            self._wake()
        return changed

    def mark_stale(self) -> bool:
        """Keeps the last endpoints but flags them stale (registry unreachable)."""
        if self.ready.is_set() and self.current.stale:
            return False
        return self.publish(self.current.endpoints, stale=True)

    def close(self) -> None:
        """Ends every :meth:`changes` iterator."""
        self.closed = True
        self.ready.set()
        self._wake()

    def _wake(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def changes(self) -> AsyncIterator[Resolution]:
        """Current snapshot once ready, then one per change, until :meth:`close`."""
        await self.ready.wait()
        seen = -1
        while not self.closed:
            if self.version != seen:
                seen = self.version
                yield self.current
                continue
            await self._changed.wait()
