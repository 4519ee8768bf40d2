"""Event store throughput: ours in-process and through gRPC vs the `eventsourcing` library.

One run, same machine, same database engine and durability for every contender:
SQLite (WAL, synchronous=FULL: the default of both) and PostgreSQL (fsync on,
synchronous_commit on). Workloads, each on a fresh database:

  append1      sequential 1-event appends from one client (appends/s, one durable commit each)
  concurrent16 1-event appends from 16 concurrent clients (appends/s; group commit helps here)
  batch10      sequential 10-event appends (events/s)
  batch100     sequential 100-event appends (events/s)
  catchup      reading everything back in global order (events/s; Subscribe over gRPC)

`eventsourcing` is driven through its application recorders (insert_events /
select_notifications), its persistence API without domain-model overhead.

    python bench/eventstore.py           # SQLite and PostgreSQL
    python bench/eventstore.py --quick   # SQLite only, smaller counts, < 45 s

Each contender runs each workload once per round, interleaved and in rotating order (5 rounds);
the table shows medians, so a burst of load from elsewhere hits all contenders alike.
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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # reuse the test helpers that start PostgreSQL and processes

import grpc  # noqa: E402
from eventsourcing.persistence import StoredEvent  # noqa: E402
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore  # noqa: E402
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore  # noqa: E402

from grpcmesh.api.v1 import eventstore_pb2 as pb  # noqa: E402
from grpcmesh.api.v1 import eventstore_pb2_grpc as pb_grpc  # noqa: E402
from grpcmesh.services.eventstore.domain import NO_STREAM, ProposedEvent, exact  # noqa: E402
from grpcmesh.services.eventstore.factory import make_storage  # noqa: E402
from grpcmesh.services.eventstore.storage.base import Storage  # noqa: E402
from tests.support.postgres import PostgresServer, find_postgres_bin  # noqa: E402
from tests.support.procs import ManagedProcess, free_port  # noqa: E402

WORKLOADS = ("append1", "concurrent16", "batch10", "batch100", "catchup")
UNITS = {"append1": "appends/s", "concurrent16": "appends/s"}
IMPLS = ("inproc", "grpc", "es", "es_thread")
HEADERS = {"inproc": "ours in-proc", "grpc": "ours gRPC", "es": "eventsourcing", "es_thread": "es via thread"}
DATA = json.dumps({"order": "o-1", "amount": 1234, "currency": "EUR", "items": ["a", "b", "c"]}).encode() * 2
STREAMS = 50
CONCURRENCY = 16


@dataclass(frozen=True)
class Counts:
    """Operations per round; every contender runs every workload once per round."""

    append1: int
    concurrent16: int
    batch10: int  # appends of 10
    batch100: int  # appends of 100
    rounds: int = 5


FULL = Counts(append1=600, concurrent16=1600, batch10=120, batch100=30)
QUICK = Counts(append1=200, concurrent16=480, batch10=40, batch100=10)


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


class Contender:
    """Runs the workloads against one event store.

    Subclasses turn (stream, last revision, n) into that store's input (``_prepare``) and
    write it (``_submit``). Inputs, event ids included, are built before the clock starts
    for every contender: the numbers measure the store, not the client's id generation.
    """

    def __init__(self) -> None:
        self.last: dict[str, int] = {}  # stream -> last revision written

    def _prepare(self, stream: str, last: int | None, n: int) -> Any:
        raise NotImplementedError

    async def _submit(self, prepared: Any) -> None:
        raise NotImplementedError

    async def _catchup(self) -> int:
        raise NotImplementedError

    def _plan(self, streams: list[str], n: int) -> list[Any]:
        """Inputs for appending ``n`` events to each stream in turn, with exact expected revisions."""
        prepared = []
        for stream in streams:
            last = self.last.get(stream)
            prepared.append(self._prepare(stream, last, n))
            self.last[stream] = (-1 if last is None else last) + n
        return prepared

    async def run(self, workload: str, counts: Counts, round_no: int) -> float:
        if workload == "catchup":
            t = time.perf_counter()
            return rate(await self._catchup(), time.perf_counter() - t)
        if workload == "concurrent16":
            per = counts.concurrent16 // CONCURRENCY
            plans = [self._plan([f"c16-{w}-{i % 4}" for i in range(per)], 1) for w in range(CONCURRENCY)]
            t = time.perf_counter()
            await self._concurrent(plans)
            return rate(per * CONCURRENCY, time.perf_counter() - t)
        size, appends = {
            "append1": (1, counts.append1),
            "batch10": (10, counts.batch10),
            "batch100": (100, counts.batch100),
        }[workload]
        plan = self._plan([f"{workload}-{round_no}-{i % STREAMS}" for i in range(appends)], size)
        t = time.perf_counter()
        for prepared in plan:
            await self._submit(prepared)
        return rate(appends * size, time.perf_counter() - t)

    async def _concurrent(self, plans: list[list[Any]]) -> None:
        async def worker(plan: list[Any]) -> None:
            for prepared in plan:
                await self._submit(prepared)

        await asyncio.gather(*(worker(plan) for plan in plans))


class OursInProcess(Contender):
    def __init__(self, storage: Storage) -> None:
        super().__init__()
        self.storage = storage

    def _prepare(self, stream: str, last: int | None, n: int) -> Any:
        events = [ProposedEvent(str(uuid.uuid4()), "Happened", DATA, "application/json") for _ in range(n)]
        return stream, NO_STREAM if last is None else exact(last), events

    async def _submit(self, prepared: Any) -> None:
        await self.storage.append(*prepared)

    async def _catchup(self) -> int:
        after, total = 0, 0
        while page := await self.storage.read_all(after, 1000):
            total += len(page)
            after = page[-1].position
        return total


class OursGrpc(Contender):
    def __init__(self, stub: pb_grpc.EventStoreStub) -> None:
        super().__init__()
        self.stub = stub

    def _prepare(self, stream: str, last: int | None, n: int) -> Any:
        if last is None:
            expected = pb.ExpectedRevision(no_stream=pb.Empty())
        else:
            expected = pb.ExpectedRevision(exact=last)
        events = [
            pb.ProposedEvent(
                id=str(uuid.uuid4()), type="Happened", data=DATA, content_type="application/json"
            )
            for _ in range(n)
        ]
        return pb.AppendRequest(stream_id=stream, expected_revision=expected, events=events)

    async def _submit(self, prepared: Any) -> None:
        await self.stub.Append(prepared)

    async def _catchup(self) -> int:
        total = 0
        call = self.stub.Subscribe(pb.SubscribeRequest(after_position=0, batch_size=256))
        async for msg in call:
            if msg.HasField("caught_up"):
                break
            total += len(msg.events.events)
        call.cancel()
        return total


class EventSourcing(Contender):
    """The peer: eventsourcing's application recorder (sync; called directly, threads for concurrency)."""

    def __init__(self, recorder: Any) -> None:
        super().__init__()
        self.recorder = recorder
        self.ids: dict[str, uuid.UUID] = {}
        recorder.create_table()

    def _prepare(self, stream: str, last: int | None, n: int) -> Any:
        originator = self.ids.setdefault(stream, uuid.uuid4())
        start = 0 if last is None else last + 1  # eventsourcing versions are 1-based
        return [StoredEvent(originator, start + 1 + i, "bench:Happened", DATA) for i in range(n)]

    async def _submit(self, prepared: Any) -> None:
        self.recorder.insert_events(prepared)

    async def _concurrent(self, plans: list[list[Any]]) -> None:
        def worker(plan: list[Any]) -> None:
            for prepared in plan:
                self.recorder.insert_events(prepared)

        with ThreadPoolExecutor(CONCURRENCY) as pool:
            list(pool.map(worker, plans))

    async def _catchup(self) -> int:
        start, total = 1, 0
        while page := self.recorder.select_notifications(start, 1000):
            total += len(page)
            start = page[-1].id + 1
        return total


