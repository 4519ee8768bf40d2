"""The CQRS and saga services on their own hosts, added to a running :class:`Topology`.

* ``store-1``: PostgreSQL (listening on the host's address, trust for the subnet) and the
  event store on it;
* ``orders-1``: the orders example behind the command bus and the query bus, two app +
  sidecar pairs on one host (the second with its own ports);
* ``saga-1``, ``saga-2``: two orchestrators on one saga database on store-1: one active
  (PostgreSQL advisory lock), one standby;
* ``shop-1``: the saga participants (inventory, payments, shipping).

Every app reaches the others through its own sidecar, found in Consul by name.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import psycopg

from tests.cluster.configs import FIRST, Slot
from tests.cluster.topology import Topology, role
from tests.support.postgres import PostgresServer, find_postgres_bin
from tests.support.procs import ManagedProcess, wait_for

__all__ = ["PARTICIPANTS", "SAGA_HOSTS", "ClusterPostgres", "start_services"]

PG_PORT = 5432
SAGA_HOSTS = ("saga-1", "saga-2")
PARTICIPANTS = ("inventory", "payments", "shipping")
QUERYBUS = Slot(1)
DEFINITIONS = "tests.support.saga_definitions:DEFINITIONS"


class ClusterPostgres(PostgresServer):
    """PostgreSQL inside a host's namespace, on the host's address, reachable from the subnet."""

    def __init__(self, topo: Topology, host: str) -> None:
        bin_dir = find_postgres_bin()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL binaries (initdb, postgres) not found: apt-get install postgresql")
        super().__init__(bin_dir)
        self.topo = topo
        self.host = host
        self.port = PG_PORT

    def _launch(self) -> ManagedProcess:
        argv = self._argv(
            str(self.bin_dir / "postgres"),
            *("-D", str(self.data), "-p", str(self.port), "-c", "listen_addresses=*"),
            *("-c", f"unix_socket_directories={self.sockets}", "-c", "fsync=on"),
            *("-c", "synchronous_commit=on", "-c", "max_connections=200"),
        )
        return self.topo.start(self.host, "postgres", argv)

    def start(self) -> ClusterPostgres:
        self.sockets.mkdir()
        if self._user is not None:
            for path in (self.root, self.sockets):
                os.chown(path, self._user.pw_uid, self._user.pw_gid)
        initdb = [str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust"]
        subprocess.run(
            self._argv(*initdb, "-E", "UTF8", "--locale=C", "--no-sync"),
            check=True,
            capture_output=True,
            timeout=120,
        )
        hba = self.data / "pg_hba.conf"
        hba.write_text(hba.read_text() + f"host all all {self.topo.net.prefix}.0/24 trust\n")
        self.restart()
        return self

    def restart(self) -> None:
        """(Re)starts on the same data directory; returns once it accepts connections."""
        self._proc = self._launch()
        wait_for(self._ready, timeout=60, interval=0.2, what="PostgreSQL to accept connections")

    def crash(self) -> None:
        """SIGQUIT: PostgreSQL's immediate shutdown, no checkpoint; the next start replays the WAL."""
        self.topo.kill(self.host, "postgres")
        self._proc = None

    def remove(self) -> None:
        """Its data directory (the process goes with the topology)."""
        shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@{self.topo.host(self.host).address}:{self.port}/{database}"

    def create(self, name: str) -> None:
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')


def _service(
    topo: Topology,
    host: str,
    service: str,
    argv: list[str],
    slot: Slot = FIRST,
    env: dict[str, str] | None = None,
) -> None:
    topo.start(host, role("app", slot), argv, env).wait_output(
        f"listening on 127.0.0.1:{slot.app}", timeout=60
    )
    topo.start_sidecar(host, service, slot)


def _cli(command: str, slot: Slot, *args: str) -> list[str]:
    return [sys.executable, "-m", "grpcmesh.cli", command, "--port", str(slot.app), *args]


def start_services(topo: Topology) -> ClusterPostgres:
    """Adds the five service hosts, starts everything and waits until each service is passing."""
    topo.add_hosts(["store-1", "orders-1", *SAGA_HOSTS, "shop-1"])
    names = {**topo.names, "store-1": topo.host("store-1").address}
    for host in ("orders-1", *SAGA_HOSTS):  # the orchestrators reach PostgreSQL by name
        topo.net.write_hosts(topo.host(host), names)
    pg = ClusterPostgres(topo, "store-1").start()
    pg.create("events")
    pg.create("saga")
    local_pg = f"postgresql://postgres@127.0.0.1:{PG_PORT}/events"
    _service(topo, "store-1", "eventstore", _cli("eventstore", FIRST, "--db", local_pg))
    sidecar = f"127.0.0.1:{FIRST.outbound}"
    _service(topo, "orders-1", "commandbus", _cli("commandbus", FIRST))
    readmodels = topo.workdir / "orders-1" / "readmodels.db"
    qb = _cli("querybus", QUERYBUS, "--db", str(readmodels))
    env = {"GRPCMESH_SIDECAR": f"127.0.0.1:{QUERYBUS.outbound}"}  # its own sidecar, the host's second
    _service(topo, "orders-1", "querybus", qb, QUERYBUS, env)
    for i, name in enumerate(PARTICIPANTS):
        slot = Slot(i)
        argv = [
            sys.executable,
            "-m",
            "tests.support.saga_participants",
            "--name",
            name,
            "--port",
            str(slot.app),
        ]
        _service(topo, "shop-1", name, argv, slot)
    saga_db = f"postgresql://postgres@store-1:{PG_PORT}/saga"
    saga = _cli("saga", FIRST, "--db", saga_db, "--definitions", DEFINITIONS, "--sidecar", sidecar)
    for host in SAGA_HOSTS:  # it exits when it loses its database session: restarted as systemd would
        _service(topo, host, "saga", [sys.executable, "-m", "tests.cluster.supervise", *saga])
    for host in ("store-1", "orders-1", *SAGA_HOSTS, "shop-1"):
        for key in [k for k in topo.procs if k[0] == host and k[1].startswith("sidecar")]:
            topo.procs[key].wait_output("sidecar ready", timeout=60)
    for service in ("eventstore", "commandbus", "querybus", "saga", *PARTICIPANTS):
        wait_for(lambda s=service: topo.passing(topo.callers[0], s), 60, 0.2, what=f"{service} passing")
    return pg
