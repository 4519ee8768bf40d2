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

Prints a table, the ratios and exactly one JSON line (keys in bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
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
IMPLS = ("inproc", "grpc", "es")
DATA = json.dumps({"order": "o-1", "amount": 1234, "currency": "EUR", "items": ["a", "b", "c"]}).encode() * 2
STREAMS = 50
CONCURRENCY = 16


@dataclass(frozen=True)
class Counts:
    append1: int
    concurrent16: int
    batch10: int  # appends of 10
    batch100: int  # appends of 100


FULL = Counts(append1=3000, concurrent16=6000, batch10=600, batch100=150)
QUICK = Counts(append1=1000, concurrent16=2000, batch10=200, batch100=40)


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


# -- ours: one client "Appender" interface over in-process Storage or a gRPC stub ------------------
AppendFn = Callable[[str, int | None, int], Awaitable[None]]  # stream, last revision, n events


async def run_ours(
    append: AppendFn, counts: Counts, catchup: Callable[[], Awaitable[int]]
) -> dict[str, float]:
    revisions: dict[str, int | None] = {}

    async def one(stream: str, n: int) -> None:
        last = revisions.get(stream)
        await append(stream, last, n)
        revisions[stream] = (-1 if last is None else last) + n

    out: dict[str, float] = {}
    t = time.perf_counter()
    for i in range(counts.append1):
        await one(f"a1-{i % STREAMS}", 1)
    out["append1"] = rate(counts.append1, time.perf_counter() - t)

    async def worker(w: int) -> None:
        for i in range(counts.concurrent16 // CONCURRENCY):
            await one(f"c16-{w}-{i % 4}", 1)

    t = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))
    out["concurrent16"] = rate(counts.concurrent16 // CONCURRENCY * CONCURRENCY, time.perf_counter() - t)
    for name, size, appends in (("batch10", 10, counts.batch10), ("batch100", 100, counts.batch100)):
        t = time.perf_counter()
        for i in range(appends):
            await one(f"{name}-{i % STREAMS}", size)
        out[name] = rate(appends * size, time.perf_counter() - t)
    t = time.perf_counter()
    n = await catchup()
    out["catchup"] = rate(n, time.perf_counter() - t)
    return out


def proposed(n: int) -> list[ProposedEvent]:
    return [ProposedEvent(str(uuid.uuid4()), "Happened", DATA, "application/json", {}) for _ in range(n)]


async def bench_inproc(db: str, counts: Counts) -> dict[str, float]:
    storage: Storage = make_storage(db)
    await storage.open()
    try:

        async def append(stream: str, last: int | None, n: int) -> None:
            await storage.append(stream, NO_STREAM if last is None else exact(last), proposed(n))

        async def catchup() -> int:
            after, total = 0, 0
            while page := await storage.read_all(after, 1000):
                total += len(page)
                after = page[-1].position
            return total

        return await run_ours(append, counts, catchup)
    finally:
        await storage.close()


async def bench_grpc(db: str, counts: Counts, workdir: Path) -> dict[str, float]:
    port = free_port()
    argv = [sys.executable, "-m", "grpcmesh.sidecar.cli", "eventstore", "--db", db, "--port", str(port)]
    proc = ManagedProcess(argv, workdir / f"eventstore-{port}.log")
    try:
        proc.wait_output(f"listening on 127.0.0.1:{port}", timeout=30)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.EventStoreStub(channel)

            async def append(stream: str, last: int | None, n: int) -> None:
                expected = pb.ExpectedRevision(
                    **({"no_stream": pb.Empty()} if last is None else {"exact": last})  # type: ignore[arg-type]
                )
                events = [
                    pb.ProposedEvent(
                        id=str(uuid.uuid4()), type="Happened", data=DATA, content_type="application/json"
                    )
                    for _ in range(n)
                ]
                await stub.Append(
                    pb.AppendRequest(stream_id=stream, expected_revision=expected, events=events)
                )

            async def catchup() -> int:
                total = 0
                call = stub.Subscribe(pb.SubscribeRequest(after_position=0, batch_size=256))
                async for msg in call:
                    if msg.HasField("caught_up"):
                        break
                    total += len(msg.events.events)
                call.cancel()
                return total

            return await run_ours(append, counts, catchup)
    finally:
        proc.stop()


# -- the peer: eventsourcing's recorders ----------------------------------------------------------
def bench_es(recorder: Any, counts: Counts) -> dict[str, float]:
    recorder.create_table()
    versions: dict[uuid.UUID, int] = {}
    aggregates = {name: [uuid.uuid4() for _ in range(STREAMS)] for name in ("a1", "b10", "b100")}

    def insert(originator: uuid.UUID, n: int) -> None:
        start = versions.get(originator, 0)
        recorder.insert_events(
            [StoredEvent(originator, start + 1 + i, "bench:Happened", DATA) for i in range(n)]
        )
        versions[originator] = start + n

    out: dict[str, float] = {}
    t = time.perf_counter()
    for i in range(counts.append1):
        insert(aggregates["a1"][i % STREAMS], 1)
    out["append1"] = rate(counts.append1, time.perf_counter() - t)

    concurrent = [uuid.uuid4() for _ in range(CONCURRENCY)]

    def worker(w: int) -> None:
        for _ in range(counts.concurrent16 // CONCURRENCY):
            insert(concurrent[w], 1)

    t = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(worker, range(CONCURRENCY)))
    out["concurrent16"] = rate(counts.concurrent16 // CONCURRENCY * CONCURRENCY, time.perf_counter() - t)
    for name, key, size, appends in (
        ("batch10", "b10", 10, counts.batch10),
        ("batch100", "b100", 100, counts.batch100),
    ):
        t = time.perf_counter()
        for i in range(appends):
            insert(aggregates[key][i % STREAMS], size)
        out[name] = rate(appends * size, time.perf_counter() - t)
    t = time.perf_counter()
    start, total = 1, 0
    while page := recorder.select_notifications(start, 1000):
        total += len(page)
        start = page[-1].id + 1
    out["catchup"] = rate(total, time.perf_counter() - t)
    return out


# -- per database ---------------------------------------------------------------------------------
def run_database(
    name: str, new_url: Callable[[str], str], es_recorder: Callable[[str], Any], counts: Counts, workdir: Path
) -> dict[str, dict[str, float]]:
    results = {
        "inproc": asyncio.run(bench_inproc(new_url("inproc"), counts)),
        "grpc": asyncio.run(bench_grpc(new_url("grpc"), counts, workdir)),
        "es": bench_es(es_recorder(new_url("es")), counts),
    }
    print(f"  {name}: done", file=sys.stderr)
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
    line: dict[str, Any] = {"bench": "eventstore", "quick": quick}
    print(
        f"{'database':<10} {'workload':<13} {'unit':<10} {'ours in-proc':>13} {'ours gRPC':>11} "
        f"{'eventsourcing':>14} {'ours/es':>8} {'gRPC/in-proc':>13}"
    )
    for db in ("sqlite", "postgres"):
        for w in WORKLOADS:
            r = {impl: results.get(db, {}).get(impl, {}).get(w) for impl in IMPLS}
            ours_vs_es = r["inproc"] / r["es"] if r["inproc"] and r["es"] else None
            grpc_vs_inproc = r["grpc"] / r["inproc"] if r["grpc"] and r["inproc"] else None
            for impl in IMPLS:
                line[f"{db}_{impl}_{w}"] = round(r[impl], 1) if r[impl] is not None else None
            line[f"{db}_ours_vs_es_{w}"] = round(ours_vs_es, 2) if ours_vs_es else None
            line[f"{db}_grpc_vs_inproc_{w}"] = round(grpc_vs_inproc, 2) if grpc_vs_inproc else None
            if db in results:
                cells = [f"{r[i]:>13,.0f}" if r[i] else f"{'-':>13}" for i in IMPLS]
                print(
                    f"{db:<10} {w:<13} {UNITS.get(w, 'events/s'):<10} {cells[0]} {cells[1]:>11} {cells[2]:>14} "
                    f"{ours_vs_es or 0:>8.2f} {grpc_vs_inproc or 0:>13.2f}"
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="SQLite only, smaller counts (< 45 s)")
    args = parser.parse_args()
    counts = QUICK if args.quick else FULL
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-eventstore-") as tmp:
        workdir = Path(tmp)
        results["sqlite"] = run_database("sqlite", *sqlite_db(workdir), counts, workdir)
        if not args.quick:
            bin_dir = find_postgres_bin()
            if bin_dir is None:
                print("PostgreSQL binaries not found: PostgreSQL rows skipped", file=sys.stderr)
            else:
                server = PostgresServer(bin_dir).start()
                try:
                    results["postgres"] = run_database("postgres", *postgres_db(server), counts, workdir)
                finally:
                    server.stop()
    line = report(results, args.quick)
    print(json.dumps(line, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
