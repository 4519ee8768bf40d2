"""``grpcmesh traces``: list recent traces from the embedded span store, or show one as a waterfall.

Reads the SQLite file written by the ``store`` exporter (sidecars started with
``--trace-exporter store``), so traces are viewable with nothing else running.
Problems a user can cause (no file, unknown id) print one line and exit 1.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "traces",
        help="list recent traces from the span store, or show one as a waterfall",
        description="Without TRACE: a table of recent traces. With TRACE (a trace id, a request id "
        "or a unique trace id prefix): that trace's spans as a waterfall.",
    )
    p.add_argument("trace", nargs="?", metavar="TRACE", help="trace id, request id or unique prefix")
    p.add_argument("--db", help="span store file (default $GRPCMESH_TRACE_DB or ./grpcmesh-traces.db)")
    p.add_argument("--service", help="only traces with a span from this service")
    p.add_argument("--errors", action="store_true", help="only traces with an error span")
    p.add_argument("--min-ms", type=float, help="only traces lasting at least this many ms")
    p.add_argument("--limit", type=int, default=20, help="how many traces to list (default 20)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import sqlite3
    from pathlib import Path

    from grpcmesh.cli.errors import CommandError
    from grpcmesh.cli.traceview import render_table, render_waterfall
    from grpcmesh.sdk.spanstore import AmbiguousTrace, find_trace, get_trace, list_traces
    from grpcmesh.sdk.tracing import default_trace_db

    db = args.db or default_trace_db()
    if not Path(db).is_file():
        raise CommandError(
            f"no span store at {db} (start sidecars with --trace-exporter store, "
            "or point --db / GRPCMESH_TRACE_DB at the file)"
        )
    if args.limit < 1:
        raise CommandError("--limit: must be >= 1")
    try:
        if args.trace is None:
            traces = list_traces(
                db, args.limit, service=args.service, min_duration_ms=args.min_ms, errors_only=args.errors
            )
            print(render_table(traces) if traces else f"no traces in {db} matching the filters")
            return 0
        trace_id = find_trace(db, args.trace)
        if trace_id is None:
            raise CommandError(f"no trace {args.trace!r} in {db} (not a trace id, request id or prefix)")
        print(render_waterfall(get_trace(db, trace_id)))
        return 0
    except AmbiguousTrace as err:
        raise CommandError(str(err)) from err
    except sqlite3.DatabaseError as err:
        raise CommandError(f"cannot read span store {db}: {err}") from err
