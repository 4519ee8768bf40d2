"""The multi-host topology, once per session, torn down whatever happens.

Marked ``cluster`` and left out of ``make test`` (pyproject's ``-m "not cluster"``);
``make cluster-test`` runs it. Needs root (namespaces, veths, a bridge) and the consul
binary; elsewhere it skips, and under ``CI=true`` it fails.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from tests.cluster.netns import leftovers, sweep
from tests.cluster.topology import ROOT, Topology, current_profile
from tests.support.consul import require_consul

HERE = Path(__file__).resolve().parent
NOTES: list[str] = []  # what the tests measured, shown at the end (pytest hides test output)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.cluster)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if NOTES:
        terminalreporter.section(f"cluster figures ({current_profile().name} profile)")
        for line in NOTES:
            terminalreporter.write_line(line)


@pytest.fixture(autouse=True)
def root() -> None:
    """Every cluster test needs root; skips elsewhere (fails under CI=true)."""
    if os.geteuid() == 0 and shutil.which("ip"):
        return
    message = "the cluster tests need root and iproute2 (network namespaces, veth pairs, a bridge)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _workdir() -> Path:
    """.cache/cluster/run-<pid>: logs, data and certificates of this run, kept until the next run
    (pytest's own temp folders rotate too fast on a machine where other suites run)."""
    base = ROOT / ".cache" / "cluster"
    base.mkdir(parents=True, exist_ok=True)
    for old in base.glob("run-*"):
        shutil.rmtree(old, ignore_errors=True)
    workdir = base / f"run-{os.getpid()}"
    workdir.mkdir()
    print(f"cluster logs in {workdir}")
    return workdir


@pytest.fixture(scope="session")
def topology() -> Iterator[Topology]:
    consul = require_consul()
    for item in sweep():  # what a crashed (SIGKILLed) earlier run left behind
        print(f"swept leftover {item}")
    topo = Topology(_workdir(), consul, current_profile())
    topo.notes = NOTES
    atexit.register(topo.down)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    try:
        topo.up()
        yield topo
    finally:
        topo.down()
        atexit.unregister(topo.down)
    assert leftovers(os.getpid()) == [], "teardown left namespaces or links behind"


@pytest.fixture(scope="session")
def load(topology: Topology) -> list[Path]:
    """Both callers' load generators running; returns their call logs."""
    return [topology.start_load(caller) for caller in topology.callers]
