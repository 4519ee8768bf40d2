"""Many catch-up subscribers against a running event store, half of them never reading.

Shared by the memory test (tests/integration/eventstore/test_subscriber_memory.py) and the
bench (bench/eventstore_subscribers.py): fill a log, open ``subscribers`` subscriptions
(half take one message and stop reading, half keep reading), sample the server's RSS
and Append latency while they are open, then ask for one subscription more than the
server allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import grpc

from grpcmesh.api.v1 import eventstore_pb2 as pb
from grpcmesh.api.v1 import eventstore_pb2_grpc as pb_grpc

__all__ = ["LoadResult", "fill_log", "rss", "subscriber_load"]

_PER_CHANNEL = 10  # subscriptions per HTTP/2 connection (readers and stalled ones apart, as separate
# clients would be: a connection whose stalled streams hold its window would stall its readers too)


def rss(pid: int) -> int:
    """Resident set size of ``pid`` in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def _event(size: int) -> pb.ProposedEvent:
    return pb.ProposedEvent(id=str(uuid.uuid4()), type="Filled", data=b"e" * size)


async def fill_log(stub: pb_grpc.EventStoreStub, events: int, size: int, batch: int = 500) -> None:
    for start in range(0, events, batch):
        count = min(batch, events - start)
        await stub.Append(
            pb.AppendRequest(stream_id=f"fill-{start}", events=[_event(size) for _ in range(count)])
        )


async def _append_p99(address: str, count: int) -> float:
    """p99 of ``count`` sequential one-event Appends in milliseconds, measured from a process of
    its own (the subscribers' client process is busy and would add its own delays)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.subscribers", address, str(count), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"append probe exited {proc.returncode}")
    return float(out.decode().strip().splitlines()[-1])


async def _probe(address: str, count: int) -> float:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.EventStoreStub(channel)
        await stub.Append(pb.AppendRequest(stream_id="probe", events=[_event(100)]))  # connect first
        return await _timed_appends(stub, count)


async def _timed_appends(stub: pb_grpc.EventStoreStub, count: int) -> float:
    took = []
    for _ in range(count):
        started = time.perf_counter()
        await stub.Append(pb.AppendRequest(stream_id="probe", events=[_event(100)]))
        took.append((time.perf_counter() - started) * 1000)
    took.sort()
    return took[min(len(took) - 1, int(len(took) * 0.99))]


@dataclass(frozen=True)
class LoadResult:
    subscribers: int
    rss_before: int
    rss_peak: int
    append_p99_before_ms: float
    append_p99_during_ms: float
    refused: grpc.StatusCode | None
    refused_message: str

    @property
    def growth_per_subscriber(self) -> float:
        return (self.rss_peak - self.rss_before) / self.subscribers


async def _subscriber(stub: pb_grpc.EventStoreStub, reading: bool, started: asyncio.Future[None]) -> None:
    """One subscription; RESOURCE_EXHAUSTED is retried for a while (the warm-up's subscriptions
    may not be released by the server yet), any other failure fails ``started``."""
    for _ in range(200):
        call = stub.Subscribe(pb.SubscribeRequest(batch_size=64 if reading else 1))
        try:
            await call.read()
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                started.set_exception(err)
                return
            await asyncio.sleep(0.05)
            continue
        try:
            started.set_result(None)
            if not reading:
                await asyncio.Event().wait()  # never reads again (cancelled at the end)
            while await call.read() is not grpc.aio.EOF:
                pass
            return
        finally:
            call.cancel()
    started.set_exception(RuntimeError("subscription refused 200 times"))


async def _warm_up(stub: pb_grpc.EventStoreStub, readers: int = 8, events: int = 5000) -> None:
    """Concurrent reads that fill what every server keeps once it has served reads (SQLite page
    caches of the reader connections, thread arenas), so the baseline is not an idle server."""

    async def read() -> None:
        call = stub.Subscribe(pb.SubscribeRequest(batch_size=256))
        seen = 0
        async for response in call:
            seen += len(response.events.events)
            if response.HasField("caught_up") or seen >= events:
                break
        call.cancel()

    await asyncio.gather(*(read() for _ in range(readers)))


async def _sample_peak(pid: int, peak: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], rss(pid))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.05)


async def subscriber_load(
    address: str,
    pid: int,
    subscribers: int,
    *,
    probes: int = 200,
    open_timeout: float = 300.0,
    readers: int | None = None,
) -> LoadResult:
    """Opens ``subscribers`` subscriptions (the server's limit), measures, then one more."""
    # One connection per channel, not one shared; no BDP probing: with it, this one client
    # process buffering for hundreds of stalled streams comes under memory pressure and
    # grpc cancels its own calls (CANCELLED after ~30 s), which says nothing about the server.
    options = [("grpc.use_local_subchannel_pool", 1), ("grpc.http2.bdp_probe", 0)]
    channels = [
        grpc.aio.insecure_channel(address, options=options) for _ in range(subscribers // _PER_CHANNEL + 2)
    ]
    control = pb_grpc.EventStoreStub(channels[-1])
    tasks: list[asyncio.Task[None]] = []
    try:
        await _warm_up(control)
        p99_before = await _append_p99(address, probes)
        before = rss(pid)
        peak, stop = [before], asyncio.Event()
        sampler = asyncio.create_task(_sample_peak(pid, peak, stop))
        loop = asyncio.get_running_loop()
        started: list[asyncio.Future[None]] = [loop.create_future() for _ in range(subscribers)]
        for i in range(subscribers):
            stub = pb_grpc.EventStoreStub(channels[i // _PER_CHANNEL])
            reading = i < (subscribers // 2 if readers is None else readers)
            tasks.append(asyncio.create_task(_subscriber(stub, reading, started[i])))
        async with asyncio.timeout(open_timeout):
            for opened in started:
                await opened
        p99_during = await _append_p99(address, probes)
        refused, message = None, ""
        extra = control.Subscribe(pb.SubscribeRequest())
        try:
            await extra.read()
        except grpc.aio.AioRpcError as err:
            refused, message = err.code(), err.details() or ""
        extra.cancel()
        stop.set()
        await sampler
        return LoadResult(subscribers, before, peak[0], p99_before, p99_during, refused, message)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for channel in channels:
            await channel.close()


if __name__ == "__main__":  # the Append probe: python -m tests.support.subscribers ADDRESS COUNT
    print(asyncio.run(_probe(sys.argv[1], int(sys.argv[2]))))
