"""Event store under many catch-up subscribers: memory per subscriber, Append latency, the limit.

A log of 100,000 events of 1 KB (SQLite, the default store), then 1,000 concurrent catch-up
subscriptions from the start of the log -- half take one message and never read again,
half keep reading -- against an event store started with ``--max-subscriptions 1000``.
Measured: the server's RSS growth per subscriber (peak while they are open, over the
RSS after a warm-up of concurrent reads), Append p99 before (the baseline, same run)
and while the subscribers are open, and the status of the 1,001st subscription.

    python bench/eventstore_subscribers.py           # 1,000 subscribers, 100,000 events
    python bench/eventstore_subscribers.py --quick   # 100 subscribers, 10,000 events (< 45 s)

Prints a table, the ratio and exactly one JSON line (keys in bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # reuse the test helpers that start processes

import grpc  # noqa: E402

from grpcmesh.api.v1 import eventstore_pb2_grpc as pb_grpc  # noqa: E402
from tests.support.procs import ProcessGroup, start_service  # noqa: E402
from tests.support.subscribers import fill_log, subscriber_load  # noqa: E402

LIMIT_PER_SUBSCRIBER = 256 * 1024


async def main(subscribers: int, events: int, size: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        group = ProcessGroup(Path(tmp))
        try:
            db = f"sqlite://{Path(tmp) / 'events.db'}"
            server = start_service(group, "eventstore", "--db", db, "--max-subscriptions", str(subscribers))
            started = time.perf_counter()
            async with grpc.aio.insecure_channel(server.address) as channel:
                await fill_log(pb_grpc.EventStoreStub(channel), events, size)
            filled = time.perf_counter() - started
            result = await subscriber_load(server.address, server.proc.pid, subscribers)
        finally:
            group.stop_all()
    per = result.growth_per_subscriber
    row = {
        "bench": "eventstore_subscribers",
        "subscribers": subscribers,
        "events": events,
        "event_bytes": size,
        "fill_s": round(filled, 1),
        "rss_before_mb": round(result.rss_before / 2**20, 1),
        "rss_peak_mb": round(result.rss_peak / 2**20, 1),
        "rss_per_subscriber_kb": round(per / 1024, 1),
        "rss_per_subscriber_limit_kb": LIMIT_PER_SUBSCRIBER // 1024,
        "append_p99_before_ms": round(result.append_p99_before_ms, 2),
        "append_p99_during_ms": round(result.append_p99_during_ms, 2),
        "append_p99_ratio": round(result.append_p99_during_ms / result.append_p99_before_ms, 2),
        "over_limit_status": result.refused.name if result.refused else "OK",
    }
    print(f"{'subscribers':<28}{subscribers:>12}")
    print(f"{'log':<28}{events:>9} x {size} B")
    print(f"{'RSS before / peak (MB)':<28}{row['rss_before_mb']:>8} / {row['rss_peak_mb']}")
    print(
        f"{'RSS per subscriber (KB)':<28}{row['rss_per_subscriber_kb']:>12}  (limit {row['rss_per_subscriber_limit_kb']})"
    )
    print(f"{'Append p99 before (ms)':<28}{row['append_p99_before_ms']:>12}")
    print(f"{'Append p99 during (ms)':<28}{row['append_p99_during_ms']:>12}  (x{row['append_p99_ratio']})")
    print(f"{'subscription over limit':<28}{row['over_limit_status']:>12}")
    print(json.dumps(row))
    return row


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 subscribers on 10,000 events")
    parser.add_argument("--subscribers", type=int, default=None, help="override the number of subscribers")
    parser.add_argument("--events", type=int, default=None, help="override the number of events")
    args = parser.parse_args()
    n, e = (100, 10_000) if args.quick else (1000, 100_000)
    asyncio.run(main(args.subscribers or n, args.events or e, 1024))
