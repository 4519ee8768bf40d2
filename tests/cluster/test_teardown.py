"""Teardown leaves nothing behind: not on an interrupt, and not after a SIGKILLed run (the sweep)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.cluster.netns import ip, leftovers, sweep
from tests.cluster.topology import ROOT


def _start_run() -> tuple[subprocess.Popen[str], str, int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.cluster.crashrun"], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().split()  # bounded: the run prints or dies within seconds
    assert line[:1] == ["ready"], f"crashrun did not start: {line}"
    return proc, line[1], int(line[2])


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as f:  # a zombie (not yet reaped by init) counts as gone
        return f.read().split()[2] == "Z"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_run_removes_its_namespaces_links_and_processes(sig: signal.Signals) -> None:
    proc, ns, child = _start_run()
    assert ns in ip("netns", "list")
    proc.send_signal(sig)
    assert proc.wait(timeout=30) == 130
    assert leftovers(proc.pid) == []
    assert _gone(child)


def test_the_sweep_removes_what_a_sigkilled_run_left() -> None:
    proc, ns, child = _start_run()
    proc.kill()
    proc.wait(timeout=10)
    left = leftovers(proc.pid)
    assert ns in left
    assert f"gm{proc.pid}b" in left  # the bridge
    assert not _gone(child)  # a SIGKILLed run cannot clean up: the sweep must
    assert set(left) <= set(sweep())
    assert leftovers(proc.pid) == []
    assert _gone(child)
