"""Span store search: the same queries on stores of 10k, 100k and 1M spans.

Every filter of ``grpcmesh traces`` / ``/traces.json`` is served by an index, so a
query's cost follows what it finds, not the store's size. This bench measures
it: synthetic mesh traffic (4-span traces web → orders → eventstore, payments
failing 10 % of its calls in an early incident, the first tenth of the time) is written through the
exporter's own write path with its retention bounds, then each query runs on
each store. The baseline is the smallest store: the ratio ``1M ÷ 10k`` of a
query's time is near 1 when an index serves it (a full scan would be ~100).
``errors_none`` is an ``--errors`` query that matches nothing (web never fails).
Two measures: the median wall time of a search as the CLI runs it (a fresh
connection each time; rounds interleave the stores so load from elsewhere hits
all alike) and SQLite's virtual-machine steps for the search on an open
connection (counted with a progress handler: the work done, free of noise).

    python bench/spanstore.py           # 10k, 100k, 1M spans (the 1M store is kept in .cache/bench)
    python bench/spanstore.py --quick   # 1k, 10k, 100k

It also times writes (indexed store vs one with the id/start indexes only). Prints a table, the
ratios, the file sizes against their bound, the write rates and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

from grpcmesh.sdk.spanexport import SpanStoreExporter  # noqa: E402
from grpcmesh.sdk.spansearch import TraceQuery, search_on, search_traces  # noqa: E402
from grpcmesh.sdk.spanstore import connect  # noqa: E402

MS = 1_000_000
T0 = 1_700_000_000 * 10**9
BYTES_PER_SPAN_BOUND = 1200  # the configured bound: max_bytes = spans x this
CHAIN = (
    ("web-sidecar", "shop.v1.Orders/Place", "orders"),
    ("orders-sidecar", "shop.v1.Orders/Place", "orders"),
    ("orders-sidecar", "shop.v1.Payments/Charge", "payments"),
    ("payments-sidecar", "shop.v1.Payments/Charge", "payments"),
)


def spans(count: int, seed: int = 7) -> Iterator[tuple[Any, ...]]:
    """``count`` spans in 4-span traces, 1 ms apart; payments fails only in the first tenth."""
    rnd = random.Random(seed)
    for n in range(count // 4):
        trace = f"{rnd.getrandbits(128):032x}"
        start = T0 + n * MS
        request_id = f"req-{n}"
        fails = n < count // 40 and rnd.random() < 0.1
        parent = None
        for depth, (service, method, upstream) in enumerate(CHAIN):
            span_id = f"{rnd.getrandbits(64):016x}"
            error = fails and depth >= 2
            ms = rnd.choice((1, 2, 3, 5, 8)) if n % 1000 else 900  # one slow trace per thousand
            attrs = {
                "rpc.system": "grpc",
                "mesh.service": upstream,
                "mesh.endpoint": f"127.0.0.1:{7000 + rnd.randrange(4)}",
                "mesh.attempts": 2 if error else 1,
                "rpc.grpc.status_code": 14 if error else 0,
                "mesh.request_id": request_id,
            }
            yield (
                trace, span_id, parent, method, "CLIENT" if depth % 2 == 0 else "SERVER", service,
                start + depth * 10_000, start + depth * 10_000 + ms * MS // (depth + 1),
                "ERROR" if error else "UNSET", "UNAVAILABLE: upstream reset" if error else None,
                json.dumps(attrs), request_id, None,
            )  # fmt: skip
            parent = span_id


def build(path: Path, count: int) -> SpanStoreExporter:
    """The store of ``count`` spans through the exporter's write path (reused if fully built)."""
    done = path.with_suffix(".done")
    if not done.exists():
        for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            stale.unlink(missing_ok=True)
    exporter = SpanStoreExporter(
        path, max_spans=count, max_bytes=count * BYTES_PER_SPAN_BOUND, prune_every=10_000
    )
    if done.exists():
        return exporter
    batch: list[tuple[Any, ...]] = []
    for row in spans(count):
        batch.append(row)
        if len(batch) == 5000:
            exporter.write(batch)
            batch = []
    if batch:
        exporter.write(batch)
    exporter.prune()
    done.touch()
    return exporter


