"""The scaled ConsulResolver on a real agent: first calls overtake a backlog, idle services expire."""

from __future__ import annotations

import asyncio
import os

import pytest

from grpcmesh.sdk.discovery import ConsulResolver
from tests.support.consul import ConsulAgent
from tests.support.consul_scale import agent_connections, register_services, service_name, set_status
from tests.support.procs import wait_for_async

pytestmark = pytest.mark.consul

PORTS = (7001, 7002)


async def test_a_first_call_is_read_ahead_of_a_backlog_of_changes(consul: ConsulAgent) -> None:
    names = [service_name(i) for i in range(400)]
    register_services(consul.http_url, [*names, "late"], PORTS)
    async with ConsulResolver(consul.http_url, max_reads=1) as resolver:
        answers = await asyncio.gather(*(resolver.resolve(n) for n in names))
        assert all(len(a.endpoints) == 2 for a in answers)
        await asyncio.to_thread(set_status, consul.http_url, names, 0, PORTS[0], "critical")

        async def backlog() -> bool:
            return resolver.pending_reads >= 100

        await wait_for_async(backlog, timeout=30, interval=0.001, what="a backlog of change reads")
        late = await resolver.resolve("late")
        assert {ep.port for ep in late.endpoints} == set(PORTS)
        assert resolver.pending_reads >= 50, "the first call waited for the backlog"

        async def settled() -> bool:
            answers = [await resolver.resolve(n) for n in names]
            return all(len(a.endpoints) == 1 for a in answers)

        await wait_for_async(settled, timeout=30, interval=0.05, what="every change applied")
        assert agent_connections(os.getpid(), consul.http_port) <= resolver.settings.max_connections


async def test_idle_services_expire_and_come_back_on_next_use(consul: ConsulAgent) -> None:
    names = [service_name(i) for i in range(5)]
    register_services(consul.http_url, names, PORTS)
    async with ConsulResolver(consul.http_url, idle_ttl=0.5, max_services=3) as resolver:
        for name in names:
            assert len((await resolver.resolve(name)).endpoints) == 2
        assert resolver.watched == 3  # the least recently used two were dropped at once
        watch = resolver.watch(names[4])
        await anext(watch)

        async def expired() -> bool:
            return resolver.watched == 1

        await wait_for_async(expired, timeout=15, interval=0.05, what="idle services to expire")
        assert resolver.evictions == 4  # two over the cap, then the two idle ones (not the watched one)
        await watch.aclose()
        reads = resolver.stats.reads
        assert len((await resolver.resolve(names[0])).endpoints) == 2  # back: one fresh read
        assert resolver.stats.reads == reads + 1


async def test_resync_catches_what_the_feed_cannot_see(consul: ConsulAgent) -> None:
    """An instance re-registered in place on a new port changes no check: only the resync sees it."""
    register_services(consul.http_url, ["moved"], PORTS)
    async with ConsulResolver(consul.http_url, resync_interval=1.0, wait="5m") as resolver:
        assert {ep.port for ep in (await resolver.resolve("moved")).endpoints} == set(PORTS)

        async def fed() -> bool:
            return resolver.stats.feed_answers > 0

        await wait_for_async(fed, timeout=15, interval=0.02, what="the feed's first answer")
        feed_answers = resolver.stats.feed_answers
        await asyncio.to_thread(register_services, consul.http_url, ["moved"], (7001, 7999))

        async def moved() -> bool:
            return {ep.port for ep in (await resolver.resolve("moved")).endpoints} == {7001, 7999}

        await wait_for_async(moved, timeout=15, interval=0.05, what="the new port after a resync")
        assert resolver.stats.feed_answers == feed_answers, "the feed saw it: this test proves nothing"


async def test_a_small_watch_set_gets_a_feed_the_size_of_what_it_watches(consul: ConsulAgent) -> None:
    names = [service_name(i) for i in range(300)]
    register_services(consul.http_url, names, PORTS)
    async with ConsulResolver(consul.http_url, feed_filter_max=10) as resolver:

        async def feed_covers(checks: int) -> bool:
            return resolver.stats.feed_checks == checks

        for name in names[:3]:
            assert len((await resolver.resolve(name)).endpoints) == 2
        await wait_for_async(lambda: feed_covers(6), timeout=15, interval=0.02, what="a feed of 3 x 2 checks")

        # A fourth service: the held query is re-issued with it, and its changes arrive.
        watch = resolver.watch(names[150])
        assert len((await anext(watch)).endpoints) == 2
        await wait_for_async(lambda: feed_covers(8), timeout=15, interval=0.02, what="a feed of 4 x 2 checks")
        await asyncio.to_thread(set_status, consul.http_url, [names[150]], 0, PORTS[0], "critical")
        changed = await asyncio.wait_for(anext(watch), 15)
        assert {ep.port for ep in changed.endpoints} == {PORTS[1]}
        await watch.aclose()

        # Past feed_filter_max the feed covers the whole datacenter.
        for name in names[:20]:
            await resolver.resolve(name)

        async def unfiltered() -> bool:  # every service check, plus the agent's own node check
            return resolver.stats.feed_checks > 600

        await wait_for_async(unfiltered, timeout=15, interval=0.02, what="an unfiltered feed")
