"""Discovery on a real Consul cluster: 3 servers, several hosts, each watcher through its own agent.

The multi-host harness of the cluster tests (tests/cluster: network namespaces, the
shipped deploy/consul/server.hcl and agent.hcl) with ``--hosts`` application hosts,
each running ``--per-host`` resolver processes (``tests/support/resolver_proc.py``: the
sidecar's discovery, ConsulResolver, without its data plane) against the host's own
client agent on 127.0.0.1:8500. Every watcher watches all N services of 3 instances
(registered in bulk through ``/v1/txn`` on a server). Per row: the servers' idle CPU
(sum of 3) and largest RSS, an agent's idle CPU and RSS, a watcher's RSS, the servers'
and an agent's CPU per change, and the time for a check flip to reach EVERY watcher
(p50/p99). Baseline in the same run: N = 100; the ratios say how each figure grows
from 100 to 1,000 services. Needs root. Prints a table, the ratios and one JSON line.

    python bench/cluster.py            # 4 hosts x 2 watchers, 30 changes, ~2 min
    python bench/cluster.py --quick    # 2 hosts x 1 watcher, 10 changes
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.discovery import Child, cpu_seconds, pct, rss_mb  # noqa: E402
from tests.cluster.netns import run_in, sweep  # noqa: E402
from tests.cluster.topology import PROFILES, SERVERS, Topology  # noqa: E402
from tests.support.consul import find_consul  # noqa: E402
from tests.support.consul_scale import register_services, service_name, set_status  # noqa: E402

PORTS = (7001, 7002, 7003)  # never dialled: only discovery is measured
LOCAL_AGENT = "http://127.0.0.1:8500"


@dataclass
class Row:
    services: int
    watchers: int
    server_idle_cpu_pct: float = 0.0
    server_rss_mb: float = 0.0
    agent_idle_cpu_pct: float = 0.0
    agent_rss_mb: float = 0.0
    watcher_rss_mb: float = 0.0
    server_ms_per_change: float = 0.0
    agent_ms_per_change: float = 0.0
    prop_p50_ms: float = 0.0
    prop_p99_ms: float = 0.0
    missed: int = 0


def _on_server(topo: Topology, fn: Any) -> None:
    run_in(topo.host(SERVERS[0]).ns, fn, timeout=600)


def _seen_by_all(watchers: list[Child], service: str, started: float) -> list[float]:
    """Milliseconds until each watcher reported ``service`` changed (10 s bound each)."""
    out = []
    deadline = time.monotonic() + 10
    for w in watchers:
        while (line := w.next(max(0.0, deadline - time.monotonic()))) is not None:
            if line.get("service") == service:
                out.append((line["t"] - started) * 1000)
                break
    return out


def _propagation(
    topo: Topology, watchers: list[Child], services: int, changes: int
) -> tuple[list[float], int]:
    critical: set[str] = set()
    latencies: list[float] = []
    missed = 0
    for _ in range(changes):
        service = service_name(random.randrange(services))
        status = "passing" if service in critical else "critical"
        critical.symmetric_difference_update({service})
        started = time.time()
        _on_server(topo, lambda s=service, st=status: set_status(LOCAL_AGENT, [s], 0, PORTS[0], st))
        seen = _seen_by_all(watchers, service, started)
        missed += len(watchers) - len(seen)
        if len(seen) == len(watchers):
            latencies.append(max(seen))  # the change has reached every watcher
        time.sleep(0.2)
    _on_server(topo, lambda: set_status(LOCAL_AGENT, sorted(critical), 0, PORTS[0], "passing"))
    return latencies, missed


def measure(topo: Topology, hosts: list[str], services: int, args: argparse.Namespace) -> Row:
    watchers = [
        Child(LOCAL_AGENT, "feed", services, 0, prefix=tuple(topo.host(h).exec_argv([])))
        for h in hosts
        for _ in range(args.per_host)
    ]
    row = Row(services, len(watchers))
    servers = [topo.proc(s, "consul").pid for s in SERVERS]
    agents = [topo.proc(h, "consul").pid for h in hosts]
    try:
        for w in watchers:
            ready = w.next(600)
            if ready is None or ready.get("event") != "ready":
                raise RuntimeError(f"watcher not ready: {ready}")
        time.sleep(2.0)
        s0, a0, t0 = [cpu_seconds(p) for p in servers], [cpu_seconds(p) for p in agents], time.monotonic()
        time.sleep(args.idle)
        elapsed = time.monotonic() - t0
        row.server_idle_cpu_pct = (
            100 * sum(cpu_seconds(p) - c for p, c in zip(servers, s0, strict=True)) / elapsed
        )
        row.agent_idle_cpu_pct = (
            100 * sum(cpu_seconds(p) - c for p, c in zip(agents, a0, strict=True)) / elapsed / len(agents)
        )
        row.server_rss_mb = max(rss_mb(p) for p in servers)
        row.agent_rss_mb = sum(rss_mb(p) for p in agents) / len(agents)
        row.watcher_rss_mb = sum(rss_mb(w.proc.pid) for w in watchers) / len(watchers)
        s0, a0 = [cpu_seconds(p) for p in servers], [cpu_seconds(p) for p in agents]
        latencies, row.missed = _propagation(topo, watchers, services, args.changes)
        row.server_ms_per_change = (
            1000 * sum(cpu_seconds(p) - c for p, c in zip(servers, s0, strict=True)) / args.changes
        )
        agent_s = sum(cpu_seconds(p) - c for p, c in zip(agents, a0, strict=True)) / len(agents)
        row.agent_ms_per_change = 1000 * agent_s / args.changes
        row.prop_p50_ms, row.prop_p99_ms = pct(latencies, 0.5), pct(latencies, 0.99)
    finally:
        for w in watchers:
            w.stop()
    return row


def run(args: argparse.Namespace) -> list[Row]:
    consul = find_consul()
    if consul is None:
        sys.exit("no consul binary: run `make consul`")
    sweep()
    topo = Topology(Path(tempfile.mkdtemp(prefix="grpcmesh-cluster-bench-")), consul, PROFILES["ci"])
    hosts = [f"host-{i}" for i in range(1, args.hosts + 1)]
    rows = []
    try:
        topo.up_consul()
        topo.add_hosts(hosts)
        registered = 0
        for size in (100, 1000):
            names = [service_name(i) for i in range(registered, size)]
            _on_server(topo, lambda n=names: register_services(LOCAL_AGENT, n, PORTS))
            registered = size
            rows.append(measure(topo, hosts, size, args))
            print(f"  {size:>6} services: done", file=sys.stderr)
    finally:
        topo.down()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--hosts", type=int, default=None)
    parser.add_argument("--per-host", type=int, default=None)
    parser.add_argument("--changes", type=int, default=None)
    parser.add_argument("--idle", type=float, default=None, help="seconds of the idle window (10; quick: 5)")
    args = parser.parse_args()
    args.hosts = args.hosts or (2 if args.quick else 4)
    args.per_host = args.per_host or (1 if args.quick else 2)
    args.changes = args.changes or (10 if args.quick else 30)
    args.idle = args.idle or (5.0 if args.quick else 10.0)
    if os.geteuid() != 0:  # `make bench` runs every file: say so and let the others run
        print("skipped: bench/cluster.py needs root (network namespaces, veth pairs, a bridge)")
        print(json.dumps({"bench": "cluster", "skipped": "needs root"}))
        return
    rows = run(args)
    cols = list(asdict(rows[0]))
    print(" | ".join(cols))
    for row in rows:
        print(" | ".join(f"{v:.1f}" if isinstance(v, float) else str(v) for v in asdict(row).values()))
    base, big = rows
    ratios = {
        f"{k}_ratio_1000_100": round(getattr(big, k) / getattr(base, k), 2)
        for k in (
            "server_idle_cpu_pct",
            "server_rss_mb",
            "agent_rss_mb",
            "server_ms_per_change",
            "prop_p50_ms",
        )
        if getattr(base, k)
    }
    for k, v in ratios.items():
        print(f"{k}: {v}x")
    out: dict[str, Any] = {
        "bench": "cluster",
        "quick": args.quick,
        "hosts": args.hosts,
        "per_host": args.per_host,
    }
    for row in rows:
        out.update({f"{row.services}_{k}": v for k, v in asdict(row).items() if k != "services"})
    print(json.dumps({**out, **ratios}))


if __name__ == "__main__":
    main()
