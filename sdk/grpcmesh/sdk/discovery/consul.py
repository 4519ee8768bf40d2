"""Consul resolver: passing instances of a service, kept current by blocking queries.

Why it is built this way:

* **No lookup per call.** The first ``resolve(service)`` starts one background
  task for that service, shared by every caller and watcher; it long-polls
  ``/v1/health/service/<name>?passing=1&index=N&wait=30s`` and publishes a new
  :class:`Resolution` when Consul's answer changes. ``resolve`` then only reads
  that snapshot. ``stats.http_requests`` counts every HTTP request the resolver
  makes, so tests (and the admin page) can prove it.
* **py-consul's asyncio client** (``consul.aio``, over aiohttp) rather than the
  blocking client in a thread: a blocking query holds its request for up to
  ``wait``; a thread could not be cancelled, so ``close()`` would hang (or leak
  a thread) for that long. aiohttp requests are cancelled at once. The client
  is created lazily inside the running loop because aiohttp sessions belong to
  one loop.
* **Outage = stale, not failure.** On any Consul error the last endpoints stay
  in place, marked ``stale`` (``age`` = seconds since Consul last answered);
  the task retries with exponential backoff and jitter, restarting with a
  non-blocking query (index reset), which also covers a Consul restart where
  the raft index starts again from a lower number.
* A service's task lives as long as the resolver (services a process talks
  to are few and long-lived); ``close()`` cancels them all and ends watchers.
* Endpoint ``id`` is the Consul service id, ``meta`` the service meta,
  ``weight`` the service's ``Weights.Passing``; the address falls back to the
  node address when the service registered none.
"""

from __future__ import annotations

import asyncio
import logging
import random
import urllib.parse
import warnings
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import consul
import consul.aio

from grpcmesh.sdk.discovery.base import Endpoint, Resolution
from grpcmesh.sdk.discovery.published import Published
from grpcmesh.sdk.waiting import cancel_and_wait, wait_set

__all__ = ["ConsulResolver", "ConsulStats", "backoff_delay", "consul_client", "endpoints_from_health"]

log = logging.getLogger("grpcmesh.discovery.consul")


@dataclass
class ConsulStats:
    """Counters of one resolver (mutable on purpose: the refresher updates them)."""

    http_requests: int = 0
    errors: int = 0
    changes: int = 0


class _CountingHTTPClient(consul.aio.HTTPClient):  # type: ignore[misc]
    """py-consul's aiohttp transport, counting each request it sends."""

    def __init__(self, *args: Any, on_request: Callable[[], None], **kwargs: Any) -> None:
        with warnings.catch_warnings():  # py-consul passes aiohttp's deprecated ssl kwargs
            warnings.simplefilter("ignore", DeprecationWarning)
            super().__init__(*args, **kwargs)
        self._on_request = on_request

    async def _request(self, *args: Any, **kwargs: Any) -> Any:
        self._on_request()
        return await super()._request(*args, **kwargs)


class _CountingConsul(consul.aio.Consul):  # type: ignore[misc]
    def __init__(self, *args: Any, on_request: Callable[[], None], **kwargs: Any) -> None:
        self._on_request = on_request
        super().__init__(*args, **kwargs)

    def http_connect(
        self, host: str, port: int, scheme: str, verify: bool | str = True, cert: Any = None
    ) -> Any:
        return _CountingHTTPClient(
            host,
            port,
            scheme,
            verify=verify,
            cert=cert,
            connections_timeout=self.connections_timeout,
            on_request=self._on_request,
        )


def consul_client(
    url: str,
    *,
    token: str | None = None,
    datacenter: str | None = None,
    timeout: float = 10.0,
    on_request: Callable[[], None] = lambda: None,
) -> Any:
    """A py-consul asyncio client for ``http(s)://host:port``; call inside the running loop."""
    parts = urllib.parse.urlsplit(url if "//" in url else f"http://{url}")
    scheme = "https" if parts.scheme == "https" else "http"
    return _CountingConsul(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 8500,
        scheme=scheme,
        token=token,
        dc=datacenter,
        verify=scheme == "https",
        connections_timeout=timeout,
        on_request=on_request,
    )


