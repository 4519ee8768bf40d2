"""A resolver in a process of its own, so its memory, CPU and sockets can be measured.

Run: ``python -m tests.support.resolver_proc --url URL --mode feed|per_service
--services N --probes P``. It resolves ``scale-00000`` … ``N-1`` (all at once),
then times the first resolve of ``P`` never-seen services one after another
(while the N stay watched), then watches all N and prints one JSON line per
change it sees, until its stdin closes. Lines: ``{"event": "ready", "first_ms":
[...], "empty": k, "ramp_s": s}`` (``empty``: first resolves that timed out,
re-resolved until all answered; ``ramp_s``: time until all N had endpoints) then ``{"event": "change", "service": s, "t": unix time,
"ports": [...]}``.

``per_service`` is the old design, the baseline: one blocking query per service,
each holding its own connection (no connection limit, as if py-consul's 100
had been raised).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import urllib.parse
from collections.abc import AsyncIterator

from grpcmesh.sdk.discovery import ConsulResolver, Resolution, Resolver
from grpcmesh.sdk.discovery.consul_http import AgentError, AgentHTTP
from grpcmesh.sdk.discovery.consul_state import endpoints_from_health
from grpcmesh.sdk.discovery.published import Published
from tests.support.consul_scale import service_name

__all__ = ["PerServiceResolver"]


class PerServiceResolver:
    """Baseline: one long-poll task and one held connection per watched service."""

    def __init__(self, url: str, wait: str = "30s") -> None:
        self.http = AgentHTTP(url, max_connections=100_000)
        self.wait = wait
        self._pubs: dict[str, Published] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def _pub(self, service: str) -> Published:
        pub = self._pubs.get(service)
        if pub is None:
            pub = self._pubs[service] = Published(service)
            self._tasks.append(asyncio.create_task(self._poll(pub)))
        return pub

    async def _poll(self, pub: Published) -> None:
        index: int | None = None
        path = "/v1/health/service/" + urllib.parse.quote(pub.service, safe="")
        while True:
            params = {"passing": "1", "wait": self.wait, "index": str(index) if index else None}
            try:
                index, answer = await self.http.get(path, params, seconds=40)
            except AgentError:
                pub.mark_stale()
                index = None
                await asyncio.sleep(1)
                continue
            pub.publish(endpoints_from_health(answer))

    async def resolve(self, service: str) -> Resolution:
        pub = self._pub(service)
        await pub.ready.wait()
        return pub.current

    async def watch(self, service: str) -> AsyncIterator[Resolution]:
        async for resolution in self._pub(service).changes():
            yield resolution

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.http.close()


def emit(**line: object) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


async def follow(resolver: Resolver, service: str) -> None:
    first = True
    async for resolution in resolver.watch(service):
        if not first:
            emit(event="change", service=service, t=time.time(), ports=[e.port for e in resolution.endpoints])
        first = False


async def run(url: str, mode: str, services: int, probes: int) -> None:
    resolver: Resolver = ConsulResolver(url) if mode == "feed" else PerServiceResolver(url)
    names = [service_name(i) for i in range(services)]
    started = time.perf_counter()
    answers = await asyncio.gather(*(resolver.resolve(n) for n in names))
    empty = sum(1 for a in answers if not a.endpoints)  # first resolves that gave up (first_answer_timeout)
    while pending := [n for n, a in zip(names, answers, strict=True) if not a.endpoints]:
        answers = [
            a if a.endpoints else await resolver.resolve(n) for n, a in zip(names, answers, strict=True)
        ]
        if len(pending) == sum(1 for a in answers if not a.endpoints):
            await asyncio.sleep(0.1)
    ramp_s = time.perf_counter() - started
    first_ms = []
    for i in range(services, services + probes):
        started = time.perf_counter()
        await resolver.resolve(service_name(i))
        first_ms.append((time.perf_counter() - started) * 1000)
    watchers = [asyncio.create_task(follow(resolver, n)) for n in names]
    await asyncio.sleep(0.5)  # the feed's answer after the last first read
    feed_checks = resolver.stats.feed_checks if isinstance(resolver, ConsulResolver) else 0
    emit(event="ready", first_ms=first_ms, empty=empty, ramp_s=ramp_s, feed_checks=feed_checks)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes it
    for task in watchers:
        task.cancel()
    await asyncio.gather(*watchers, return_exceptions=True)
    await resolver.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--mode", choices=("feed", "per_service"), default="feed")
    parser.add_argument("--services", type=int, required=True)
    parser.add_argument("--probes", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(run(args.url, args.mode, args.services, args.probes))


if __name__ == "__main__":
    main()
