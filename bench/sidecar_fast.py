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

A second table, for ``--workers``: 64 callers over 16 connections, direct / one sidecar as one
process / the same with ``--workers 2`` (CPU per call: supervisor and both workers together).
On a 2-core box ghz and the upstream need CPU too, so read it with the CPU per call.

    python bench/sidecar_fast.py            # ~1.5 min
    python bench/sidecar_fast.py --quick    # ~20 s, same JSON keys, fewer samples
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
CONNECTIONS, MANY_CALLERS = 16, 64  # the multi-core table: many connections for the kernel to spread


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
    loadgen_cpu: float = 0.0  # ghz's own CPU (the reaped child's rusage)

    def cpu_ms(self) -> list[float]:
        """CPU ms per call of each proxy process, over every round."""
        return [self.cpu.get(p, 0.0) / self.calls * 1000 for p in self.pids] if self.calls else []


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(rows: list[Row], ghz: Path, upstream_pid: int, rounds: int, seconds: float) -> None:
    """Rows interleaved round by round; per row the best round's throughput (other load on a
    shared box only slows a round down) and CPU summed over all rounds."""
    for row in rows:  # warm-up: connections, upstream pools, caches
        run_ghz(ghz, row.target, 0.5, concurrency=row.callers, connections=row.connections)
    for _ in range(rounds):
        for row in rows:
            pids = [*row.pids, upstream_pid]
            before = {p: cpu_seconds(p) for p in pids}
            ghz_before = children_cpu()
            got = run_ghz(ghz, row.target, seconds, concurrency=row.callers, connections=row.connections)
            for p in row.pids:
                row.cpu[p] = row.cpu.get(p, 0.0) + cpu_seconds(p) - before[p]
            row.upstream_cpu += cpu_seconds(upstream_pid) - before[upstream_pid]
            row.loadgen_cpu += children_cpu() - ghz_before
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


