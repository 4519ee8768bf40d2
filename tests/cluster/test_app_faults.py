"""One host's app hangs, then one host's app link is slow: the balancer routes around both."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from tests.cluster.invariants import calls_between, exactly_once, settled
from tests.cluster.topology import APP_PORT, Topology
from tests.support.procs import wait_for

ALL = ("unary", "create", "stream")
DEADLINE_S = 5.0  # the load generators' --deadline
HANG_S = 15.0


def test_sigstopped_app_every_call_bounded_by_its_deadline_and_traffic_moves_away(
    topology: Topology, load: list[Path]
) -> None:
    settled(topology, load)
    victim = topology.echo[-1]
    app = topology.proc(victim, "app")
    start = time.time()
    app.signal(signal.SIGSTOP)
    try:
        time.sleep(HANG_S)
    finally:
        app.signal(signal.SIGCONT)
    end = time.time()
    window = calls_between(topology, load, start, end)
    topology.note(f"app SIGSTOPped {HANG_S:.0f} s: {window.summary()}")
    longest = max(c.t1 - c.t0 for c in window.calls)
    assert longest < DEADLINE_S + 1.0, f"a call ran {longest:.1f} s, past its {DEADLINE_S} s deadline"
    failed = window.failed(*ALL)
    assert {c.code for c in failed} <= {"DEADLINE_EXCEEDED", "UNAVAILABLE"}, window.summary()
    # the calls the hung host swallowed started early; in the second half only an ejected
    # endpoint's occasional probe (breaker half-open) may still reach it
    late_calls = [c for c in window.calls if c.t0 > start + HANG_S / 2]
    late = [c for c in late_calls if not c.ok]
    early = len(failed) - len(late)
    topology.note(f"failed in the first half: {early}, in the second: {len(late)} of {len(late_calls)}")
    assert len(late) <= max(2, len(late_calls) // 100), f"{len(late)} calls still went to the hung app"
    assert len(window.kind(*ALL)) - len(failed) > 0
    exactly_once(topology, load, since=start)
    settled(topology, load)


def _use_proxy(topo: Topology, host: str, latency_ms: float, rate: float) -> None:
    """The app moves to APP_PORT+1; the fault proxy takes its address (the one sidecar.toml names)."""
    topo.start_echo(host, APP_PORT + 1).wait_output("echo listening on", 60)
    argv = [sys.executable, "-m", "tests.cluster.faultproxy", "--listen", f"127.0.0.1:{APP_PORT}"]
    argv += ["--to", f"127.0.0.1:{APP_PORT + 1}", "--latency-ms", str(latency_ms), "--rate-bytes", str(rate)]
    topo.start(host, "proxy", argv).wait_output("faultproxy listening", 60)


def test_added_latency_and_bandwidth_cap_p2c_ewma_sends_most_traffic_elsewhere(
    topology: Topology, load: list[Path]
) -> None:
    victim = topology.echo[0]
    _use_proxy(topology, victim, latency_ms=100.0, rate=64 * 1024)
    try:
        settled(topology, load)
        base_start = time.time()
        time.sleep(8.0)
        before = calls_between(topology, load, base_start, time.time())
        topology.proc(victim, "proxy").signal(signal.SIGUSR1)
        start = time.time()
        time.sleep(20.0)
        during = calls_between(topology, load, start + 5.0, time.time())  # after the EWMA has seen it
        topology.proc(victim, "proxy").signal(signal.SIGUSR2)
    finally:
        topology.kill(victim, "proxy")
        topology.start_echo(victim).wait_output("echo listening on", 60)
    fair = 1.0 / len(topology.echo)
    share_before = before.served_by(*ALL)[victim] / max(1, sum(before.served_by(*ALL).values()))
    served = during.served_by(*ALL)
    share = served[victim] / max(1, sum(served.values()))
    topology.note(
        f"slow host's share: {share:.3f} (fair {fair:.3f}, before the fault {share_before:.3f}); {during.summary()}"
    )
    # in rotation and serving (less than its fair share when an earlier fault left its EWMA high)
    assert share_before > 0.05, f"the host served {share_before:.2%} before the fault"
    assert share < min(fair, share_before) / 2, (
        f"the slow host still got {share:.2%} of the calls ({share_before:.2%} before, fair {fair:.0%})"
    )
    assert during.failed(*ALL) == [], during.summary()
    wait_for(lambda: topology.proc(victim, "app").alive(), 5)
    settled(topology, load)
