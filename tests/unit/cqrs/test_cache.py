"""The stream cache returns exactly what the store holds, reading only the new tail."""

from __future__ import annotations

import uuid

import pytest

from grpcmesh.api.v1 import eventstore_pb2 as es
from grpcmesh.sdk import Aborted
from grpcmesh.services.commandbus.cache import CachedStreams
from tests.unit.cqrs.fakes import MemoryStreams


def event() -> es.ProposedEvent:
    return es.ProposedEvent(id=str(uuid.uuid4()), type="T")


async def test_reads_match_the_store_as_it_grows() -> None:
    store = MemoryStreams()
    cache = CachedStreams(store)
    assert await cache.read("s-1") == []
    await store.append("s-1", None, [event(), event()])
    assert await cache.read("s-1") == await store.read("s-1")
    await cache.append("s-1", 1, [event()])
    assert await cache.read("s-1") == await store.read("s-1")
    assert [e.revision for e in await cache.read("s-1", from_revision=2)] == [2]


async def test_a_stream_that_lost_events_is_read_again() -> None:
    store = MemoryStreams()
    cache = CachedStreams(store)
    await store.append("s-1", None, [event(), event()])
    await cache.read("s-1")
    del store.streams["s-1"][1:]  # truncated behind the cache's back
    assert await cache.read("s-1") == await store.read("s-1")


async def test_least_recently_used_streams_are_dropped() -> None:
    store = MemoryStreams()
    cache = CachedStreams(store, max_streams=2)
    for name in ("a-1", "b-1", "c-1"):
        await store.append(name, None, [event()])
        await cache.read(name)
    assert list(cache._streams) == ["b-1", "c-1"]


async def test_an_append_extends_the_memory_and_a_failed_one_forgets_it() -> None:
    store = MemoryStreams()
    cache = CachedStreams(store)
    assert cache.known("s-1") is None
    await cache.append("s-1", None, [event(), event()])
    known = cache.known("s-1")
    assert known is not None
    assert [(e.id, e.revision) for e in known] == [(e.id, e.revision) for e in await store.read("s-1")]
    assert known[-1].position == (await store.read("s-1"))[-1].position
    await store.append("s-1", 1, [event()])  # another writer
    with pytest.raises(Aborted):
        await cache.append("s-1", 1, [event()])
    assert cache.known("s-1") is None


async def test_a_duplicate_append_forgets_the_stream() -> None:
    store = MemoryStreams()
    cache = CachedStreams(store)
    first = [event()]
    await store.append("s-1", None, first)
    await cache.append("s-1", None, first)  # a retry of a write the cache never saw
    assert cache.known("s-1") is None
