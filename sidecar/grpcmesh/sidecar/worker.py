"""One worker of ``grpcmesh sidecar --workers N``: ``python -m grpcmesh.sidecar.worker INDEX ADMIN_SOCK``.

Started by the supervisor (workers.py), which writes the pickled :class:`SidecarConfig` to
its stdin: the config was validated once there, and a worker re-reading files and env could
see a different one. The worker binds the same ports with SO_REUSEPORT (the kernel spreads
new connections over the workers), serves its admin on a private unix socket, and dies with
its supervisor (PR_SET_PDEATHSIG), so a supervisor killed with SIGKILL leaves no orphan.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import pickle
import signal
import sys

from grpcmesh.sidecar.app import Sidecar
from grpcmesh.sidecar.config import SidecarConfig

__all__ = ["main"]

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return
    if os.getppid() != parent:  # the supervisor was gone before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


async def _serve(cfg: SidecarConfig, index: int, admin: str) -> int:
    await Sidecar(cfg, worker=index, admin_unix=admin).run_until_signal()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    index, admin, parent = int(args[0]), args[1], int(args[2])
    _die_with_parent(parent)
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s %(levelname)s %(name)s[worker {index}] %(message)s"
    )
    cfg = pickle.loads(sys.stdin.buffer.read())
    if not isinstance(cfg, SidecarConfig):
        raise SystemExit("worker: stdin is not a pickled SidecarConfig")
    if cfg.uvloop:
        try:
            import uvloop

            uvloop.install()
        except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
            pass
    return asyncio.run(_serve(cfg, index, admin))


if __name__ == "__main__":
    sys.exit(main())
