"""Command bus and query bus cost, against the event store calls they are built on.

Three real processes on loopback (event store on SQLite, command bus, query bus), one run:

  seq      sequential AddItem commands, a fresh order every 10 items (commands/s)
           baseline: the same event appended straight to the event store with Append(exact)
  conc16   16 concurrent clients, each on its own order (commands/s); same baseline, 16 clients
  hot8     8 concurrent clients on ONE order: every write races, the bus reloads and retries
           (commands/s; no baseline, compare with conc16)
  ryw      a command, then GetOrder with min_position = its position (µs p50 of the pair)
           baseline: the command alone (µs p50); the difference is the read-your-writes wait

Rounds are interleaved (bus, baseline, bus, …) and the median kept, so load from elsewhere
hits both alike.

    python bench/cqrs.py           # 5 rounds
    python bench/cqrs.py --quick   # 3 rounds, smaller counts, < 45 s

Prints a table, the ratios and exactly one JSON line (keys in bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # reuse the test helpers that start processes

import grpc  # noqa: E402
from google.protobuf import any_pb2  # noqa: E402

from grpcmesh.api.examples.orders.v1 import orders_pb2 as o  # noqa: E402
from grpcmesh.api.v1 import commandbus_pb2 as cb  # noqa: E402
from grpcmesh.api.v1 import commandbus_pb2_grpc as cb_grpc  # noqa: E402
from grpcmesh.api.v1 import eventstore_pb2 as es  # noqa: E402
from grpcmesh.api.v1 import eventstore_pb2_grpc as es_grpc  # noqa: E402
from grpcmesh.api.v1 import querybus_pb2 as qb  # noqa: E402
from grpcmesh.api.v1 import querybus_pb2_grpc as qb_grpc  # noqa: E402
from tests.support.procs import ProcessGroup, free_port  # noqa: E402

ITEMS_PER_ORDER = 10


@dataclass(frozen=True)
class Counts:
    seq: int
    conc16: int
    hot8: int
    ryw: int
    rounds: int


FULL = Counts(seq=300, conc16=640, hot8=160, ryw=150, rounds=5)
QUICK = Counts(seq=120, conc16=320, hot8=80, ryw=60, rounds=3)


def packed(message: Any) -> any_pb2.Any:
    a = any_pb2.Any()
    a.Pack(message)
    return a


class Orders:
    """Writes AddItem for fresh orders: through the command bus, or straight to the event store."""

    def __init__(self, commands: cb_grpc.CommandBusStub, events: es_grpc.EventStoreStub) -> None:
        self.commands = commands
        self.events = events

    async def dispatch(self, order_id: str, payload: Any) -> cb.CommandResult:
        cmd = cb.Command(command_id=str(uuid.uuid4()), aggregate_id=order_id, payload=packed(payload))
        result: cb.CommandResult = await self.commands.Dispatch(cmd)
        return result

    async def bus_writer(self, n: int, order_id: str | None = None) -> None:
        """n AddItem commands; a new order every ITEMS_PER_ORDER unless ``order_id`` is shared."""
        current = order_id
        for k in range(n):
            if order_id is None and k % ITEMS_PER_ORDER == 0:
                current = uuid.uuid4().hex
                await self.dispatch(current, o.CreateOrder(customer_id="bench"))
            assert current is not None
            await self.dispatch(current, o.AddItem(item_id=uuid.uuid4().hex, quantity=1, unit_price_cents=1))

    async def store_writer(self, n: int) -> None:
        """The same events appended directly (the caller knows the revision: no read)."""
        revision = -1
        stream = ""
        for k in range(n):
            if k % ITEMS_PER_ORDER == 0:
                stream, revision = f"raw-{uuid.uuid4().hex}", -1
                await self._append(stream, revision, o.OrderCreated(customer_id="bench"))
                revision += 1
            item = o.ItemAdded(item_id=uuid.uuid4().hex, quantity=1, unit_price_cents=1)
            await self._append(stream, revision, item)
            revision += 1

    async def _append(self, stream: str, revision: int, event: Any) -> None:
        expected = (
            es.ExpectedRevision(no_stream=es.Empty()) if revision < 0 else es.ExpectedRevision(exact=revision)
        )
        proposed = es.ProposedEvent(
            id=str(uuid.uuid4()),
            type=type(event).__name__,
            data=event.SerializeToString(),
            content_type="application/x-protobuf",
        )
        await self.events.Append(
            es.AppendRequest(stream_id=stream, expected_revision=expected, events=[proposed])
        )


def created_count(n: int) -> int:
    """Commands (or appends) a writer of n items really sends: items plus one create per order."""
    return n + (n + ITEMS_PER_ORDER - 1) // ITEMS_PER_ORDER


async def timed(work: Callable[[], Awaitable[None]]) -> float:
    start = time.perf_counter()
    await work()
    return time.perf_counter() - start


async def run_rounds(orders: Orders, queries: qb_grpc.QueryBusStub, counts: Counts) -> dict[str, float]:
    samples: dict[str, list[float]] = {
        k: []
        for k in (
            "seq_bus",
            "seq_store",
            "conc16_bus",
            "conc16_store",
            "hot8_bus",
            "ryw_pair_us",
            "ryw_cmd_us",
        )
    }
    per16 = counts.conc16 // 16
    for _ in range(counts.rounds):
        t = await timed(lambda: orders.bus_writer(counts.seq))
        samples["seq_bus"].append(created_count(counts.seq) / t)
        t = await timed(lambda: orders.store_writer(counts.seq))
        samples["seq_store"].append(created_count(counts.seq) / t)

        async def bus16() -> None:
            await asyncio.gather(*(orders.bus_writer(per16) for _ in range(16)))

        async def store16() -> None:
            await asyncio.gather(*(orders.store_writer(per16) for _ in range(16)))

        samples["conc16_bus"].append(16 * created_count(per16) / await timed(bus16))
        samples["conc16_store"].append(16 * created_count(per16) / await timed(store16))
        hot = uuid.uuid4().hex
        await orders.dispatch(hot, o.CreateOrder(customer_id="bench"))

        async def hot8(order_id: str = hot) -> None:
            await asyncio.gather(*(orders.bus_writer(counts.hot8 // 8, order_id) for _ in range(8)))

        samples["hot8_bus"].append(counts.hot8 // 8 * 8 / await timed(hot8))
        pair, alone = [], []
        order_id = uuid.uuid4().hex
        await orders.dispatch(order_id, o.CreateOrder(customer_id="bench"))
        for k in range(counts.ryw):
            item = o.AddItem(item_id=uuid.uuid4().hex, quantity=1, unit_price_cents=1)
            start = time.perf_counter()
            result = await orders.dispatch(order_id, item)
            mid = time.perf_counter()
            if k % 2 == 0:  # alternate: half the samples also wait for the read model
                request = qb.QueryRequest(
                    payload=packed(o.GetOrder(order_id=order_id)), min_position=result.position
                )
                await queries.Query(request, timeout=10)
                pair.append((time.perf_counter() - start) * 1e6)
            else:
                alone.append((mid - start) * 1e6)
        samples["ryw_pair_us"].append(statistics.median(pair))
        samples["ryw_cmd_us"].append(statistics.median(alone))
    return {k: statistics.median(v) for k, v in samples.items()}


def start(procs: ProcessGroup, name: str, *args: str) -> str:
    """Starts ``grpcmesh NAME`` in ``procs`` (so it is stopped even if it never comes up); its address."""
    port = free_port()
    argv = [sys.executable, "-m", "grpcmesh.cli", name, "--port", str(port), *args]
    procs.start(argv, name).wait_output(f"listening on 127.0.0.1:{port}", timeout=30)
    return f"127.0.0.1:{port}"


async def measure(addresses: dict[str, str], counts: Counts) -> dict[str, float]:
    async with (
        grpc.aio.insecure_channel(addresses["commandbus"]) as c1,
        grpc.aio.insecure_channel(addresses["eventstore"]) as c2,
        grpc.aio.insecure_channel(addresses["querybus"]) as c3,
    ):
        orders = Orders(cb_grpc.CommandBusStub(c1), es_grpc.EventStoreStub(c2))
        await orders.bus_writer(20)  # warm up channels and caches
        await orders.store_writer(20)
        return await run_rounds(orders, qb_grpc.QueryBusStub(c3), counts)


def report(r: dict[str, float], quick: bool) -> dict[str, Any]:
    line: dict[str, Any] = {"bench": "cqrs", "quick": quick, "loadavg_1m": round(os.getloadavg()[0], 2)}
    rows = [
        ("seq", "commands/s", r["seq_bus"], r["seq_store"]),
        ("conc16", "commands/s", r["conc16_bus"], r["conc16_store"]),
        ("hot8", "commands/s", r["hot8_bus"], None),
        ("ryw", "µs p50", r["ryw_pair_us"], r["ryw_cmd_us"]),
    ]
    print(f"{'workload':<9} {'unit':<11}{'bus':>12}{'baseline':>12}{'ratio':>8}")
    for name, unit, bus, base in rows:
        ratio = bus / base if base else None
        cells = f"{bus:>12,.0f}" + (f"{base:>12,.0f}{ratio:>8.2f}" if base else f"{'-':>12}{'-':>8}")
        print(f"{name:<9} {unit:<11}{cells}")
    line.update({k: round(v, 1) for k, v in r.items()})
    line["seq_bus_vs_store"] = round(r["seq_bus"] / r["seq_store"], 2)
    line["conc16_bus_vs_store"] = round(r["conc16_bus"] / r["conc16_store"], 2)
    line["hot8_vs_conc16"] = round(r["hot8_bus"] / r["conc16_bus"], 2)
    line["ryw_added_us"] = round(r["ryw_pair_us"] - r["ryw_cmd_us"], 1)
    print(
        f"\nbus/store: {line['seq_bus_vs_store']} sequential, {line['conc16_bus_vs_store']} with 16 clients; "
        f"one hot order (8 racing clients) vs 16 independent: {line['hot8_vs_conc16']}; "
        f"read-your-writes adds {line['ryw_added_us']:,.0f} µs at p50"
    )
    return line


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds, smaller counts (< 45 s)")
    args = parser.parse_args()
    counts = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="bench-cqrs-") as tmp:
        workdir = Path(tmp)
        procs = ProcessGroup(workdir)
        try:
            es_addr = start(procs, "eventstore", "--db", f"sqlite://{workdir / 'events.db'}")
            cb_addr = start(procs, "commandbus", "--eventstore", es_addr)
            qb_addr = start(procs, "querybus", "--eventstore", es_addr, "--db", str(workdir / "read.db"))
            addresses = {"eventstore": es_addr, "commandbus": cb_addr, "querybus": qb_addr}
            results = asyncio.run(measure(addresses, counts))
        finally:
            procs.stop_all()
    line = report(results, args.quick)
    print(json.dumps(line, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
