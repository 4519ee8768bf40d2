"""The CQRS and saga services across hosts: PostgreSQL restarts under writes, the active saga
orchestrator's host dies mid-run. Both with orders, read-your-writes queries and sagas
running from the two caller hosts through their sidecars (mTLS between all of them).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator

import psycopg
import pytest

from tests.cluster.configs import Slot
from tests.cluster.services import PARTICIPANTS, SAGA_HOSTS, ClusterPostgres, start_services
from tests.cluster.topology import ROOT, Topology
from tests.support.procs import wait_for

CHARGE = "/shop.Payments/Charge"


@pytest.fixture(scope="module")
def services(topology: Topology) -> Iterator[ClusterPostgres]:
    pg = start_services(topology)
    try:
        yield pg
    finally:
        pg.remove()  # its process goes with the topology


def _ns_run(topo: Topology, host: str, *argv: str) -> str:
    full = topo.host(host).exec_argv([sys.executable, "-m", *argv])
    done = subprocess.run(full, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, f"{argv} on {host}: {done.stdout[-2000:]} {done.stderr[-2000:]}"
    return done.stdout


def _participant(topo: Topology, name: str, verb: str, **body: object) -> dict[str, list[dict[str, str]]]:
    target = f"127.0.0.1:{Slot(PARTICIPANTS.index(name)).app}"
    out = _ns_run(topo, "shop-1", "tests.cluster.probe", "control", target, verb, json.dumps(body))
    return json.loads(out)  # type: ignore[no-any-return]


class OrderLoad:
    """``tests.cluster.orderload run`` on both callers; :meth:`verify` stops it and checks the logs."""

    def __init__(self, topo: Topology, tag: str) -> None:
        self.topo = topo
        self.logs = {c: topo.workdir / f"{c}-{tag}-orders.jsonl" for c in topo.callers}
        for caller, log in self.logs.items():
            argv = [
                sys.executable,
                "-m",
                "tests.cluster.orderload",
                "run",
                "--name",
                caller,
                "--out",
                str(log),
            ]
            topo.start(caller, "orders", argv).wait_output("orderload running", 60)

    def acked(self) -> int:
        return sum(p.read_text().count('"command"') for p in self.logs.values() if p.exists())

    def progressed(self, calls: int = 10, timeout: float = 90.0) -> None:
        start = self.acked()
        wait_for(
            lambda: self.acked() >= start + calls, timeout, 0.2, what=f"{calls} more acknowledged commands"
        )

    def verify(self) -> list[dict[str, object]]:
        for caller in self.logs:
            proc = self.topo.proc(caller, "orders")
            proc.stop(timeout=60)  # SIGTERM: finishes the order in hand
        out = []
        for caller, log in self.logs.items():
            argv = ("tests.cluster.orderload", "verify", "--name", caller, "--out", str(log))
            out.append(json.loads(_ns_run(self.topo, caller, *argv).strip().splitlines()[-1]))
        return out


def test_postgres_restart_under_write_load_loses_no_acknowledged_event(
    topology: Topology, services: ClusterPostgres
) -> None:
    load = OrderLoad(topology, "pg")
    load.progressed()
    services.crash()  # SIGKILL of the server's process group mid-write: a crash, WAL replay on start
    time.sleep(3.0)
    services.restart()
    load.progressed()  # writes go on after the restart, without restarting any service
    summaries = load.verify()
    topology.note(f"PostgreSQL restart: {summaries}")
    for summary in summaries:
        assert summary["problems"] == [], summary
        assert summary["commands"], summary  # the load ran


def _active_saga_host(topo: Topology, pg: ClusterPostgres) -> str | None:
    """The orchestrator host holding the saga database's advisory lock (None between holders)."""
    with psycopg.connect(pg.dsn("saga"), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT host(a.client_addr) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.locktype = 'advisory' AND l.granted"
        ).fetchall()
    by_addr = {topo.host(h).address: h for h in SAGA_HOSTS}
    holders = [by_addr[r[0]] for r in rows if r[0] in by_addr]
    assert len(holders) <= 1, rows  # never two at once
    return holders[0] if holders else None


def test_saga_host_sigkill_mid_run_the_standby_resumes_every_saga_once(
    topology: Topology, services: ClusterPostgres
) -> None:
    active = _active_saga_host(topology, services)
    assert active is not None, "no orchestrator holds the lock"
    _participant(topology, "payments", "Configure", method=CHARGE, block=True)
    load = OrderLoad(topology, "saga")
    wait_for(lambda: _participant(topology, "payments", "Log")["calls"], 60, 0.5, what="a charge in flight")
    in_flight = {c["key"] for c in _participant(topology, "payments", "Log")["calls"]}
    for key in [k for k in topology.procs if k[0] == active]:
        topology.proc(*key).kill()  # the whole host, mid-saga: agent, sidecar, orchestrator
    _participant(topology, "payments", "Configure", method=CHARGE)
    _participant(topology, "payments", "Release", method=CHARGE)
    standby = next(h for h in SAGA_HOSTS if h != active)
    wait_for(lambda: _active_saga_host(topology, services) == standby, 60, 0.5, what="the standby to lead")
    load.progressed(5)
    summaries = load.verify()
    topology.note(f"saga host killed: {summaries}")
    for summary in summaries:
        assert summary["problems"] == [], summary
        assert summary["sagas"], summary
    for name in PARTICIPANTS:
        effects = Counter(e["key"] for e in _participant(topology, name, "Log")["effects"])
        twice = [k for k, n in effects.items() if n > 1]
        assert twice == [], f"{name}: effects applied more than once: {twice[:5]}"
    charged = Counter(e["key"] for e in _participant(topology, "payments", "Log")["effects"])
    assert all(charged[key] == 1 for key in in_flight), (in_flight, charged)  # resumed, charged once
    shipped = {e["key"].split("/")[0] for e in _participant(topology, "shipping", "Log")["effects"]}
    assert {key.split("/")[0] for key in in_flight} <= shipped  # and driven to the end by the standby
