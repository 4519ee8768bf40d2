"""The admin ``/tap`` stream over a real socket: filtered records, the listener cap, slow readers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from grpcmesh.sidecar.admin import AdminServer
from grpcmesh.sidecar.tap import MAX_LISTENERS, QUEUE, Tap
from tests.support.procs import wait_for_async


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, Tap]]:
    tap = Tap()
    server = AdminServer("127.0.0.1", 0, {}, streams={"/tap": tap.stream})
    await server.start()
    try:
        yield f"http://127.0.0.1:{server.port}/tap", tap
    finally:
        await server.close()


async def _lines(resp: aiohttp.ClientResponse, n: int) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    while len(out) < n:
        line = (await asyncio.wait_for(resp.content.readline(), 10)).strip()
        if line:
            out.append(json.loads(line))
    return out


async def test_tap_streams_matching_calls(served: tuple[str, Tap]) -> None:
    url, tap = served
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        async with http.get(url, params={"service": "orders", "errors": "1"}) as resp:
            assert resp.status == 200
            assert await _lines(resp, 1) == [{"tap": "started"}]
            await wait_for_async(lambda: asyncio.sleep(0, tap.listening), timeout=5, what="listener")
            tap.publish("inbound", "orders", "/o.O/Get", "OK", 0.001, "r1")  # filtered out: OK
            tap.publish("inbound", "web", "/w.W/Get", "INTERNAL", 0.001, "r2")  # another service
            tap.publish("inbound", "orders", "/o.O/Get", "UNAVAILABLE", 0.0025, "r3")
            [record] = await _lines(resp, 1)
            assert (record["request_id"], record["code"], record["latency_ms"]) == ("r3", "UNAVAILABLE", 2.5)
        async with http.get(url, params={"direction": "sideways"}) as resp:
            assert resp.status == 400
            assert "direction:" in await resp.text()
    await wait_for_async(lambda: asyncio.sleep(0, not tap.listening), timeout=10, what="listener gone")


async def test_listener_cap_and_a_slow_reader_loses_records_not_memory(served: tuple[str, Tap]) -> None:
    url, tap = served
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        streams = [await http.get(url) for _ in range(MAX_LISTENERS)]
        try:
            for resp in streams:
                assert await _lines(resp, 1) == [{"tap": "started"}]
            async with http.get(url) as over:
                assert over.status == 503
            # nobody reads while far more than a queue's worth is published in one go
            for i in range(QUEUE * 3):
                tap.publish("inbound", "orders", "/o.O/Get", "OK", 0.001, f"r{i}")
            first = streams[0]
            seen = await _lines(first, QUEUE + 1)
            dropped = [r for r in seen if "dropped" in r]
            assert dropped
            assert dropped[0]["dropped"] == QUEUE * 2
        finally:
            for resp in streams:
                resp.close()
