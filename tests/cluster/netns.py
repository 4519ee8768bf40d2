"""Linux network namespaces standing in for machines: one bridge, one veth pair per host.

Every name carries the pid of the run that made it (``gmc<pid>-<host>`` for a
namespace, ``gm<pid>b`` for the bridge, ``gm<pid>v<n>`` for a veth): :func:`sweep`
removes whatever a run that is no longer alive left behind (a crash, a SIGKILL of
pytest), and :meth:`Network.destroy` removes this run's own. Deleting a namespace
does not end the processes in it, so each is killed first (``ip netns pids``).

Processes reach the host's view of the world through ``ip netns exec``, which also
bind-mounts ``/etc/netns/<ns>/hosts`` over ``/etc/hosts``: that is how
``consul-server-1`` in the shipped configs resolves, as DNS would on real machines.
:func:`connect_in` opens a TCP socket from inside a namespace (a thread joins it with
``setns``), so the driver can read a host's loopback-only admin port.

Run ``python -m tests.cluster.netns sweep`` to clean up by hand.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

__all__ = ["Host", "Network", "connect_in", "ip", "leftovers", "run_in", "sweep"]

T = TypeVar("T")

NETNS_DIR = Path("/etc/netns")
_NS_RE = re.compile(r"^gmc(\d+)-")
_LINK_RE = re.compile(r"^gm(\d+)[bvp]")
_CLONE_NEWNET = 0x40000000


def ip(*args: str, check: bool = True) -> str:
    """Runs ``ip ARGS``; raises with ip's own message on failure."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _namespaces() -> list[str]:
    return [line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()]


def _links() -> list[str]:
    names = []
    for line in ip("-o", "link", "show").splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        names.append(name)
    return names


def kill_namespace(ns: str) -> None:
    """SIGKILLs every process in ``ns`` and deletes it (and its /etc/netns folder)."""
    for pid in ip("netns", "pids", ns, check=False).split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    ip("netns", "delete", ns, check=False)
    shutil.rmtree(NETNS_DIR / ns, ignore_errors=True)


def leftovers(owner: int | None = None) -> list[str]:
    """Namespaces, links and /etc/netns folders of dead runs (or of run ``owner``)."""

    def stale(pid: int) -> bool:
        return pid == owner if owner is not None else not _alive(pid)

    found = [ns for ns in _namespaces() if (m := _NS_RE.match(ns)) and stale(int(m.group(1)))]
    found += [ln for ln in _links() if (m := _LINK_RE.match(ln)) and stale(int(m.group(1)))]
    if NETNS_DIR.is_dir():
        found += [
            str(p) for p in NETNS_DIR.iterdir() if (m := _NS_RE.match(p.name)) and stale(int(m.group(1)))
        ]
    return found


def sweep(owner: int | None = None) -> list[str]:
    """Removes what :func:`leftovers` finds; returns what it removed."""
    removed = leftovers(owner)
    for name in removed:
        if name.startswith(str(NETNS_DIR)):
            shutil.rmtree(name, ignore_errors=True)
        elif _NS_RE.match(name):
            kill_namespace(name)
        else:
            ip("link", "delete", name, check=False)
    return removed


@dataclass
class Host:
    """One 'machine': a namespace with ``eth0`` at ``address`` on the shared bridge."""

    name: str
    ns: str
    address: str
    veth: str

    def exec_argv(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.ns, *argv]

    def link(self, up: bool) -> None:
        """Cuts or restores the host's cable (its veth end on the bridge)."""
        ip("link", "set", self.veth, "up" if up else "down")


@dataclass
class Network:
    """A bridge ``10.a.b.0/24`` and the hosts on it, all named after this process's pid."""

    pid: int = field(default_factory=os.getpid)
    hosts: dict[str, Host] = field(default_factory=dict)

    @property
    def bridge(self) -> str:
        return f"gm{self.pid}b"

    @property
    def prefix(self) -> str:
        return f"10.{200 + self.pid % 50}.{(self.pid // 50) % 250}"

    def create(self) -> None:
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.prefix}.1/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")

    def add_host(self, name: str, names: dict[str, str]) -> Host:
        """A namespace with loopback up, eth0 on the bridge and ``names`` in its /etc/hosts."""
        index = len(self.hosts) + 1
        host = Host(name, f"gmc{self.pid}-{name}", f"{self.prefix}.{10 + index}", f"gm{self.pid}v{index}")
        self.hosts[name] = host
        ip("netns", "add", host.ns)
        peer = f"gm{self.pid}p{index}"
        ip("link", "add", host.veth, "type", "veth", "peer", "name", peer)
        ip("link", "set", host.veth, "master", self.bridge, "up")
        ip("link", "set", peer, "netns", host.ns)
        inside = ("netns", "exec", host.ns, "ip")
        ip(*inside, "link", "set", peer, "name", "eth0")
        ip(*inside, "addr", "add", f"{host.address}/24", "dev", "eth0")
        ip(*inside, "link", "set", "eth0", "up")
        ip(*inside, "link", "set", "lo", "up")
        self.write_hosts(host, names)
        return host

    def write_hosts(self, host: Host, names: dict[str, str]) -> None:
        folder = NETNS_DIR / host.ns
        folder.mkdir(parents=True, exist_ok=True)
        lines = ["127.0.0.1 localhost", f"{host.address} {host.name}"]
        lines += [f"{addr} {name}" for name, addr in names.items()]
        (folder / "hosts").write_text("\n".join(lines) + "\n")

    def destroy(self) -> None:
        """Kills every process in this run's namespaces and removes them, the veths and the bridge."""
        sweep(self.pid)


def run_in(ns: str, fn: Callable[[], T], timeout: float = 60.0) -> T:
    """Runs ``fn`` in a helper thread that joined namespace ``ns`` first: every socket it opens
    lives in that namespace (setns changes the calling thread only)."""
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            with open(f"/run/netns/{ns}") as fd:
                if libc.setns(fd.fileno(), _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {ns}")
            result.append(fn())
        except BaseException as err:
            error.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    if error:
        raise error[0]
    if not result:
        raise TimeoutError(f"{fn} in {ns} did not finish within {timeout} s")
    return result[0]


def connect_in(ns: str, port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> socket.socket:
    """A TCP socket connected from inside namespace ``ns``."""
    return run_in(ns, lambda: socket.create_connection((host, port), timeout=timeout), timeout + 5)


if __name__ == "__main__":
    if sys.argv[1:] != ["sweep"]:
        sys.exit("usage: python -m tests.cluster.netns sweep")
    for item in sweep():
        print(f"removed {item}")