class EventSourcingViaThread(EventSourcing):
    """The peer as an asyncio service would call it: each blocking call handed to a thread."""

    async def _submit(self, prepared: Any) -> None:
        await asyncio.to_thread(self.recorder.insert_events, prepared)


async def measure(contenders: dict[str, Contender], counts: Counts) -> dict[str, dict[str, float]]:
    """Interleaves contenders workload by workload, rotating their order each round; medians."""
    samples: dict[tuple[str, str], list[float]] = {}
    names = list(contenders)
    for round_no in range(counts.rounds):
        order = names[round_no % len(names) :] + names[: round_no % len(names)]
        for workload in WORKLOADS:  # catchup reads back everything written so far
            for name in order:
                value = await contenders[name].run(workload, counts, round_no)
                samples.setdefault((name, workload), []).append(value)
    return {name: {w: statistics.median(samples[name, w]) for w in WORKLOADS} for name in names}


async def run_database(
    db: str, new_url: Callable[[str], str], es_recorder: Callable[[str], Any], counts: Counts, workdir: Path
) -> dict[str, dict[str, float]]:
    storage: Storage = make_storage(new_url("inproc"))
    await storage.open()
    port = free_port()
    grpc_db = new_url("grpc")
    argv = [sys.executable, "-m", "grpcmesh.cli", "eventstore", "--db", grpc_db, "--port", str(port)]
    proc = ManagedProcess(argv, workdir / f"eventstore-{db}.log")
    try:
        proc.wait_output(f"listening on 127.0.0.1:{port}", timeout=30)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            contenders: dict[str, Contender] = {
                "inproc": OursInProcess(storage),
                "grpc": OursGrpc(pb_grpc.EventStoreStub(channel)),
                "es": EventSourcing(es_recorder(new_url("es"))),
                "es_thread": EventSourcingViaThread(es_recorder(new_url("es_thread"))),
            }
            results = await measure(contenders, counts)
    finally:
        proc.stop()
        await storage.close()
    print(f"  {db}: done", file=sys.stderr)
    return results