def worker_rows(group: ProcessGroup, upstream: str) -> list[Row]:
    """One sidecar (policies, trace 1%) as one process and as ``--workers 2`` (CPU: every process)."""
    args = ("--endpoints", f"interop={upstream}", "--sample-ratio", "0.01")
    one = start_sidecar(group, "w1", "127.0.0.1:1", *args, config={"routes": ROUTES}, wait=False)
    two = start_sidecar(
        group, "w2", "127.0.0.1:1", *args, "--workers", "2", config={"routes": ROUTES}, wait=False
    )
    for sc in (one, two):
        sc.proc.wait_output("sidecar ready", timeout=60)
    workers = [w["pid"] for w in two.admin_json("/workers")["workers"]]
    many = {"connections": CONNECTIONS, "callers": MANY_CALLERS}
    return [
        Row("mc_w1", "one sidecar, 1 process", f"127.0.0.1:{one.outbound}", [one.proc.pid], **many),
        Row(
            "mc_w2", "one sidecar, --workers 2", f"127.0.0.1:{two.outbound}", [two.proc.pid, *workers], **many
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
        many = [Row("mc_direct", "direct", upstream, connections=CONNECTIONS, callers=MANY_CALLERS)]
        many += worker_rows(group, upstream)
        measure(rows, ghz, up.pid, rounds, seconds)
        measure(many, ghz, up.pid, rounds, seconds)
    finally:
        group.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    return report(rows, many, quick)


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
        f"{row.key}_all_cpu_ms_per_call": r3(
            (row.loadgen_cpu + row.upstream_cpu) / row.calls * 1000 + (total or 0.0)
        ),
    }


def table(title: str, rows: list[Row], nginx: Row | None) -> dict[str, object]:
    """Prints one table; returns its rows' JSON keys (ratios vs its first row, the direct one)."""
    print(f"\n{title}")
    print(
        f"{'path':34} {'calls/s':>8} {'x direct':>8} {'x nginx':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'proxy cpu ms/call':>24} {'errors':>6}"
    )
    out: dict[str, object] = {}
    for row in rows:
        keys = row_keys(row, rows[0], nginx)
        out.update(keys)
        each = "+".join(f"{c:.3f}" for c in row.cpu_ms()) or "-"
        vs_ngx = keys[f"{row.key}_vs_nginx"]
        print(
            f"{row.name:34} {keys[f'{row.key}_rps']:>8} {keys[f'{row.key}_vs_direct']:>8} "
            f"{'-' if vs_ngx is None else vs_ngx:>8} {keys[f'{row.key}_p50_ms']:>7} {keys[f'{row.key}_p99_ms']:>7} "
            f"{each:>24} {row.errors:>6}"
        )
    return out


def cpu_bound(result: dict[str, object], many: list[Row]) -> dict[str, object]:
    """What this run's CPU per call allows: a process proxies on at most one core, and the box
    has ``cores`` for ghz, the upstream and the proxies together; the lower limit binds."""
    cores = os.cpu_count() or 1
    out: dict[str, object] = {"cores": cores}
    limits: list[float] = []
    for row in many[1:]:
        spent = result[f"{row.key}_all_cpu_ms_per_call"]
        proxy = result[f"{row.key}_cpu_ms_per_call"]
        assert isinstance(spent, float)
        assert isinstance(proxy, float)
        workers = len(row.pids) - 1 if len(row.pids) > 1 else 1  # a supervisor does not proxy
        ceiling = cores * 1000 / spent  # the calls/s at which everything in the row fills every core
        out[f"{row.key}_cpu_ceiling_rps"] = round(ceiling)
        limits.append(min(ceiling, workers * 1000 / proxy))
    out["mc_w2_vs_w1_cpu_bound"] = r3(limits[1] / limits[0])
    print(
        f"CPU per call of everything (ghz + upstream + proxies): 1 process {result['mc_w1_all_cpu_ms_per_call']} ms, "
        f"2 workers {result['mc_w2_all_cpu_ms_per_call']} ms: {cores} cores are full at "
        f"{out['mc_w1_cpu_ceiling_rps']} / {out['mc_w2_cpu_ceiling_rps']} calls/s, an estimate of the most "
        f"2 workers can gain here: {out['mc_w2_vs_w1_cpu_bound']}x 1 process (mean CPU over all rounds, best round's calls/s)"
    )
    return out


def report(rows: list[Row], many: list[Row], quick: bool) -> dict[str, object]:
    direct, nginx = rows[0], next((r for r in rows if r.key == "nginx"), None)
    mode = "quick" if quick else "full"
    result: dict[str, object] = {"bench": "sidecar_fast", "quick": quick}
    result.update(
        table(
            f"sidecar vs a fast upstream ({mode}): ghz UnaryCall, {CALLERS} callers, 1 connection",
            rows,
            nginx,
        )
    )
    if nginx is None:
        print("nginx grpc_pass: skipped, nginx not on PATH (apt-get install nginx)")
    title = f"more than one core ({mode}): {MANY_CALLERS} callers over {CONNECTIONS} connections"
    result.update(table(title, many, None))
    w1, w2 = (r.best for r in many[1:])
    assert w1 is not None
    assert w2 is not None
    result["mc_w2_vs_w1"] = r3(w2.rps / w1.rps)
    result.update(cpu_bound(result, many))
    result["upstream_cpu_ms_per_call"] = (
        r3(direct.upstream_cpu / direct.calls * 1000) if direct.calls else None
    )
    result["errors"] = sum(r.errors for r in [*rows, *many])
    result["loadavg_1m"] = round(os.getloadavg()[0], 2)
    print(
        f"\nratios: one sidecar (policies, trace 1%) {result['one_vs_nginx']}x nginx's throughput (target >= 1.0), "
        f"CPU/call {result['one_cpu_vs_nginx']}x nginx's (target <= 1.0); bare {result['one_bare_cpu_vs_nginx']}x; "
        f"pair {result['pair_vs_direct']}x direct; 2 workers {result['mc_w2_vs_w1']}x 1 (target >= 1.6)"
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