def queries(count: int) -> dict[str, TraceQuery]:
    middle = T0 + (count // 8) * MS
    return {
        "newest": TraceQuery(),
        "service": TraceQuery(service="payments"),
        "method": TraceQuery(method="shop.v1.Payments/Charge"),
        "errors": TraceQuery(errors_only=True),
        "errors_none": TraceQuery(errors_only=True, service="web"),
        "min_duration": TraceQuery(min_duration_ms=800),
        "duration_range": TraceQuery(min_duration_ms=2.9, max_duration_ms=3.1),
        "time_range": TraceQuery(start_ns=middle, end_ns=middle + 100 * MS),
        "request_id": TraceQuery(request_id=f"req-{count // 8}"),
        "attribute": TraceQuery(attributes=(("mesh.endpoint", "127.0.0.1:7002"),)),
        "attr_and_service": TraceQuery(attributes=(("mesh.attempts", "2"),), service="payments"),
    }


def steps(path: Path, query: TraceQuery) -> tuple[int, int]:
    """SQLite VM steps (in hundreds) of one search on a warm connection, and traces found."""
    conn = connect(path)
    counted = [0]

    def tick() -> int:
        counted[0] += 1
        return 0

    try:
        search_on(conn, query)  # warm the connection's page cache and schema
        conn.set_progress_handler(tick, 100)
        found = len(search_on(conn, query))
    finally:
        conn.close()
    return counted[0], found


def timed(
    paths: dict[int, Path], queries_by_size: dict[int, dict[str, TraceQuery]], rounds: int
) -> dict[int, dict[str, float]]:
    """Median milliseconds per (size, query); each round runs every store, in rotating order."""
    samples: dict[int, dict[str, list[float]]] = {s: {} for s in paths}
    sizes = list(paths)
    for r in range(rounds):
        for size in sizes[r % len(sizes) :] + sizes[: r % len(sizes)]:
            for name, query in queries_by_size[size].items():
                began = time.perf_counter()
                search_traces(paths[size], query)
                samples[size].setdefault(name, []).append((time.perf_counter() - began) * 1000)
    return {s: {n: statistics.median(v) for n, v in by.items()} for s, by in samples.items()}


_BASELINE_SCHEMA = """
CREATE TABLE spans (
    trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_id TEXT, name TEXT NOT NULL,
    kind TEXT NOT NULL, service TEXT NOT NULL, start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL,
    status_code TEXT NOT NULL, status_message TEXT, attributes TEXT NOT NULL, request_id TEXT,
    events TEXT
);
CREATE INDEX spans_trace ON spans (trace_id);
CREATE INDEX spans_start ON spans (start_ns);
CREATE INDEX spans_request ON spans (request_id);
"""


def write_rates(directory: Path, count: int, rounds: int = 3) -> tuple[float, float]:
    """Spans/s written in 500-span batches: the indexed store vs a store with only the trace, start
    and request id indexes (the store before search: lookups by id, the newest traces)."""
    rows = list(spans(count, seed=11))
    indexed: list[float] = []
    plain: list[float] = []
    for r in range(rounds):
        for kind in ("indexed", "plain") if r % 2 == 0 else ("plain", "indexed"):
            path = directory / f"write-{kind}.db"
            for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                stale.unlink(missing_ok=True)
            if kind == "indexed":
                exporter = SpanStoreExporter(path, max_spans=count * 2, prune_every=count * 2)
                began = time.perf_counter()
                for i in range(0, count, 500):
                    exporter.write(rows[i : i + 500])
                indexed.append(count / (time.perf_counter() - began))
                exporter.shutdown()
                continue
            conn = sqlite3.connect(path, isolation_level=None)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.executescript(_BASELINE_SCHEMA)
            began = time.perf_counter()
            for i in range(0, count, 500):
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(f"INSERT INTO spans VALUES ({','.join('?' * 13)})", rows[i : i + 500])
                conn.execute("COMMIT")
            plain.append(count / (time.perf_counter() - began))
            conn.close()
    for stale in directory.glob("write-*.db*"):
        stale.unlink()
    return statistics.median(indexed), statistics.median(plain)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1k, 10k and 100k spans")
    parser.add_argument("--dir", type=Path, default=ROOT / ".cache" / "bench", help="where stores are kept")
    args = parser.parse_args()
    sizes = (1_000, 10_000, 100_000) if args.quick else (10_000, 100_000, 1_000_000)
    args.dir.mkdir(parents=True, exist_ok=True)
    line: dict[str, Any] = {
        "bench": "spanstore",
        "quick": args.quick,
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    paths: dict[int, Path] = {}
    work: dict[int, dict[str, int]] = {}
    for size in sizes:
        path = args.dir / f"spans-v2-{size}.db"  # v2: the data above; a change of it renames the files
        began = time.perf_counter()
        exporter = build(path, size)
        built_s = time.perf_counter() - began
        bound = size * BYTES_PER_SPAN_BOUND
        file_bytes = path.stat().st_size
        print(f"{size:>9} spans: file {file_bytes / 2**20:.1f} MiB, bound {bound / 2**20:.1f} MiB, "
              f"built in {built_s:.1f}s")  # fmt: skip
        line[f"file_mib_{size}"] = round(file_bytes / 2**20, 1)
        line[f"within_bound_{size}"] = file_bytes <= bound
        exporter.shutdown()
        paths[size] = path
        work[size] = {}
        for name, query in queries(size).items():
            work[size][name], line[f"{name}_found_{size}"] = steps(path, query)
    times = timed(paths, {s: queries(s) for s in sizes}, rounds=9)
    indexed, plain = write_rates(args.dir, 5_000 if args.quick else 20_000)
    line["write_spans_per_s"], line["write_baseline_spans_per_s"] = round(indexed), round(plain)
    line["write_ratio"] = round(indexed / plain, 2)
    print(f"writes: {indexed:.0f} spans/s indexed, {plain:.0f} spans/s with the id/start indexes only "
          f"({indexed / plain:.2f}x): the price of searchable filters, paid on the exporter thread")  # fmt: skip
    small, big = sizes[0], sizes[-1]
    print(
        f"\n{'query':16} "
        + " ".join(f"{s:>10}" for s in sizes)
        + f"  {'ratio':>7}   VM steps/100 small/big  ratio"
    )
    for name in times[small]:
        ratio = times[big][name] / max(times[small][name], 1e-6)
        step_ratio = work[big][name] / max(work[small][name], 1)
        line[f"{name}_ms_{big}"] = round(times[big][name], 3)
        line[f"{name}_ratio"] = round(ratio, 2)
        line[f"{name}_steps_ratio"] = round(step_ratio, 2)
        cells = " ".join(f"{times[s][name]:>8.2f}ms" for s in sizes)
        print(
            f"{name:16} {cells}  {ratio:>6.2f}x   {work[small][name]:>8} {work[big][name]:>8}  {step_ratio:>5.2f}x"
            f"  (found {line[f'{name}_found_{big}']})"
        )
    print(f"\nratio = on {big} spans / on {small} spans (~1: index-served; a full scan: ~{big // small})")
    print(json.dumps(line, separators=(",", ":")))
    return 0 if all(line[f"within_bound_{s}"] for s in sizes) else 1


if __name__ == "__main__":
    sys.exit(main())
