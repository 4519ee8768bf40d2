"""API gateway overhead: HTTP/JSON through ``grpcmesh gateway`` vs calling gRPC directly.

A real event store process (SQLite in a temp dir) holds one stream with one event;
every row reads it back (ReadStream, server-streaming, one message) in the same run:

  grpc        grpc.aio channel straight to the event store (the baseline)
  gateway     HTTP GET /v1/streams/{id} → gateway (JWT HS256 check, in-process token
              bucket, route match, transcoding, proto3 JSON) → event store; cache off
  cached      same gateway route with the response cache on: X-Cache HIT, no upstream call

The gateway runs in direct mode (no sidecar) so only the HTTP edge is added. The load
generator (this process: grpc.aio / aiohttp with keep-alive) is on the same 2 cores, so
its own cost is in every row; compare ratios. Sequential calls give latency percentiles,
16 concurrent callers give throughput.

Prints a table, the ratios to the baseline and one JSON line (keys in bench/README.md).
Run: python bench/gateway.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # reuse the test helpers that start processes and mint tokens

from grpcmesh.api.v1 import eventstore_pb2 as pb  # noqa: E402
from grpcmesh.api.v1 import eventstore_pb2_grpc as pb_grpc  # noqa: E402
from tests.support.gateway import GatewayProc, make_token, start_gateway  # noqa: E402
from tests.support.procs import ProcessGroup, free_port  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from sdk_client import _measure as measure_calls  # type: ignore[import-not-found]  # noqa: E402
from sdk_client import report  # type: ignore[import-not-found]  # noqa: E402

STREAM = "bench-1"
CONCURRENCY = 16


async def _measure(call: Callable[[], Awaitable[Any]], n: int) -> dict[str, float]:
    """sdk_client.py's measurement (warm-up, sequential percentiles, concurrent throughput)."""
    result: dict[str, float] = await measure_calls(lambda _payload: call(), n, CONCURRENCY)
    return result


def _http_call(session: aiohttp.ClientSession, url: str, token: str) -> Callable[[], Awaitable[Any]]:
    headers = {"Authorization": f"Bearer {token}"}

    async def call() -> Any:
        async with session.get(url, headers=headers) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"gateway answered {resp.status}: {body[:200]!r}")
            return body

    return call


async def _run(
    n: int, store_port: int, plain: GatewayProc, cached: GatewayProc
) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    async with grpc.aio.insecure_channel(f"127.0.0.1:{store_port}") as channel:
        stub = pb_grpc.EventStoreStub(channel)
        event = pb.ProposedEvent(id=str(uuid.uuid4()), type="Created", data=b'{"n": 1}')
        await stub.Append(pb.AppendRequest(stream_id=STREAM, events=[event]), timeout=10)
        request = pb.ReadStreamRequest(stream_id=STREAM)

        async def direct() -> Any:
            return [e async for e in stub.ReadStream(request, timeout=10)]

        results["grpc"] = await _measure(direct, n)
    token = make_token("bench")
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        results["gateway"] = await _measure(_http_call(session, f"{plain.url}/v1/streams/{STREAM}", token), n)
        results["cached"] = await _measure(_http_call(session, f"{cached.url}/v1/streams/{STREAM}", token), n)
    return results


def main(quick: bool) -> dict[str, Any]:
    n = 1000 if quick else 5000
    with tempfile.TemporaryDirectory(prefix="grpcmesh-bench-gw-") as tmp:
        procs = ProcessGroup(Path(tmp))
        try:
            store_port = free_port()
            db = f"sqlite://{Path(tmp) / 'events.db'}"
            argv = [sys.executable, "-m", "grpcmesh.cli", "eventstore", "--db", db]
            store = procs.start([*argv, "--port", str(store_port)], "eventstore", cwd=ROOT)
            store.wait_output(f"listening on 127.0.0.1:{store_port}", timeout=30)
            base = (
                "[rate_limit]\nrate = 1000000\nburst = 1000000\n"
                f'[discovery]\neventstore = ["127.0.0.1:{store_port}"]\n'
                '[services]\n"grpcmesh.api.v1.EventStore" = "eventstore"\n'
            )
            plain = start_gateway(procs, Path(tmp), "[cache]\nttl = 0\n" + base)
            cached = start_gateway(procs, Path(tmp), "[cache]\nttl = 3600\n" + base)
            results = asyncio.run(_run(n, store_port, plain, cached))
        finally:
            procs.stop_all()
    baseline = results["grpc"]
    ratios: dict[str, float] = {}
    for name in ("gateway", "cached"):
        ratios[f"{name}_p50_ratio"] = round(results[name]["p50_us"] / baseline["p50_us"], 2)
        ratios[f"{name}_rps_ratio"] = round(results[name]["rps"] / baseline["rps"], 2)
    ratios["gateway_added_p50_us"] = round(results["gateway"]["p50_us"] - baseline["p50_us"], 1)
    doc: dict[str, Any] = {"bench": "gateway", "quick": quick, "calls": n, "concurrency": CONCURRENCY}
    result: dict[str, Any] = report(doc, results, ratios, row="row", baseline="grpc", concurrency=CONCURRENCY)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls; finishes in well under 45 s")
    main(parser.parse_args().quick)
