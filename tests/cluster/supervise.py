"""``python -m tests.cluster.supervise ARGV...``: run ARGV again whenever it fails, as systemd's
``Restart=on-failure`` (``RestartSec=1``) would on a real host.

The saga orchestrator exits non-zero when it loses its database session, by design,
"for its supervisor"; this is that supervisor. SIGTERM is passed on and ends the loop.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from types import FrameType


def main(argv: list[str]) -> int:
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if child is not None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        child = subprocess.Popen(argv)
        code = child.wait()
        if stopping or code == 0:
            return code
        print(f"supervise: exited {code}; restarting in 1 s", flush=True)
        time.sleep(1.0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
