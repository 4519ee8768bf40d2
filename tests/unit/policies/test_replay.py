"""The replay buffer behind stream retries: one reader of the source, any number of attempts."""

from __future__ import annotations

from collections.abc import AsyncIterator

from grpcmesh.sidecar.replay import Replay


async def source(n: int) -> AsyncIterator[bytes]:
    for i in range(n):
        yield b"m%d" % i


async def take(it: AsyncIterator[bytes], n: int) -> list[bytes]:
    return [await it.__anext__() for _ in range(n)]


async def test_second_attempt_replays_what_the_first_consumed() -> None:
    replay = Replay(source(4), limit_bytes=1000)
    first = replay.iterate()
    assert await take(first, 2) == [b"m0", b"m1"]
    second = replay.iterate()
    assert [m async for m in second] == [b"m0", b"m1", b"m2", b"m3"]
    assert [m async for m in first] == []  # the abandoned attempt stops


async def test_commit_stops_recording() -> None:
    replay = Replay(source(3), limit_bytes=1000)
    it = replay.iterate()
    assert await take(it, 1) == [b"m0"]
    replay.commit()
    assert not replay.replayable
    assert [m async for m in it] == [b"m1", b"m2"]


async def test_overflow_makes_it_unreplayable_without_losing_messages() -> None:
    replay = Replay(source(5), limit_bytes=5)
    it = replay.iterate()
    assert [m async for m in it] == [b"m0", b"m1", b"m2", b"m3", b"m4"]
    assert not replay.replayable
