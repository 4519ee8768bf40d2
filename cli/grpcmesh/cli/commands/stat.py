"""``grpcmesh stat``: golden metrics per service and method, refreshing like ``linkerd viz stat``.

Scrapes each sidecar's ``/metrics`` (its admin endpoint) every ``--interval``
seconds and prints, per (service, method), what happened in between:
requests/s, success rate, p50/p95/p99 (see :mod:`grpcmesh.sdk.golden`). Rows
are the calls sidecars *received* (inbound) unless ``--outbound``. On a
terminal the table redraws in place; otherwise one table per interval.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "stat",
        help="golden metrics (req/s, success rate, latency percentiles) per service and method",
        description="Scrape sidecars' /metrics and print golden metrics per service and method.",
    )
    p.add_argument(
        "admin",
        nargs="*",
        default=["127.0.0.1:15090"],
        help="sidecar admin HOST:PORT (default 127.0.0.1:15090)",
    )
    p.add_argument("--interval", type=float, default=2.0, help="seconds between scrapes (default 2)")
    p.add_argument("--count", type=int, default=0, help="stop after this many tables (default: until ^C)")
    p.add_argument("--once", action="store_true", help="one table (same as --count 1)")
    p.add_argument("--outbound", action="store_true", help="calls the sidecars made, not received")
    p.add_argument("--service", help="only this service")
    p.add_argument("--json", action="store_true", help="one JSON line per table")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import sys
    import time

    from grpcmesh.cli.errors import CommandError
    from grpcmesh.cli.statview import render_golden, scrape_all

    if args.interval <= 0:
        raise CommandError("--interval: must be > 0 seconds")
    count = 1 if args.once else args.count
    if count < 0:
        raise CommandError("--count: must be >= 0")
    direction = "outbound" if args.outbound else "inbound"
    previous = scrape_all(args.admin)
    shown = 0
    try:
        while not count or shown < count:
            time.sleep(args.interval)
            current = scrape_all(args.admin)
            out = render_golden(current, previous, direction, args.service, as_json=args.json)
            if sys.stdout.isatty() and not args.json:
                out = "\x1b[H\x1b[2J" + out
            print(out, flush=True)
            previous = current
            shown += 1
    except KeyboardInterrupt:
        pass
    return 0
