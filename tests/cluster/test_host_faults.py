"""A host's cable is pulled, then plugged back, under steady load from two other hosts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.cluster.calls import Window
from tests.cluster.invariants import calls_between, exactly_once, settled
from tests.cluster.topology import Topology
from tests.support.procs import wait_for

# Consul notices a silent host through Serf (probe every 1 s, a suspicion timeout of a few
# probes), its instances' checks every 10 s (the sidecar's registration): the bound is
# the check interval plus one failure detection, with room for a loaded machine.
LEAVE_BOUND_S = 10.0 + 15.0
OBSERVED: dict[str, Window] = {}


def test_link_down_takes_the_host_out_of_rotation_and_back(topology: Topology, load: list[Path]) -> None:
    settled(topology, load)
    victim = topology.echo[0]
    address = topology.host(victim).address
    start = time.time()
    topology.host(victim).link(False)
    left: dict[str, float] = {}
    for caller in topology.callers:
        wait_for(lambda c=caller: address not in topology.rotation(c), LEAVE_BOUND_S, 0.1, what="victim out")
        left[caller] = time.time() - start
    wait_for(lambda: victim not in topology.passing(topology.callers[0], "echo"), LEAVE_BOUND_S, 0.1)
    catalog_s = time.time() - start
    out_s = ", ".join(f"{c} {t:.1f} s" for c, t in left.items())
    topology.note(f"link down: out of rotation at {out_s}; critical in Consul after {catalog_s:.1f} s")
    time.sleep(3.0)
    down_end = time.time()
    topology.host(victim).link(True)
    back = time.time()
    settled(topology, load)
    topology.note(f"back in rotation and serving {time.time() - back:.1f} s after the link returned")
    window = calls_between(topology, load, start, down_end)
    topology.note(f"link down: {window.summary()}")
    OBSERVED["link_down"] = window
    failed = window.failed("unary", "create", "stream")
    assert {c.code for c in failed} <= {"UNAVAILABLE", "DEADLINE_EXCEEDED"}, window.summary()
    exactly_once(topology, load, since=start)
    after = calls_between(topology, load, down_end + max(left.values()), time.time())
    assert after.failed("unary", "create", "stream") == [], after.summary()


def test_link_down_idempotent_calls_in_flight_are_retried_elsewhere() -> None:
    """Calls in flight on the dead host's connections fail over: the caller's sidecar probes an
    upstream silent for 1 s with a PING and drops the connection unanswered 3 s later."""
    window = OBSERVED.get("link_down")
    if window is None:
        pytest.skip("needs test_link_down_takes_the_host_out_of_rotation_and_back first")
    assert window.failed("unary", "stream") == [], window.summary()
