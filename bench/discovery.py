"""Discovery at scale: one resolver process watching 10, 100, 1,000 and 10,000 services.

For each size, a resolver runs in its own process (``tests/support/resolver_proc.py``)
against a real ``consul agent -dev`` holding that many services of 3 instances
(registered in bulk through ``/v1/txn``). Measured per row: the process's RSS
and its RSS per watched service, its idle CPU and the agent's over an idle window,
its established connections to the agent, the first-resolve latency of services
never seen before (while all the others stay watched), and how long a check
flipping in the catalog takes to reach the process (p50/p99), the checks in the
process's feed answers, the size of an unfiltered feed answer (the whole
datacenter) and the agent's CPU per change. A last row watches 100 services of
the biggest datacenter, as a typical sidecar would. The baseline, the
old one-blocking-query-per-service resolver, runs in the same run at 10 and
100 services (beyond that it needs one connection per service: Consul's default
``http_max_conns_per_client`` of 200 answers 429). Prints a table, the ratios
and exactly one JSON line (keys in bench/README.md).

    python bench/discovery.py            # 10 .. 10,000 services, ~8 min on a loaded 2-core box
    python bench/discovery.py --quick    # 10 .. 1,000, < 45 s
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.consul import ConsulAgent, find_consul  # noqa: E402
from tests.support.consul_scale import (  # noqa: E402
    agent_connections,
    register_services,
    service_name,
    set_status,
)

PORTS = (7001, 7002, 7003)  # instances are never dialled here: only discovery is measured
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def feed_kb(url: str) -> float:
    """Size of one answer of the change feed (every check in the datacenter), in KB."""
    with urllib.request.urlopen(f"{url}/v1/health/state/any", timeout=60) as resp:
        return len(resp.read()) / 1024


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


@dataclass
class Row:
    mode: str
    services: int
    rss_mb: float = 0.0
    kb_per_service: float = 0.0
    idle_cpu_pct: float = 0.0
    agent_cpu_pct: float = 0.0
    connections: int = 0
    first_p50_ms: float = 0.0
    first_p99_ms: float = 0.0
    prop_p50_ms: float = 0.0
    prop_p99_ms: float = 0.0
    feed_checks: int = 0
    dc_feed_kb: float = 0.0
    agent_ms_per_change: float = 0.0
    missed: int = 0
    empty: int = 0
    ramp_s: float = 0.0


class Child:
    """The resolver process; its stdout lines are read by a thread into a queue."""

    def __init__(self, url: str, mode: str, services: int, probes: int, prefix: tuple[str, ...] = ()) -> None:
        """``prefix``: run it through another command (bench/cluster.py: ``ip netns exec HOST``)."""
        argv = [*prefix, sys.executable, "-m", "tests.support.resolver_proc", "--url", url, "--mode", mode]
        argv += ["--services", str(services), "--probes", str(probes)]
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def next(self, timeout: float) -> dict[str, Any] | None:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def propagation(agent: ConsulAgent, child: Child, services: int, changes: int) -> tuple[list[float], int]:
    """Flips random checks; milliseconds until the child reports each change, and how many it missed."""
    critical: set[str] = set()
    latencies: list[float] = []
    missed = 0
    for _ in range(changes):
        service = service_name(random.randrange(services))
        status = "passing" if service in critical else "critical"
        critical.symmetric_difference_update({service})
        started = time.time()
        set_status(agent.http_url, [service], 0, PORTS[0], status)
        deadline = time.monotonic() + 10
        while (line := child.next(max(0.0, deadline - time.monotonic()))) is not None:
            if line.get("service") == service:
                latencies.append((line["t"] - started) * 1000)
                break
        else:
            missed += 1
        time.sleep(0.1)
    set_status(agent.http_url, sorted(critical), 0, PORTS[0], "passing")  # all passing for the next row
    return latencies, missed


def measure(agent: ConsulAgent, mode: str, services: int, args: argparse.Namespace) -> Row:
    child = Child(agent.http_url, mode, services, args.probes)
    row = Row(mode, services)
    try:
        ready = child.next(300)
        if ready is None or ready.get("event") != "ready":
            raise RuntimeError(f"{mode}/{services}: resolver process not ready: {ready}")
        row.first_p50_ms, row.first_p99_ms = pct(ready["first_ms"], 0.5), pct(ready["first_ms"], 0.99)
        row.empty, row.ramp_s, row.feed_checks = ready["empty"], ready["ramp_s"], ready["feed_checks"]
        time.sleep(1.0)  # let the first answers settle
        pid, agent_pid = child.proc.pid, agent.proc.pid if agent.proc else 0
        cpu0, agent0, t0 = cpu_seconds(pid), cpu_seconds(agent_pid), time.monotonic()
        time.sleep(args.idle)
        elapsed = time.monotonic() - t0
        row.idle_cpu_pct = 100 * (cpu_seconds(pid) - cpu0) / elapsed
        row.agent_cpu_pct = 100 * (cpu_seconds(agent_pid) - agent0) / elapsed
        row.rss_mb = rss_mb(pid)
        row.connections = agent_connections(pid, agent.http_port)
        agent0 = cpu_seconds(agent_pid)
        latencies, row.missed = propagation(agent, child, services, args.changes)
        row.agent_ms_per_change = 1000 * (cpu_seconds(agent_pid) - agent0) / args.changes
        row.dc_feed_kb = feed_kb(agent.http_url)
        row.prop_p50_ms, row.prop_p99_ms = pct(latencies, 0.5), pct(latencies, 0.99)
    finally:
        child.stop()
    return row


def run(args: argparse.Namespace) -> list[Row]:
    binary = find_consul()
    if binary is None:
        sys.exit("no consul binary: run `make consul` (or set CONSUL_BIN)")
    sizes = (10, 100, 1000) if args.quick else (10, 100, 1000, 10000)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        agent = ConsulAgent(binary, Path(tmp)).start()
        try:
            registered = 0
            for size in sizes:
                names = [service_name(i) for i in range(registered, size + args.probes)]
                register_services(agent.http_url, names, PORTS)
                registered = size + args.probes
                for mode in ("per_service", "feed") if size <= 100 else ("feed",):
                    rows.append(measure(agent, mode, size, args))
                    print(f"  {mode:>11} {size:>6}: done", file=sys.stderr)
            if not args.quick:  # what a typical sidecar sees in a big datacenter: 100 of them watched
                rows.append(measure(agent, "feed", 100, args))
                rows[-1].mode = f"feed_dc{sizes[-1]}"
        finally:
            agent.stop()
    base = {r.mode: r.rss_mb for r in rows if r.services == sizes[0]}
    for r in rows:
        if r.services > sizes[0] and r.mode in base:
            r.kb_per_service = (r.rss_mb - base[r.mode]) * 1024 / (r.services - sizes[0])
    return rows


def report(rows: list[Row], args: argparse.Namespace) -> None:
    cols = list(asdict(rows[0]))
    print(" ".join(f"{c:>14}" for c in cols))
    for r in rows:
        print(" ".join(f"{v:>14.1f}" if isinstance(v, float) else f"{v!s:>14}" for v in asdict(r).values()))
    result: dict[str, Any] = {"bench": "discovery", "quick": args.quick, "changes": args.changes}
    for r in rows:
        for key, value in asdict(r).items():
            if key not in ("mode", "services"):
                result[f"{r.mode}_{r.services}_{key}"] = (
                    round(value, 2) if isinstance(value, float) else value
                )
    for size in (10, 100):
        old = next(r for r in rows if r.mode == "per_service" and r.services == size)
        new = next(r for r in rows if r.mode == "feed" and r.services == size)
        result[f"connections_ratio_{size}"] = round(new.connections / max(1, old.connections), 3)
        result[f"prop_p50_ratio_{size}"] = round(new.prop_p50_ms / max(0.001, old.prop_p50_ms), 3)
        result[f"rss_ratio_{size}"] = round(new.rss_mb / max(0.001, old.rss_mb), 3)
        print(
            f"feed vs per_service at {size}: connections x{result[f'connections_ratio_{size}']}, "
            f"propagation p50 x{result[f'prop_p50_ratio_{size}']}, RSS x{result[f'rss_ratio_{size}']}"
        )
    print(json.dumps(result, sort_keys=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="10 .. 1,000 services, fewer samples")
    args = parser.parse_args()
    args.probes = 10 if args.quick else 20
    args.changes = 8 if args.quick else 30
    args.idle = 1.0 if args.quick else 5.0
    report(run(args), args)


if __name__ == "__main__":
    main()
