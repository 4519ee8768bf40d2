"""Sidecar against a fast upstream: the grpc-go interop server loaded by ghz, both outside judges.

bench/sidecar.py loads a grpc-python echo server from a grpc-python client, so much of what it
measures is grpc-python. Here both ends are grpc-go (``make ghz interop`` builds them from the
Go module proxy), so the proxy in between is what costs. UnaryCall, 100 bytes each way.

One connection, 16 concurrent callers (ghz ``-c 16 --connections 1``), rows interleaved
round by round in one run: direct / one sidecar with policies and 1% tracing / one bare
sidecar / a sidecar pair / nginx ``grpc_pass`` (one worker). Per row: the best round's
throughput and its p50/p99 (ghz's own percentiles), and CPU per call of each proxy process
(``/proc/<pid>/stat`` utime+stime over all rounds / calls). Prints the table, ratios vs
direct and vs nginx, and one JSON line (keys in bench/README.md).

    python bench/sidecar_fast.py            # ~1.5 min
    python bench/sidecar_fast.py --quick    # ~20 s, same JSON keys, fewer samples
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.loadgen import (  # noqa: E402
    GhzResult,
    bin_path,
    cpu_seconds,
    run_ghz,
    start_interop_server,
    start_nginx,
)
from tests.support.mesh import start_sidecar  # noqa: E402
from tests.support.procs import ProcessGroup  # noqa: E402

ROUTES = {"grpc.testing.TestService": "interop"}
CALLERS = 16


@dataclass
class Row:
    key: str  # JSON prefix
    name: str
    target: str
    pids: list[int] = field(default_factory=list)  # the proxy processes (none: direct)
    connections: int = 1
    callers: int = CALLERS
    best: GhzResult | None = None
    calls: int = 0
    errors: int = 0
    cpu: dict[int, float] = field(default_factory=dict)
    upstream_cpu: float = 0.0

    def cpu_ms(self) -> list[float]:
        """CPU ms per call of each proxy process, over every round."""
        return [self.cpu.get(p, 0.0) / self.calls * 1000 for p in self.pids] if self.calls else []


def measure(rows: list[Row], ghz: Path, upstream_pid: int, rounds: int, seconds: float) -> None:
    """Rows interleaved round by round; per row the best round's throughput (other load on a
    shared box only slows a round down) and CPU summed over all rounds."""
    for row in rows:  # warm-up: connections, upstream pools, caches
        run_ghz(ghz, row.target, 0.5, concurrency=row.callers, connections=row.connections)
    for _ in range(rounds):
        for row in rows:
            pids = [*row.pids, upstream_pid]
            before = {p: cpu_seconds(p) for p in pids}
            got = run_ghz(ghz, row.target, seconds, concurrency=row.callers, connections=row.connections)
            for p in row.pids:
                row.cpu[p] = row.cpu.get(p, 0.0) + cpu_seconds(p) - before[p]
            row.upstream_cpu += cpu_seconds(upstream_pid) - before[upstream_pid]
            row.calls += got.count
            row.errors += got.errors
            if row.best is None or got.rps > row.best.rps:
                row.best = got


def sidecar_rows(group: ProcessGroup, upstream: str) -> list[Row]:
    """One sidecar with policies (trace 1%), a bare one, and a pair (both policies, trace 1%)."""
    ep = ("--endpoints", f"interop={upstream}")
    cfg = {"routes": ROUTES}
    app = "127.0.0.1:1"
    one = start_sidecar(group, "c1", app, *ep, "--sample-ratio", "0.01", config=cfg, wait=False)
    bare = start_sidecar(group, "c2", app, *ep, "--bare", config=cfg, wait=False)
    server = start_sidecar(group, "interop", upstream, "--sample-ratio", "0.01", wait=False)
    for sc in (one, bare, server):
        sc.proc.wait_output("sidecar ready", timeout=60)
    client = start_sidecar(
        group,
        "c3",
        app,
        "--endpoints",
        f"interop=127.0.0.1:{server.inbound}",
        "--sample-ratio",
        "0.01",
        config=cfg,
    )
    return [
        Row("one", "one sidecar, policies, trace 1%", f"127.0.0.1:{one.outbound}", [one.proc.pid]),
        Row("one_bare", "one sidecar, bare proxy", f"127.0.0.1:{bare.outbound}", [bare.proc.pid]),
        Row(
            "pair",
            "sidecar pair, policies, trace 1%",
            f"127.0.0.1:{client.outbound}",
            [client.proc.pid, server.proc.pid],
        ),
    ]


def run(quick: bool) -> dict[str, object]:
    rounds, seconds = (1, 1.5) if quick else (3, 4.0)
    ghz, server = bin_path("ghz"), bin_path("grpc-interop-server")
    if ghz is None or server is None:
        note = "skipped: run `make ghz interop` (ghz and the grpc-go interop server in .cache/bin)"
        print(note)
        result: dict[str, object] = {"bench": "sidecar_fast", "quick": quick, "skipped": note}
        print(json.dumps(result, sort_keys=True))
        return result
    workdir = Path(tempfile.mkdtemp(prefix="bench-sidecar-fast-"))
    group = ProcessGroup(workdir)
    try:
        up, port = start_interop_server(group, server)
        upstream = f"127.0.0.1:{port}"
        rows = [Row("direct", "direct", upstream), *sidecar_rows(group, upstream)]
        nginx = start_nginx(group, port, workdir)
        if nginx is not None:
            rows.append(Row("nginx", "nginx grpc_pass, 1 worker", f"127.0.0.1:{nginx[1]}", [nginx[0].pid]))
        measure(rows, ghz, up.pid, rounds, seconds)
    finally:
        group.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    return report(rows, quick)


def r3(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def row_keys(row: Row, direct: Row, nginx: Row | None) -> dict[str, object]:
    best = row.best
    assert best is not None
    cpu = row.cpu_ms()
    total = sum(cpu) if cpu else None
    ngx_cpu = sum(nginx.cpu_ms()) if nginx else None
    assert direct.best is not None
    return {
        f"{row.key}_rps": round(best.rps),
        f"{row.key}_p50_ms": r3(best.p50_ms),
        f"{row.key}_p99_ms": r3(best.p99_ms),
        f"{row.key}_vs_direct": r3(best.rps / direct.best.rps),
        f"{row.key}_vs_nginx": r3(best.rps / nginx.best.rps) if nginx and nginx.best else None,
        f"{row.key}_cpu_ms_per_call": r3(total),
        f"{row.key}_cpu_ms_per_call_each": [r3(c) for c in cpu],
        f"{row.key}_cpu_vs_nginx": r3(total / ngx_cpu) if total is not None and ngx_cpu else None,
    }


def report(rows: list[Row], quick: bool) -> dict[str, object]:
    by = {r.key: r for r in rows}
    direct, nginx = by["direct"], by.get("nginx")
    print(
        f"\nsidecar vs a fast upstream ({'quick' if quick else 'full'}): ghz UnaryCall, {CALLERS} callers, 1 connection"
    )
    print(
        f"{'path':34} {'calls/s':>8} {'x direct':>8} {'x nginx':>8} {'p50 ms':>7} {'p99 ms':>7} {'proxy cpu ms/call':>20} {'errors':>6}"
    )
    result: dict[str, object] = {"bench": "sidecar_fast", "quick": quick}
    for row in rows:
        keys = row_keys(row, direct, nginx)
        result.update(keys)
        each = "+".join(f"{c:.3f}" for c in row.cpu_ms()) or "-"
        vs_ngx = keys[f"{row.key}_vs_nginx"]
        print(
            f"{row.name:34} {keys[f'{row.key}_rps']:>8} {keys[f'{row.key}_vs_direct']:>8} "
            f"{'-' if vs_ngx is None else vs_ngx:>8} {keys[f'{row.key}_p50_ms']:>7} {keys[f'{row.key}_p99_ms']:>7} "
            f"{each:>20} {row.errors:>6}"
        )
    if nginx is None:
        print("nginx grpc_pass: skipped, nginx not on PATH (apt-get install nginx)")
    result["upstream_cpu_ms_per_call"] = (
        r3(direct.upstream_cpu / direct.calls * 1000) if direct.calls else None
    )
    result["errors"] = sum(r.errors for r in rows)
    result["loadavg_1m"] = round(os.getloadavg()[0], 2)
    print(
        f"\nratios: one sidecar (policies, trace 1%) {result['one_vs_nginx']}x nginx's throughput (target >= 1.0), "
        f"CPU/call {result['one_cpu_vs_nginx']}x nginx's (target <= 1.0); bare {result['one_bare_cpu_vs_nginx']}x; "
        f"pair {result['pair_vs_direct']}x direct"
    )
    print(json.dumps(result, sort_keys=True))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer samples; finishes in ~20 s")
    args = parser.parse_args()
    run(args.quick)


if __name__ == "__main__":
    main()
