"""Checks shared by the fault tests: the mesh is whole again, and no call ran twice.

Every fault test starts from :func:`settled` and ends by restoring the topology and
waiting for it again, so the tests run in any order.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from tests.cluster.calls import Window, read_calls
from tests.cluster.topology import ROOT, SERVERS, Topology
from tests.support.procs import wait_for

__all__ = ["arrivals", "calls_between", "exactly_once", "settled"]


def settled(topo: Topology, logs: list[Path], timeout: float = 90.0) -> None:
    """One leader, every echo host passing and in both callers' rotation, and serving load."""
    wait_for(lambda: len({topo.leader(s) for s in SERVERS} - {""}) == 1, timeout, 0.2, what="one leader")
    everyone = topo.address_of(topo.echo)
    for caller in topo.callers:
        wait_for(lambda c=caller: topo.passing(c, "echo") == topo.echo, timeout, 0.2, what="echo passing")
        wait_for(lambda c=caller: topo.rotation(c) == everyone, timeout, 0.2, what=f"{caller} rotation")
    since = time.time()

    def all_serving() -> bool:
        return set(Window.of(logs, since, time.time()).served_by("unary", "create", "stream")) >= set(
            topo.echo
        )

    wait_for(all_serving, timeout, 0.5, what="every echo host serving the load")


def calls_between(topo: Topology, logs: list[Path], start: float, end: float) -> Window:
    """Calls started in [start, end), read once every one of them has ended (deadline) and been logged."""
    settle_at = end + 5.0 + 1.0  # the load generators' deadline + their flush interval, with room
    while time.time() < settle_at:
        time.sleep(0.2)
    return Window.of(logs, start, end)


def arrivals(topo: Topology, host: str) -> dict[str, int]:
    """x-echo-key -> how many times the app on ``host`` saw it."""
    argv = topo.host(host).exec_argv([sys.executable, "-m", "tests.cluster.probe"])
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT, check=True)
    return {key: len(times) for key, times in json.loads(done.stdout)["arrivals"].items()}


def exactly_once(topo: Topology, logs: list[Path], since: float) -> Counter[str]:
    """Asserts no Create ran twice anywhere and every one acknowledged ``since`` (apps running since
    then) ran once; returns all arrivals."""
    acked = [c.key for c in read_calls(logs) if c.kind == "create" and c.ok and c.t0 >= since]
    seen: Counter[str] = Counter()
    for host in topo.echo:
        seen.update(arrivals(topo, host))
    twice = {k: n for k, n in seen.items() if n > 1}
    assert not twice, f"non-idempotent calls that ran more than once: {list(twice.items())[:10]}"
    lost = [k for k in acked if seen[k] != 1]
    assert not lost, f"acknowledged creates no app saw: {lost[:10]}"
    return seen
