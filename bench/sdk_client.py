"""SDK client overhead: MeshClient (direct mode and sidecar-mode path) vs a bare grpc.aio channel.

One in-process grpc.aio server answers a unary echo (raw bytes, generic
handler, no SDK server interceptors so only the client side differs). Each
variant makes the same calls, sequentially (latency) and with 16 concurrent
callers (throughput), in rounds interleaved across the variants (5, --quick 3) so
that load from elsewhere hits each variant alike:

  baseline   grpc.aio.insecure_channel + unary_unary multicallable
  sidecar    AsyncMeshClient(sidecar=<the server>): request id, trace, deadline, x-mesh-*
             headers, typed errors; one pooled channel (no proxy in between)
  direct     AsyncMeshClient(discovery={...}): the above plus Cluster (p2c balancer,
             breaker, retry budget) in-process

Prints a table, the ratios to the baseline and one JSON line (keys in bench/README.md).
Run: python bench/sdk_client.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from grpcmesh.sdk import AsyncMeshClient

METHOD = "/bench.v1.Echo/Unary"


async def _echo(request: bytes, context: Any) -> bytes:
    return request


class _Stub:
    def __init__(self, channel: Any) -> None:
        self.Unary = channel.unary_unary(METHOD)


async def _round(
    call: Callable[[bytes], Awaitable[bytes]], n: int, concurrency: int
) -> tuple[list[float], float]:
    """One round of a variant: n sequential calls (their latencies), then n calls from
    ``concurrency`` callers (the elapsed time)."""
    payload = b"x" * 64
    latencies: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        await call(payload)
        latencies.append(time.perf_counter() - t0)
    per_worker = max(1, n // concurrency)

    async def worker() -> None:
        for _ in range(per_worker):
            await call(payload)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - t0


async def _measure(call: Callable[[bytes], Awaitable[bytes]], n: int, concurrency: int) -> dict[str, float]:
    """One variant in one round (bench/gateway.py measures its rows with this)."""
    return (await measure_interleaved({"one": call}, n, concurrency, 1))["one"]


async def measure_interleaved(
    variants: dict[str, Callable[[bytes], Awaitable[bytes]]], n: int, concurrency: int, rounds: int
) -> dict[str, dict[str, float]]:
    """Rounds interleaved (each variant once per round), so load from elsewhere hits all alike;
    percentiles over every round's latencies, throughput = all calls / all time."""
    for call in variants.values():
        for _ in range(min(200, n)):  # warm-up: connections, caches
            await call(b"x" * 64)
    per_round = max(concurrency, n // rounds)
    latencies: dict[str, list[float]] = {name: [] for name in variants}
    elapsed = dict.fromkeys(variants, 0.0)
    for _ in range(rounds):
        for name, call in variants.items():
            lat, took = await _round(call, per_round, concurrency)
            latencies[name] += lat
            elapsed[name] += took
    results = {}
    for name, lat in latencies.items():
        lat.sort()
        results[name] = {
            "p50_us": statistics.median(lat) * 1e6,
            "p99_us": lat[int(len(lat) * 0.99) - 1] * 1e6,
            "rps": per_round // concurrency * concurrency * rounds / elapsed[name],
        }
    return results


async def main(quick: bool) -> dict[str, Any]:
    n = 1500 if quick else 8000
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "bench.v1.Echo", {"Unary": grpc.unary_unary_rpc_method_handler(_echo)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    address = f"127.0.0.1:{port}"
    rounds = 3 if quick else 5
    try:
        async with (
            grpc.aio.insecure_channel(address) as channel,
            AsyncMeshClient(service="bench", sidecar=address) as via_sidecar,
            AsyncMeshClient(service="bench", discovery={"echo": [address]}) as direct,
        ):
            raw = channel.unary_unary(METHOD)
            sidecar_stub, direct_stub = _Stub(via_sidecar.channel("echo")), _Stub(direct.channel("echo"))
            variants: dict[str, Callable[[bytes], Awaitable[bytes]]] = {
                "baseline": lambda p: raw(p, timeout=30),
                "sidecar": lambda p: sidecar_stub.Unary(p),
                "direct": lambda p: direct_stub.Unary(p),
            }
            results = await measure_interleaved(variants, n, 16, rounds)
    finally:
        await server.stop(0)
    base = results["baseline"]
    ratios = {
        f"{name}_p50_ratio": round(r["p50_us"] / base["p50_us"], 2)
        for name, r in results.items()
        if name != "baseline"
    }
    ratios.update(
        {
            f"{name}_rps_ratio": round(r["rps"] / base["rps"], 2)
            for name, r in results.items()
            if name != "baseline"
        }
    )
    doc: dict[str, Any] = {
        "bench": "sdk_client",
        "calls": n,
        "concurrency": 16,
        "rounds": rounds,
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    return report(doc, results, ratios, row="variant", baseline="baseline", concurrency=16)


def report(
    doc: dict[str, Any],
    results: dict[str, dict[str, float]],
    ratios: dict[str, float],
    *,
    row: str,
    baseline: str,
    concurrency: int,
) -> dict[str, Any]:
    """Prints the table, the ratios to ``baseline`` and the JSON line: ``doc``, every row's figures, ratios."""
    print(f"{row:<10} {'p50 µs':>10} {'p99 µs':>10} {f'rps ({concurrency} conc.)':>16}")
    for name, r in results.items():
        print(f"{name:<10} {r['p50_us']:>10.0f} {r['p99_us']:>10.0f} {r['rps']:>16.0f}")
    print(f"ratios to {baseline}: " + ", ".join(f"{k}={v}" for k, v in ratios.items()))
    for name, r in results.items():
        doc.update({f"{name}_{k}": round(v, 1) for k, v in r.items()})
    doc.update(ratios)
    print(json.dumps(doc))
    return doc


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls; finishes in well under 45 s")
    asyncio.run(main(parser.parse_args().quick))
