"""A real Consul agent (``consul agent -dev``) for tests, on free loopback ports.

The binary is found in this order: ``$CONSUL_BIN``, ``<repo>/.cache/bin/consul``
(what ``make consul`` builds), ``consul`` on PATH. With ``CI=true`` or
``GRPCMESH_REQUIRE_CONSUL=1`` a missing binary fails the test; elsewhere the
test is skipped with a hint to run ``make consul``.

Every port the agent opens (http, dns, server, serf_lan, serf_wan, grpc) is
chosen free; https and grpc_tls are disabled. :meth:`ConsulAgent.kill` and
:meth:`ConsulAgent.restart` simulate an outage; a restart keeps the same ports,
so clients configured with the old address reconnect on their own. Dev mode
keeps no state across a restart: registrations have to be made again.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.procs import LOOPBACK, ManagedProcess, free_port, wait_for

__all__ = ["ConsulAgent", "consul_agent", "find_consul"]

REPO_ROOT = Path(__file__).resolve().parents[2]
_PORT_NAMES = ("http", "dns", "server", "serf_lan", "serf_wan", "grpc")


def _required() -> bool:
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("GRPCMESH_REQUIRE_CONSUL") == "1"


def find_consul() -> str | None:
    """Path of a consul binary, or None when there is none."""
    env = os.environ.get("CONSUL_BIN")
    if env:
        return env if os.access(env, os.X_OK) else None
    cached = REPO_ROOT / ".cache" / "bin" / "consul"
    if os.access(cached, os.X_OK):
        return str(cached)
    return shutil.which("consul")


def require_consul() -> str:
    """The consul binary, or skip (fail under CI / GRPCMESH_REQUIRE_CONSUL=1)."""
    binary = find_consul()
    if binary is None:
        msg = "no consul binary (looked at $CONSUL_BIN, .cache/bin/consul, PATH): run `make consul`"
        if os.environ.get("CONSUL_BIN"):
            msg = f"CONSUL_BIN={os.environ['CONSUL_BIN']} is not an executable file: run `make consul`"
        if _required():
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    return binary


class ConsulAgent:
    """One ``consul agent -dev`` process; its HTTP API is at :attr:`http_url`."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.ports: dict[str, int] = {}
        self.proc: ManagedProcess | None = None
        self._starts = 0

    @property
    def http_port(self) -> int:
        return self.ports["http"]

    @property
    def http_url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    def _write_config(self) -> Path:
        config = {
            "node_name": "grpcmesh-test",
            "datacenter": "dc1",
            "bind_addr": LOOPBACK,
            "client_addr": LOOPBACK,
            "advertise_addr": LOOPBACK,
            "log_level": "warn",
            "disable_update_check": True,
            "ports": {**self.ports, "https": -1, "grpc_tls": -1},
        }
        path = self.workdir / "consul.json"
        path.write_text(json.dumps(config, indent=2))
        return path

    def start(self, timeout: float = 30.0) -> ConsulAgent:
        """Starts on fresh free ports; retries with new ports if one was taken meanwhile."""
        for attempt in range(3):
            self.ports = {name: free_port() for name in _PORT_NAMES}
            try:
                self._launch(timeout)
                return self
            except RuntimeError:
                self._stop_proc()
                if attempt == 2:
                    raise
        return self

    def _launch(self, timeout: float) -> None:
        config = self._write_config()
        self._starts += 1
        self.proc = ManagedProcess(
            [self.binary, "agent", "-dev", f"-config-file={config}"],
            self.workdir / f"consul-{self._starts}.log",
        )
        self.wait_ready(timeout)

    def leader(self) -> str:
        """The current leader's address, "" while there is none or the agent is down."""
        try:
            with urllib.request.urlopen(f"{self.http_url}/v1/status/leader", timeout=1.0) as resp:
                return str(json.loads(resp.read()))
        except (OSError, urllib.error.URLError, ValueError):
            return ""

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Blocks until /v1/status/leader names a leader; fails early if the agent died."""
        proc = self.proc
        assert proc is not None

        def ready() -> bool:
            if not proc.alive():
                raise RuntimeError(f"consul exited {proc.proc.returncode}:\n{proc.output()[-3000:]}")
            return bool(self.leader())

        wait_for(ready, timeout, interval=0.05, what="consul to elect a leader")

    def kill(self) -> None:
        """SIGKILL: the agent vanishes mid-request, as in a crash."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.stop()

    def restart(self, timeout: float = 30.0) -> None:
        """Starts again on the same ports (after :meth:`kill` or while running)."""
        self._stop_proc()
        deadline = time.monotonic() + timeout
        while True:  # the old sockets may linger for a moment after a kill
            try:
                self._launch(max(1.0, deadline - time.monotonic()))
                return
            except RuntimeError:
                self._stop_proc()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _stop_proc(self) -> None:
        if self.proc is not None:
            self.proc.stop(timeout=10)
            self.proc = None

    def stop(self) -> None:
        self._stop_proc()


def consul_agent(tmp_path: Path) -> Iterator[ConsulAgent]:
    """Fixture body: a started agent, stopped at the end (use from a conftest fixture)."""
    workdir = tmp_path / "consul"
    workdir.mkdir()
    agent = ConsulAgent(require_consul(), workdir)
    agent.start()
    try:
        yield agent
    finally:
        agent.stop()