def backoff_delay(
    attempt: int, *, base: float = 0.1, cap: float = 5.0, rng: Callable[[], float] = random.random
) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random, never above ``cap``.

    The fixed half keeps a flapping registry from being hammered in a tight
    loop; the random half spreads the retries of many sidecars apart.
    """
    ceiling = min(cap, base * 2.0 ** max(0, attempt - 1))
    return ceiling / 2 + rng() * ceiling / 2


def _parse_wait(wait: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for suffix in ("ms", "s", "m", "h"):
        if wait.endswith(suffix):
            return float(wait[: -len(suffix)]) * units[suffix]
    return float(wait)


def endpoints_from_health(entries: list[dict[str, Any]] | None) -> tuple[Endpoint, ...]:
    """Endpoints from a ``/v1/health/service`` answer, sorted by service id."""
    endpoints = []
    for entry in entries or ():
        svc = entry.get("Service") or {}
        node = entry.get("Node") or {}
        weights = svc.get("Weights") or {}
        endpoints.append(
            Endpoint(
                address=svc.get("Address") or node.get("Address") or "",
                port=int(svc.get("Port") or 0),
                tags=tuple(svc.get("Tags") or ()),
                meta=MappingProxyType(dict(svc.get("Meta") or {})),
                weight=int(weights.get("Passing", 1)),
                id=str(svc.get("ID") or ""),
            )
        )
    return tuple(sorted(endpoints, key=lambda ep: (ep.id, ep.address, ep.port)))


class ConsulResolver:
    """:class:`~grpcmesh.sdk.discovery.Resolver` backed by a Consul agent."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8500",
        *,
        datacenter: str | None = None,
        tag: str | None = None,
        wait: str = "30s",
        token: str | None = None,
        first_answer_timeout: float = 5.0,
        backoff_cap: float = 5.0,
    ) -> None:
        self.url = url
        self.datacenter = datacenter
        self.tag = tag
        self.wait = wait
        self.token = token
        self.first_answer_timeout = first_answer_timeout
        self.backoff_cap = backoff_cap
        self.stats = ConsulStats()
        self.last_error: str | None = None
        self._client: Any = None
        self._services: dict[str, Published] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._closed = False

    def _count_request(self) -> None:
        self.stats.http_requests += 1

    def _published(self, service: str) -> Published:
        if self._closed:
            raise RuntimeError("ConsulResolver is closed")
        pub = self._services.get(service)
        if pub is None:
            if self._client is None:
                # Consul holds a blocking query up to wait + wait/16; leave room before giving up.
                timeout = _parse_wait(self.wait) * 1.1 + 5.0
                self._client = consul_client(
                    self.url,
                    token=self.token,
                    datacenter=self.datacenter,
                    timeout=timeout,
                    on_request=self._count_request,
                )
            pub = self._services[service] = Published(service)
            self._tasks[service] = asyncio.create_task(self._refresh(pub), name=f"consul-watch:{service}")
        return pub

    async def resolve(self, service: str) -> Resolution:
        """The cached snapshot; waits (bounded) only for a service's very first answer."""
        pub = self._published(service)
        if not pub.ready.is_set():
            await wait_set(pub.ready, self.first_answer_timeout)
        if not pub.ready.is_set():
            return Resolution(service, (), stale=True)
        return pub.current

    async def watch(self, service: str) -> AsyncIterator[Resolution]:
        """The current snapshot, then one per change (endpoints or staleness)."""
        async for resolution in self._published(service).changes():
            yield resolution

    async def _query(self, service: str, index: str | None) -> tuple[str | None, Any]:
        result: tuple[str | None, Any] = await self._client.health.service(
            service, index=index, wait=self.wait, passing=True, tag=self.tag, dc=self.datacenter
        )
        return result

    async def _refresh(self, pub: Published) -> None:
        index: str | None = None
        failures = 0
        while not self._closed:
            try:
                new_index, entries = await self._query(pub.service, index)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # any transport or API error: serve stale, back off
                failures += 1
                self.stats.errors += 1
                self.last_error = f"{type(err).__name__}: {err}"
                if pub.mark_stale() or failures == 1:
                    log.warning(
                        "consul query for %s failed (%s); serving last known endpoints",
                        pub.service,
                        self.last_error,
                        extra={"service": pub.service, "consul": self.url},
                    )
                index = None  # the agent may have restarted with a lower raft index
                await asyncio.sleep(backoff_delay(failures, cap=self.backoff_cap))
                continue
            if failures:
                log.info("consul reachable again for %s", pub.service, extra={"service": pub.service})
            failures = 0
            self.last_error = None
            if pub.publish(endpoints_from_health(entries)):
                self.stats.changes += 1
            # Index must grow; if it went backwards (or is missing) start over with a plain query.
            index = new_index if new_index and (index is None or int(new_index) >= int(index)) else None

    async def close(self) -> None:
        """Cancels every watch task and closes the HTTP session; watchers end."""
        self._closed = True
        await cancel_and_wait(*self._tasks.values())
        for pub in self._services.values():
            pub.close()
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def __aenter__(self) -> ConsulResolver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
