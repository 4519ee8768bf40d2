"""Saga orchestrator overhead: durable 3-step sagas vs the same three calls made by a plain script.

One in-process participant server (the JSON participant of the integration tests,
``tests/support/saga_participants.py``) answers Reserve, Charge and Ship. Both rows make
exactly those three calls, in order, through the same ``AsyncMeshClient`` (direct mode)
with the same ``x-idempotency-key`` metadata:

  script        await reserve; await charge; await ship — nothing persisted (the baseline)
  orchestrator  Orchestrator.start() → completed: 8 transitions + 8 history rows per saga
                in 4 SQLite transactions (WAL, synchronous=FULL: an fsync each, before each call;
                the first with the saga's creation)

Sequential sagas give the latency percentiles (start → COMPLETED); 16 concurrent sagas
give the throughput. Prints a table, the ratios and one JSON line (keys in bench/README.md).
Run: python bench/saga.py [--quick]
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
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support is importable from bench/

from grpcmesh.sdk import AsyncMeshClient
from grpcmesh.services.saga.caller import MeshStepCaller
from grpcmesh.services.saga.definitions import load_definitions
from grpcmesh.services.saga.domain import step_key
from grpcmesh.services.saga.engine import Orchestrator
from grpcmesh.services.saga.store.sqlite import SQLiteSagaStore
from tests.support.saga_participants import Participant

DEFINITIONS = load_definitions("tests.support.saga_definitions:DEFINITIONS")
ORDER = DEFINITIONS["order"]
CONCURRENCY = 16
RunOne = Callable[[int], Awaitable[None]]


async def _measure(run: RunOne, n: int) -> dict[str, float]:
    for i in range(min(20, n)):  # warm-up: connections, caches
        await run(-1 - i)
    latencies: list[float] = []
    for i in range(n):
        t0 = time.perf_counter()
        await run(i)
        latencies.append(time.perf_counter() - t0)
    per_worker = max(1, n // CONCURRENCY)

    async def worker(w: int) -> None:
        for j in range(per_worker):
            await run(1_000_000 + w * per_worker + j)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))
    elapsed = time.perf_counter() - t0
    latencies.sort()
    return {
        "p50_ms": statistics.median(latencies) * 1e3,
        "p99_ms": latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1e3,
        "sagas_per_s": per_worker * CONCURRENCY / elapsed,
    }


def _script(caller: MeshStepCaller, tag: str) -> RunOne:
    from grpcmesh.services.saga.definitions import StepContext

    async def run(i: int) -> None:
        saga_id = f"{tag}-{i}"
        saga_input = {"order_id": f"o-{i}", "sku": "book"}
        results: dict[str, dict[str, Any]] = {}
        for step in ORDER.steps:
            ctx = StepContext(saga_id, step.name, saga_input, results)
            results[step.name] = await caller(
                step.action, step.action.request(ctx), step_key(saga_id, step.name)
            )

    return run


def _orchestrated(orch: Orchestrator, tag: str) -> RunOne:
    async def run(i: int) -> None:
        rec = await orch.start("order", f"{tag}-{i}", {"order_id": f"o-{i}", "sku": "book"})
        async for state in orch.watch(rec.saga_id):
            if state.terminal and state.status.name != "COMPLETED":
                raise RuntimeError(f"saga {rec.saga_id} ended {state.status.name}: {state.error}")

    return run


async def main(quick: bool) -> dict[str, Any]:
    n = 150 if quick else 1000
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((Participant("bench"),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    address = f"127.0.0.1:{port}"
    discovery = {name: [address] for name in ("inventory", "payments", "shipping")}
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteSagaStore(str(Path(tmp) / "bench.db"))
        await store.open()
        try:
            async with AsyncMeshClient("bench", discovery=discovery, retry=False) as client:
                caller = MeshStepCaller(client)
                results["script"] = await _measure(_script(caller, "script"), n)
                orch = Orchestrator(store, DEFINITIONS, caller)
                results["orchestrator"] = await _measure(_orchestrated(orch, "saga"), n)
                await orch.close()
        finally:
            await store.close()
            await server.stop(0)
    base, durable = results["script"], results["orchestrator"]
    print(f"{'row':<14} {'p50 ms':>8} {'p99 ms':>8} {'sagas/s (16 conc.)':>20}")
    for name, r in results.items():
        print(f"{name:<14} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['sagas_per_s']:>20.0f}")
    ratios = {
        "p50_ratio": round(durable["p50_ms"] / base["p50_ms"], 2),
        "throughput_ratio": round(durable["sagas_per_s"] / base["sagas_per_s"], 2),
    }
    print("orchestrator vs script: " + ", ".join(f"{k}={v}" for k, v in ratios.items()))
    doc: dict[str, Any] = {
        "bench": "saga",
        "quick": quick,
        "sagas": n,
        "concurrency": CONCURRENCY,
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    for name, r in results.items():
        doc.update({f"{name}_{k}": round(v, 2) for k, v in r.items()})
    doc.update(ratios)
    print(json.dumps(doc, separators=(",", ":")))
    return doc


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sagas; finishes in well under 45 s")
    asyncio.run(main(parser.parse_args().quick))