def sqlite_db(workdir: Path) -> tuple[Callable[[str], str], Callable[[str], Any]]:
    def url(tag: str) -> str:
        return f"sqlite://{workdir / f'{tag}.db'}"

    def recorder(db_url: str) -> Any:
        return SQLiteApplicationRecorder(
            SQLiteDatastore(db_url[len("sqlite://") :], pool_size=CONCURRENCY + 2)
        )

    return url, recorder


def postgres_db(server: PostgresServer) -> tuple[Callable[[str], str], Callable[[str], Any]]:
    def url(tag: str) -> str:
        return server.create_database()

    def recorder(db_url: str) -> Any:
        dbname = db_url.rsplit("/", 1)[1]
        datastore = PostgresDatastore(
            dbname, "127.0.0.1", server.port, "postgres", "", pool_size=CONCURRENCY + 2
        )
        return PostgresApplicationRecorder(datastore)

    return url, recorder


def report(results: dict[str, dict[str, dict[str, float]]], quick: bool) -> dict[str, Any]:
    line: dict[str, Any] = {"bench": "eventstore", "quick": quick, "loadavg_1m": round(os.getloadavg()[0], 2)}
    print(
        f"{'database':<9} {'workload':<13} {'unit':<10}"
        + "".join(f"{HEADERS[i]:>15}" for i in IMPLS)
        + f"{'ours/es':>9}{'ours/es-thread':>15}{'gRPC/in-proc':>13}"
    )
    for db in ("sqlite", "postgres"):
        for w in WORKLOADS:
            r = {impl: results.get(db, {}).get(impl, {}).get(w) for impl in IMPLS}
            ratios = {
                "ours_vs_es": (r["inproc"], r["es"]),
                "ours_vs_es_thread": (r["inproc"], r["es_thread"]),
                "grpc_vs_inproc": (r["grpc"], r["inproc"]),
            }
            for impl in IMPLS:
                line[f"{db}_{impl}_{w}"] = round(r[impl], 1) if r[impl] is not None else None
            for key, (a, b) in ratios.items():
                line[f"{db}_{key}_{w}"] = round(a / b, 2) if a and b else None
            if db in results:
                cells = "".join(f"{r[i]:>15,.0f}" if r[i] else f"{'-':>15}" for i in IMPLS)
                shown = [line[f"{db}_{key}_{w}"] or 0.0 for key in ratios]
                print(
                    f"{db:<9} {w:<13} {UNITS.get(w, 'events/s'):<10}{cells}"
                    f"{shown[0]:>9.2f}{shown[1]:>15.2f}{shown[2]:>13.2f}"
                )
    targets = {
        "sqlite_append1_ge_2000": (line["sqlite_inproc_append1"] or 0) >= 2000,
        "sqlite_batch100_ge_15000": (line["sqlite_inproc_batch100"] or 0) >= 15000,
        "postgres_append1_ge_800": None
        if line["postgres_inproc_append1"] is None
        else line["postgres_inproc_append1"] >= 800,
    }
    line["targets"] = targets
    print("\ntargets:", ", ".join(f"{k}={v}" for k, v in targets.items()))
    return line


