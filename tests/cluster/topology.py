"""The multi-host topology: 3 Consul servers and application hosts, each in its own namespace.

Every application host runs what a machine in a real deployment runs: a Consul client
agent from deploy/consul/agent.hcl, an app on 127.0.0.1:50051 and a sidecar from
deploy/sidecar.toml (mTLS on, certificates from ``grpcmesh ca``). The ``echo-N`` hosts
serve service ``echo``; the ``caller-N`` hosts serve ``web`` and run the load.

:meth:`Topology.down` SIGKILLs every process and removes every namespace, veth and the
bridge; it runs from the fixture's ``finally``, from ``atexit`` and on SIGTERM/SIGHUP,
and the next run sweeps what a SIGKILLed run left.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cluster import configs
from tests.cluster.configs import FIRST, Slot
from tests.cluster.netns import Host, Network, connect_in
from tests.support.certs import ca_cli
from tests.support.procs import ManagedProcess, wait_for

__all__ = ["PROFILES", "Profile", "Topology", "current_profile", "role"]

ROOT = Path(__file__).resolve().parents[2]
APP_PORT, CONSUL_HTTP = FIRST.app, 8500
SERVERS = ("consul-server-1", "consul-server-2", "consul-server-3")


def role(kind: str, slot: Slot) -> str:
    """Process key on a host: ``app``/``sidecar`` for slot 0, ``app1``/``sidecar1`` for the next pair."""
    return f"{kind}{slot.n or ''}"


@dataclass(frozen=True)
class Profile:
    """How big and how long: ``ci`` fits a few minutes on 2 cores, ``full`` is the documented run."""

    name: str
    echo_hosts: int
    outage_s: float  # all Consul servers down for this long
    rate: float  # calls per second per kind per load generator


PROFILES = {"ci": Profile("ci", 3, 10.0, 6.0), "full": Profile("full", 4, 30.0, 12.0)}


def current_profile() -> Profile:
    name = os.environ.get("CLUSTER_PROFILE", "full")
    if name not in PROFILES:
        raise SystemExit(f"CLUSTER_PROFILE={name!r}: one of {sorted(PROFILES)}")
    return PROFILES[name]


class Topology:
    def __init__(self, workdir: Path, consul: str, profile: Profile) -> None:
        self.workdir = workdir
        self.consul_bin = consul
        self.profile = profile
        self.net = Network()
        self.procs: dict[tuple[str, str], ManagedProcess] = {}
        self.echo = [f"echo-{i}" for i in range(1, profile.echo_hosts + 1)]
        self.callers = ["caller-1", "caller-2"]
        self.notes: list[str] = []  # measured figures, printed at the end of the run

    def note(self, text: str) -> None:
        self.notes.append(text)

    # -- processes -------------------------------------------------------------------------

    def host(self, name: str) -> Host:
        return self.net.hosts[name]

    def start(
        self, host: str, role: str, argv: list[str], env: dict[str, str] | None = None
    ) -> ManagedProcess:
        """Starts ``argv`` inside ``host``'s namespace; replaces (kills) an earlier ``role`` there."""
        self.kill(host, role)
        log = self.workdir / f"{host}-{role}.log"
        proc = ManagedProcess(self.host(host).exec_argv(argv), log, env=env, cwd=ROOT)
        self.procs[(host, role)] = proc
        return proc

    def kill(self, host: str, role: str) -> None:
        proc = self.procs.pop((host, role), None)
        if proc is not None:
            proc.kill()
            proc.stop()

    def proc(self, host: str, role: str) -> ManagedProcess:
        return self.procs[(host, role)]

    # -- reading a host's loopback-only ports ------------------------------------------------

    def http(self, host: str, port: int, path: str, timeout: float = 5.0) -> tuple[int, str]:
        sock = connect_in(self.host(host).ns, port, timeout=timeout)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.sock = sock
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read().decode()
        finally:
            conn.close()

    def consul(self, host: str, path: str) -> Any:
        status, body = self.http(host, CONSUL_HTTP, path)
        if status != 200:
            raise RuntimeError(f"{host} consul {path}: {status} {body[:200]}")
        return json.loads(body)

    def leader(self, ask: str | None = None) -> str:
        """The server name that leads, as ``ask`` (default: any live server) sees it; "" if none."""
        by_addr = {self.host(s).address: s for s in SERVERS}
        for server in [ask] if ask else [s for s in SERVERS if (s, "consul") in self.procs]:
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                addr = str(self.consul(server, "/v1/status/leader")).rsplit(":", 1)[0]
                if addr in by_addr:
                    return by_addr[addr]
        return ""

    def passing(self, host: str, service: str) -> list[str]:
        """Nodes with a passing ``service`` instance, as ``host``'s agent reports them."""
        entries = self.consul(host, f"/v1/health/service/{service}?passing=1")
        return sorted(e["Node"]["Node"] for e in entries)

    def clusters(self, host: str, slot: Slot = FIRST) -> dict[str, Any]:
        """The sidecar's /clusters, by outbound service name."""
        status, body = self.http(host, slot.admin, "/clusters")
        assert status == 200, body
        return {c["service"]: c for c in json.loads(body)["outbound"]}

    def rotation(self, caller: str, service: str = "echo") -> list[str]:
        """Addresses ``caller``'s sidecar balances ``service`` over (resolved, breaker not open)."""
        cluster = self.clusters(caller).get(service, {})
        return sorted(e["target"].rsplit(":", 1)[0] for e in cluster.get("endpoints", []) if e["healthy"])

    def address_of(self, names: list[str]) -> list[str]:
        return sorted(self.host(n).address for n in names)

    # -- bringing it up --------------------------------------------------------------------

    def up(self) -> None:
        self.up_consul()
        self.make_ca()
        self.add_hosts([*self.callers, *self.echo])
        for name in self.echo:
            self.start_app(name, "echo")
        for name in self.callers:
            self.start_app(name, "web")
        for name in [*self.echo, *self.callers]:
            self.proc(name, "sidecar").wait_output("sidecar ready", timeout=60)
        wait_for(lambda: self.passing(self.callers[0], "echo") == self.echo, 60, 0.2, what="echo passing")

    def up_consul(self) -> None:
        """The bridge and the three servers, until they agree on a leader."""
        self.net.create()
        self.names = {s: f"{self.net.prefix}.{11 + i}" for i, s in enumerate(SERVERS)}
        for server in SERVERS:
            self.net.add_host(server, self.names)
            self.start_consul(server, "server")
        wait_for(lambda: all(self.leader(s) for s in SERVERS), 60, 0.2, what="one Raft leader")

    def add_hosts(self, hosts: list[str]) -> None:
        """Application hosts, each with its client agent, until every agent has joined."""
        for name in hosts:
            self.net.add_host(name, self.names)
            self.start_consul(name, "client")
        members = len(self.net.hosts)
        wait_for(
            lambda: len(self.consul(SERVERS[0], "/v1/catalog/nodes")) >= members,
            60,
            0.2,
            what="every agent joined",
        )

    def start_consul(self, host: str, role: str) -> None:
        data = self.workdir / host / "consul"
        data.mkdir(parents=True, exist_ok=True)
        self.start(host, "consul", configs.agent_argv(self.consul_bin, role, host, data))

    def make_ca(self) -> None:
        self.ca_dir = self.workdir / "mesh-ca"
        ca_cli("init", "--dir", self.ca_dir)

    def start_app(self, host: str, service: str) -> None:
        """The echo app on 127.0.0.1:50051 and its sidecar from deploy/sidecar.toml (mTLS)."""
        self.start_echo(host)
        self.proc(host, "app").wait_output("echo listening on", timeout=60)
        self.start_sidecar(host, service)

    def start_sidecar(self, host: str, service: str, slot: Slot = FIRST) -> ManagedProcess:
        """``grpcmesh sidecar --config`` deploy/sidecar.toml, filled in for ``service`` at ``slot``."""
        folder = self.workdir / host / f"{service}-tls"
        ca_cli("issue", service, "--dir", self.ca_dir, "--out", folder)
        tls = (folder / f"{service}.pem", folder / f"{service}.key", folder / "bundle.pem")
        config = self.workdir / host / f"sidecar-{service}.toml"
        config.write_text(configs.sidecar_toml(service, tls, slot))
        sidecar = [sys.executable, "-m", "grpcmesh.cli", "sidecar", "--config", str(config)]
        return self.start(host, role("sidecar", slot), sidecar)

    def start_echo(self, host: str, port: int = APP_PORT) -> ManagedProcess:
        argv = [sys.executable, "-m", "tests.support.echo", "--port", str(port), "--name", host]
        return self.start(host, "app", argv)

    def start_load(self, caller: str) -> Path:
        out = self.workdir / f"{caller}-calls.jsonl"
        argv = [sys.executable, "-m", "tests.cluster.loadgen", "--name", caller, "--out", str(out)]
        self.start(caller, "load", [*argv, "--rate", str(self.profile.rate)]).wait_output(
            "loadgen running", 60
        )
        return out

    def down(self) -> None:
        for key in list(self.procs):
            with contextlib.suppress(Exception):
                self.kill(*key)
        self.net.destroy()
