"""Pure pieces of the scaled Consul resolver: settings, change digests, the watch table."""

from __future__ import annotations

import asyncio

import pytest

from grpcmesh.sdk.discovery import ConsulResolver, ConsulSettings, resolver_from_url
from grpcmesh.sdk.discovery.consul_feed import ChangeFeed, feed_filter
from grpcmesh.sdk.discovery.consul_http import AgentHTTP
from grpcmesh.sdk.discovery.consul_state import ConsulStats, changed_services, digests
from grpcmesh.sdk.discovery.watch_table import CHANGE, FIRST, RESYNC, WatchTable


def check(
    service: str, status: str = "passing", *, node: str = "n1", tags: tuple[str, ...] = (), **kw: object
) -> dict[str, object]:
    sid = f"{service}-{node}"
    base = {"Node": node, "CheckID": f"c-{sid}", "ServiceID": sid, "ServiceName": service, "Status": status}
    return {**base, "ServiceTags": list(tags), "Output": "ok", "ModifyIndex": 5, **kw}


def node_check(node: str, status: str) -> dict[str, object]:
    return {"Node": node, "CheckID": "serfHealth", "ServiceName": "", "Status": status}


def test_settings_from_url_query_with_types_aliases_and_bound() -> None:
    s = ConsulSettings.from_query(
        {"dc": "eu1", "max_reads": "2", "idle_ttl": "1m", "resync": "0", "wait": "5s"}
    )
    assert (s.datacenter, s.max_reads, s.idle_ttl, s.resync_interval, s.wait_seconds) == (
        "eu1",
        2,
        60.0,
        0.0,
        5.0,
    )
    assert s.max_connections == 3
    resolver = resolver_from_url("consul://127.0.0.1:8500?max_services=7&token=t")
    assert isinstance(resolver, ConsulResolver)
    assert (resolver.settings.max_services, resolver.settings.token) == (7, "t")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"max_conns": "3"}, "'max_conns' is unknown"),
        ({"max_reads": "many"}, "'max_reads': 'many' is not a number"),
        ({"max_reads": "0"}, "max_reads must be >= 1"),
        ({"idle_ttl": "-1"}, "idle_ttl must be >= 0"),
        ({"wait": "0s"}, "wait must be a positive duration"),
        ({"stale_feed": "maybe"}, "'stale_feed': 'maybe' is not a boolean"),
    ],
)
def test_settings_reject_bad_values_naming_the_field(query: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ConsulSettings.from_query(query)
    with pytest.raises(ValueError, match=message):
        resolver_from_url("consul://127.0.0.1:8500?" + "&".join(f"{k}={v}" for k, v in query.items()))


def test_digest_follows_status_tags_instances_and_node_health_not_output() -> None:
    before = digests([check("a"), check("b"), node_check("n1", "passing")])
    assert set(before) == {"a", "b"}
    same = digests([check("a", Output="other", ModifyIndex=9), check("b"), node_check("n1", "passing")])
    assert changed_services(before, same, ["a", "b"]) == set()
    critical = digests([check("a", "critical"), check("b"), node_check("n1", "passing")])
    assert changed_services(before, critical, ["a", "b"]) == {"a"}
    retagged = digests([check("a", tags=("v2",)), check("b"), node_check("n1", "passing")])
    assert changed_services(before, retagged, ["a", "b"]) == {"a"}
    scaled = digests([check("a"), check("a", node="n2"), check("b"), node_check("n1", "passing")])
    assert changed_services(before, scaled, ["a", "b"]) == {"a"}
    node_down = digests([check("a"), check("b"), node_check("n1", "critical")])
    assert changed_services(before, node_down, ["a", "b"]) == {"a", "b"}
    gone = digests([check("b"), node_check("n1", "passing")])
    assert changed_services(before, gone, ["a", "b", "never-registered"]) == {"a"}
    assert digests(None) == {}


async def test_first_reads_overtake_queued_change_reads() -> None:
    table = WatchTable(max_services=100, idle_ttl=60)
    old = [table.use(f"s{i}")[0] for i in range(5)]
    for entry in old:
        table.schedule(entry, CHANGE)
        table.schedule(entry, RESYNC)  # already due sooner: not queued twice
    new, created = table.use("new")
    assert created
    table.schedule(new, FIRST)
    assert (await table.next_read()) is new
    order = [(await table.next_read()).service for _ in old]
    assert order == [e.service for e in old]
    assert table.use("s0") == (old[0], False)


async def test_a_change_during_a_read_reads_once_more() -> None:
    table = WatchTable(max_services=10, idle_ttl=60)
    entry, _ = table.use("a")
    table.schedule(entry, FIRST)
    assert await table.next_read() is entry
    table.schedule(entry, CHANGE)  # while reading: remembered, not queued
    table.schedule(entry, CHANGE)
    table.done_reading(entry)
    assert await asyncio.wait_for(table.next_read(), 1) is entry
    table.done_reading(entry)
    pending = asyncio.ensure_future(table.next_read())
    await asyncio.sleep(0.01)
    assert not pending.done()  # exactly one more read, not two
    pending.cancel()


def test_lru_cap_drops_idle_services_first_and_ttl_spares_watched_ones() -> None:
    table = WatchTable(max_services=3, idle_ttl=10)
    a, _, c = (table.use(s)[0] for s in "abc")
    a.watchers = 1
    table.use("b")  # b is now more recently used than c
    table.use("d")
    assert [e.service for e in table] == ["a", "b", "d"]  # c: least recently used and idle
    assert c.pub.closed
    table.use("e")
    table.use("f")
    assert [e.service for e in table] == ["a", "e", "f"]  # the watched one outlives idle newer ones
    for entry in table:
        entry.last_used -= 100
    assert table.expire() == ["e", "f"]  # past the TTL, but "a" is still watched
    assert [e.service for e in table] == ["a"]
    assert table.evictions == 5


def test_feed_filter_names_each_service_and_keeps_failing_node_checks() -> None:
    text = feed_filter(frozenset({"b-1", 'we"ird', "a.b"}))
    assert text == (
        '(ServiceName == "" and Status != "passing") or ServiceName matches "^(a\\\\.b|b\\\\-1|we\\"ird)$"'
    )


async def test_feed_answers_queue_changed_services_and_re_read_new_ones_at_low_priority() -> None:
    table = WatchTable(max_services=10, idle_ttl=60)
    feed = ChangeFeed(
        AgentHTTP("http://127.0.0.1:1", max_connections=1),
        table,
        ConsulSettings(),
        ConsulStats(),
        lambda *a: None,
    )
    a, b = table.use("a")[0], table.use("b")[0]
    a.read_index = b.read_index = 7
    feed.on_answer(10, [check("a"), check("b")], scope=frozenset({"a", "b"}), recovered=False)
    assert {(await table.next_read()).service for _ in range(2)} == {"a", "b"}  # first answer: re-read
    for entry in (a, b):
        table.done_reading(entry)

    c = table.use("c")[0]
    c.read_index = 9
    feed.on_answer(
        11, [check("a", "critical"), check("b"), check("c")], scope=frozenset("abc"), recovered=False
    )
    first = await table.next_read()
    assert (first.service, first.reading_as) == ("a", CHANGE)  # a changed; b did not
    table.done_reading(first)
    second = await table.next_read()
    assert (second.service, second.reading_as) == ("c", RESYNC)  # c: new to the filter, checked once
    assert table.pending == 0
    assert feed.stats.feed_answers == 2
    assert feed.stats.feed_checks == 3
