"""Catch-up subscribers cost bytes, not events: many subscribers on a log, half never reading,
grow the event store's RSS by a bounded amount each; one more than the limit is refused."""

from __future__ import annotations

import grpc

from grpcmesh.api.v1 import eventstore_pb2_grpc as pb_grpc
from tests.support.subscribers import fill_log, subscriber_load

SUBSCRIBERS = 50
PER_SUBSCRIBER_LIMIT = 256 * 1024


async def test_subscribers_that_stop_reading_cost_bounded_memory(start_eventstore, sqlite_url) -> None:  # type: ignore[no-untyped-def]
    server = start_eventstore(sqlite_url, "--max-subscriptions", str(SUBSCRIBERS))
    async with grpc.aio.insecure_channel(server.target) as channel:
        await fill_log(pb_grpc.EventStoreStub(channel), events=5000, size=1024)
    result = await subscriber_load(server.target, server.proc.pid, SUBSCRIBERS, probes=20, open_timeout=120)
    assert result.growth_per_subscriber <= PER_SUBSCRIBER_LIMIT, result
    assert result.refused == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"limit is {SUBSCRIBERS}" in result.refused_message
    assert server.proc.alive()
