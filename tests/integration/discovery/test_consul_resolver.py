"""ConsulResolver against a real ``consul agent -dev`` and real gRPC apps with grpc.health.v1."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from grpcmesh.sdk.discovery import ConsulResolver, Resolution, ResolveError, require_endpoints
from tests.integration.discovery.apps import (
    CHECK_INTERVAL,
    EVENTSTORE,
    SERVICE,
    fleet,
    next_matching,
    ports_of,
    until_ports,
)
from tests.support.consul import ConsulAgent
from tests.support.procs import free_port

pytestmark = pytest.mark.consul

FIRST_PASS = 10.0  # a new check first runs within one interval; generous bound for a loaded machine
LEAVE_BOUND = CHECK_INTERVAL + 1.0  # the acceptance bound: check interval + 1 s


async def test_health_filtered_and_watched_without_a_lookup_per_call(consul: ConsulAgent) -> None:
    async with fleet(consul.http_url, 3) as apps, ConsulResolver(consul.http_url) as resolver:
        await until_ports(resolver, apps.ports, FIRST_PASS, "three passing instances")
        eps = (await resolver.resolve(SERVICE)).endpoints
        assert {ep.id for ep in eps} == {f"{SERVICE}-127.0.0.1-{p}" for p in apps.ports}
        assert all(ep.meta["grpc_services"] == EVENTSTORE for ep in eps)
        assert all(ep.meta["zone"] == "test" and ep.tags == ("v1",) and ep.weight == 1 for ep in eps)

        # Many resolves, no read: the cache is kept by the change feed and reads of changed services.
        before = resolver.stats.reads
        for _ in range(2000):
            assert len((await resolver.resolve(SERVICE)).endpoints) == 3
        assert resolver.stats.reads - before <= 1

        # One app goes away: it leaves within the check interval + 1 s.
        watch = resolver.watch(SERVICE)
        assert {ep.port for ep in (await anext(watch)).endpoints} == apps.ports
        victim = apps.apps[1].port
        before = resolver.stats.reads
        await apps.stop_app(1)
        started = time.monotonic()
        while victim in await ports_of(resolver):
            assert time.monotonic() - started < LEAVE_BOUND, f"{victim} still resolved after {LEAVE_BOUND}s"
            await asyncio.sleep(0.005)
        assert await ports_of(resolver) == apps.ports - {victim}
        changed = await asyncio.wait_for(anext(watch), 1)  # the watch saw the same change
        assert {ep.port for ep in changed.endpoints} == apps.ports - {victim}
        await watch.aclose()
        assert resolver.stats.reads - before <= 3, "resolve() must not query Consul per call"

        # It comes back on the same port: it returns once its check passes again.
        await apps.restart_app(1)
        await until_ports(resolver, apps.ports, LEAVE_BOUND, "the restarted instance to return")
        assert resolver.last_error is None


async def test_outage_serves_stale_and_watch_recovers_after_consul_restart(consul: ConsulAgent) -> None:
    async with (
        fleet(consul.http_url, 2, resync=0.2) as apps,
        ConsulResolver(consul.http_url, backoff_cap=0.5) as resolver,
    ):
        watch = resolver.watch(SERVICE)

        def healthy(res: Resolution) -> bool:
            return not res.stale and {ep.port for ep in res.endpoints} == apps.ports

        fresh = await next_matching(watch, healthy, FIRST_PASS)
        assert isinstance(fresh, Resolution)

        consul.kill()
        stale = await next_matching(watch, lambda res: res.stale, 10)
        assert isinstance(stale, Resolution)
        assert stale.endpoints == fresh.endpoints
        now = await resolver.resolve(SERVICE)
        assert now.stale
        assert now.endpoints == fresh.endpoints
        assert now.age > 0
        assert require_endpoints(now) == fresh.endpoints  # calls keep flowing during the outage
        assert resolver.stats.errors >= 1
        assert resolver.last_error

        consul.restart()  # same ports, empty state: the registrations' resync puts them back
        recovered = await next_matching(watch, healthy, 30)
        assert isinstance(recovered, Resolution)
        assert not (await resolver.resolve(SERVICE)).stale
        assert resolver.last_error is None
        await watch.aclose()


async def test_unknown_service_is_empty_and_unavailable_at_call_time(consul: ConsulAgent) -> None:
    async with ConsulResolver(consul.http_url) as resolver:
        res = await resolver.resolve("no-such-service")
        assert res.endpoints == ()
        assert not res.stale
        with pytest.raises(ResolveError, match="no healthy endpoints") as info:
            require_endpoints(res)
        assert info.value.code is grpc.StatusCode.UNAVAILABLE


async def test_tag_filter(consul: ConsulAgent) -> None:
    async with (
        fleet(consul.http_url, 1) as apps,
        ConsulResolver(consul.http_url, tag="v1") as v1,
        ConsulResolver(consul.http_url, tag="v2") as v2,
    ):
        await until_ports(v1, apps.ports, FIRST_PASS, "the v1 instance")
        assert (await v2.resolve(SERVICE)).endpoints == ()


async def test_unreachable_consul_from_the_start_is_stale_empty_not_an_exception() -> None:
    async with ConsulResolver(f"http://127.0.0.1:{free_port()}", first_answer_timeout=5) as resolver:
        res = await resolver.resolve(SERVICE)
        assert res.endpoints == ()
        assert res.stale
        assert resolver.last_error
        with pytest.raises(ResolveError, match="registry is unreachable"):
            require_endpoints(res)
