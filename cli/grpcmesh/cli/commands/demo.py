"""``grpcmesh demo``: the most complete end-to-end path that exists, on embedded defaults."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    demo = sub.add_parser("demo", help="run the end-to-end demo on embedded defaults")
    demo.add_argument("--keep", action="store_true", help="leave the mesh up (pages, stat, tap) until ^C")
    demo.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from grpcmesh.cli.demo import run_demo

    try:
        return asyncio.run(run_demo(keep=args.keep))
    except KeyboardInterrupt:
        return 0