class _NoopEventStore(pb_grpc.EventStoreServicer):
    """Answers Append without storing anything: the cost of a gRPC call alone on this machine."""

    async def Append(self, request: pb.AppendRequest, context: Any) -> pb.AppendResponse:
        return pb.AppendResponse(next_revision=len(request.events) - 1, position=1)


async def serve_noop(port: int) -> None:
    server = grpc.aio.server()
    pb_grpc.add_EventStoreServicer_to_server(_NoopEventStore(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"listening on 127.0.0.1:{port}", flush=True)
    await server.wait_for_termination()


async def measure_grpc_ceiling(counts: Counts, workdir: Path) -> dict[str, float]:
    """Unary calls/s against a no-op server in its own process (the bound for gRPC appends)."""
    port = free_port()
    proc = ManagedProcess([sys.executable, __file__, "--noop-server", str(port)], workdir / "noop.log")
    try:
        proc.wait_output(f"listening on 127.0.0.1:{port}", timeout=30)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            contender = OursGrpc(pb_grpc.EventStoreStub(channel))
            return {w: await contender.run(w, counts, 0) for w in ("append1", "concurrent16")}
    finally:
        proc.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="SQLite only, smaller counts (< 45 s)")
    parser.add_argument("--noop-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.noop_server:
        asyncio.run(serve_noop(args.noop_server))
        return 0
    counts = QUICK if args.quick else FULL
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-eventstore-") as tmp:
        workdir = Path(tmp)
        ceiling = asyncio.run(measure_grpc_ceiling(counts, workdir))
        results["sqlite"] = asyncio.run(run_database("sqlite", *sqlite_db(workdir), counts, workdir))
        if not args.quick:
            bin_dir = find_postgres_bin()
            if bin_dir is None:
                print("PostgreSQL binaries not found: PostgreSQL rows skipped", file=sys.stderr)
            else:
                server = PostgresServer(bin_dir).start()
                try:
                    results["postgres"] = asyncio.run(
                        run_database("postgres", *postgres_db(server), counts, workdir)
                    )
                finally:
                    server.stop()
    line = report(results, args.quick)
    line["grpc_noop_append1"] = round(ceiling["append1"], 1)
    line["grpc_noop_concurrent16"] = round(ceiling["concurrent16"], 1)
    print(
        f"gRPC ceiling (no-op Append server, same machine): {ceiling['append1']:,.0f} calls/s sequential, "
        f"{ceiling['concurrent16']:,.0f} calls/s with {CONCURRENCY} concurrent clients"
    )
    print(json.dumps(line, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
