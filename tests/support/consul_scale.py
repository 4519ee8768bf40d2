"""Helpers for discovery at scale: bulk registration, check flips, counting agent connections.

Registration goes through ``/v1/txn`` (many catalog writes in one raft entry),
so 1,000 services of 3 instances register in about a second instead of one
HTTP call per instance. The instances live on external catalog nodes
(``scale-node-<i>``), which the dev agent's anti-entropy leaves alone, and
each carries one catalog check whose status a test flips with :func:`set_status`.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Sequence
from typing import Any

__all__ = ["agent_connections", "register_services", "service_name", "set_status"]

_OPS_PER_TXN = 64  # Consul accepts at most 128 operations in one transaction


def service_name(i: int) -> str:
    return f"scale-{i:05d}"


def _txn(url: str, ops: list[dict[str, Any]]) -> None:
    req = urllib.request.Request(f"{url}/v1/txn", data=json.dumps(ops).encode(), method="PUT")
    with urllib.request.urlopen(req, timeout=30) as resp:
        if resp.status != 200:
            raise RuntimeError(f"txn failed: HTTP {resp.status} {resp.read()[:300]!r}")


def _instance_ops(service: str, i: int, port: int, status: str) -> list[dict[str, Any]]:
    node = f"scale-node-{i}"
    sid = f"{service}-{i}"
    svc = {"ID": sid, "Service": service, "Address": "127.0.0.1", "Port": port, "Meta": {"i": str(i)}}
    check = {"Node": node, "CheckID": f"check-{sid}", "Name": "scale", "Status": status, "ServiceID": sid}
    return [
        {"Service": {"Verb": "set", "Node": node, "Service": svc}},
        {"Check": {"Verb": "set", "Check": check}},
    ]


def register_services(url: str, names: Sequence[str], ports: Sequence[int]) -> None:
    """Registers each name with one passing instance per port (instance ``i`` on node ``i``)."""
    ops: list[dict[str, Any]] = [
        {"Node": {"Verb": "set", "Node": {"Node": f"scale-node-{i}", "Address": "127.0.0.1"}}}
        for i in range(len(ports))
    ]
    _txn(url, ops)
    batch: list[dict[str, Any]] = []
    for name in names:
        for i, port in enumerate(ports):
            batch += _instance_ops(name, i, port, "passing")
        if len(batch) + 2 * len(ports) > _OPS_PER_TXN:
            _txn(url, batch)
            batch = []
    if batch:
        _txn(url, batch)


def set_status(url: str, service: str, i: int, port: int, status: str) -> None:
    """Sets instance ``i`` of ``service`` to ``passing`` / ``critical`` (one catalog write)."""
    _txn(url, _instance_ops(service, i, port, status))


def agent_connections(pid: int, agent_port: int) -> int:
    """Established TCP connections from process ``pid`` to ``127.0.0.1:agent_port`` (Linux /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                cols = line.split()
                remote_port = int(cols[2].rsplit(":", 1)[1], 16)
                if remote_port == agent_port and cols[3] == "01" and cols[9] in inodes:
                    count += 1
    return count
