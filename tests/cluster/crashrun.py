"""A tiny run for the teardown tests: one bridge, one host, a process inside, then wait.

``python -m tests.cluster.crashrun`` prints ``ready <ns> <pid>`` and waits; SIGINT or
SIGTERM make it clean up as the harness does (``finally``); SIGKILL leaves everything
behind for :func:`tests.cluster.netns.sweep` to find.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from types import FrameType

from tests.cluster.netns import Network


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    net = Network()
    try:
        net.create()
        host = net.add_host("h1", {})
        child = subprocess.Popen(host.exec_argv(["sleep", "600"]), start_new_session=True)
        print(f"ready {host.ns} {child.pid}", flush=True)
        time.sleep(600)
    finally:
        net.destroy()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
