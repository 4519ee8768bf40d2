"""``grpcmesh tap SERVICE``: stream call summaries from sidecars as they pass, with a filter.

Reads the ``/tap`` stream of each sidecar admin endpoint given (default the
local one): one line per call - time, direction, service, method, status,
latency, request id. The filter is applied in the sidecar, so a busy sidecar
sends only what was asked for.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "tap",
        help="stream live request summaries for a service from sidecars",
        description="Stream call summaries (method, status, latency, request id) for SERVICE.",
    )
    p.add_argument("service", metavar="SERVICE", help="the mesh service whose calls to show")
    p.add_argument(
        "--admin",
        action="append",
        default=[],
        help="sidecar admin HOST:PORT (repeatable; default 127.0.0.1:15090)",
    )
    p.add_argument("--method", help="only this method (Method or pkg.Service/Method)")
    p.add_argument("--code", help="only this status code (e.g. UNAVAILABLE)")
    p.add_argument("--errors", action="store_true", help="only calls that did not end OK")
    p.add_argument("--direction", choices=("inbound", "outbound"), help="only calls received / made")
    p.add_argument("--max", type=int, default=0, help="stop after this many calls (default: until ^C)")
    p.add_argument("--json", action="store_true", help="print the records as JSON lines")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import contextlib

    from grpcmesh.cli.errors import CommandError
    from grpcmesh.cli.tapview import follow

    if args.max < 0:
        raise CommandError("--max: must be >= 0")
    params = {
        "service": args.service,
        "method": args.method,
        "code": args.code,
        "errors": "1" if args.errors else None,
        "direction": args.direction,
    }
    with contextlib.suppress(KeyboardInterrupt):
        follow(args.admin or ["127.0.0.1:15090"], params, args.max, args.json)
    return 0
