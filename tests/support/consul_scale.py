"""Helpers for discovery at scale: bulk registration, check flips, counting agent connections.

Registration goes through ``/v1/txn`` (many catalog writes in one raft entry),
so 1,000 services of 3 instances register in about a second instead of one
HTTP call per instance. The instances live on external catalog nodes
(``scale-node-<instance>-<n>``, at most ~50 services each: Consul's catalog
writes slow down with the number of services on one node), which the dev
agent's anti-entropy leaves alone, and each instance carries one catalog check
whose status a test flips with :func:`set_status`.
"""

from __future__ import annotations

import json
import os
import urllib.request
import zlib
from collections.abc import Sequence
from typing import Any

__all__ = ["agent_connections", "register_services", "service_name", "set_status"]

_OPS_PER_TXN = 64  # Consul accepts at most 128 operations in one transaction
_NODES = 200  # per instance number: 10,000 services -> ~50 per node


def service_name(i: int) -> str:
    return f"scale-{i:05d}"


def _txn(url: str, ops: list[dict[str, Any]]) -> None:
    req = urllib.request.Request(f"{url}/v1/txn", data=json.dumps(ops).encode(), method="PUT")
    with urllib.request.urlopen(req, timeout=30) as resp:
        if resp.status != 200:
            raise RuntimeError(f"txn failed: HTTP {resp.status} {resp.read()[:300]!r}")


def _node(service: str, i: int) -> str:
    return f"scale-node-{i}-{zlib.crc32(service.encode()) % _NODES}"


def _instance_ops(service: str, i: int, port: int, status: str) -> list[dict[str, Any]]:
    node = _node(service, i)
    sid = f"{service}-{i}"
    svc = {"ID": sid, "Service": service, "Address": "127.0.0.1", "Port": port, "Meta": {"i": str(i)}}
    check = {"Node": node, "CheckID": f"check-{sid}", "Name": "scale", "Status": status, "ServiceID": sid}
    return [
        {"Service": {"Verb": "set", "Node": node, "Service": svc}},
        {"Check": {"Verb": "set", "Check": check}},
    ]


def register_services(url: str, names: Sequence[str], ports: Sequence[int]) -> None:
    """Registers each name with one passing instance per port (instance ``i`` on a node of its own)."""
    nodes = [
        {"Node": {"Verb": "set", "Node": {"Node": f"scale-node-{i}-{n}", "Address": "127.0.0.1"}}}
        for i in range(len(ports))
        for n in range(_NODES)
    ]
    for start in range(0, len(nodes), _OPS_PER_TXN):
        _txn(url, nodes[start : start + _OPS_PER_TXN])
    batch: list[dict[str, Any]] = []
    for name in names:
        for i, port in enumerate(ports):
            batch += _instance_ops(name, i, port, "passing")
        if len(batch) + 2 * len(ports) > _OPS_PER_TXN:
            _txn(url, batch)
            batch = []
    if batch:
        _txn(url, batch)


def set_status(url: str, services: Sequence[str], i: int, port: int, status: str) -> None:
    """Sets instance ``i`` of each service to ``passing`` / ``critical`` (few catalog writes)."""
    ops = [op for service in services for op in _instance_ops(service, i, port, status)]
    for start in range(0, len(ops), _OPS_PER_TXN):
        _txn(url, ops[start : start + _OPS_PER_TXN])


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
