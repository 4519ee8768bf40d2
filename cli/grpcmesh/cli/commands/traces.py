"""``grpcmesh traces``: search traces in the embedded span store, or show one as a waterfall.

Reads the SQLite file written by the ``store`` exporter (sidecars started with
``--trace-exporter store``), so traces are viewable with nothing else running.
The filters are those of the admin page and ``/traces.json`` (one
:class:`~grpcmesh.sdk.spansearch.TraceQuery`). Problems a user can cause (no
file, unknown id, a bad filter) print one line and exit 1.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "traces",
        help="search traces in the span store, or show one as a waterfall",
        description="Without TRACE: a table of the newest traces having a span that matches every "
        "filter. With TRACE (a trace id, a request id or a unique trace id prefix): that trace's "
        "spans as a waterfall.",
    )
    p.add_argument("trace", nargs="?", metavar="TRACE", help="trace id, request id or unique prefix")
    p.add_argument("--db", help="span store file (default $GRPCMESH_TRACE_DB or ./grpcmesh-traces.db)")
    p.add_argument("--service", help="a span from this service")
    p.add_argument("--method", help="a span of this method (pkg.Service/Method)")
    p.add_argument("--errors", action="store_true", help="an error span")
    p.add_argument("--min-ms", type=float, help="a span lasting at least this many ms")
    p.add_argument("--max-ms", type=float, help="a span lasting at most this many ms")
    p.add_argument("--since", help="a span starting after: a duration ago (30s, 15m, 2h) or ISO time")
    p.add_argument("--until", help="a span starting before: a duration ago or ISO time")
    p.add_argument("--request-id", help="a span carrying this request id")
    p.add_argument(
        "--attr",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a span attribute (repeatable; default: none)",
    )
    p.add_argument(
        "--sort", default="newest", help="newest|oldest|longest|shortest|most-spans (default: newest)"
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON (as /traces.json)")
    p.add_argument("--limit", type=int, default=20, help="how many traces to list (default 20)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import dataclasses
    import json
    import sqlite3
    from pathlib import Path

    from grpcmesh.cli.errors import CommandError
    from grpcmesh.cli.traceview import render_table, render_waterfall
    from grpcmesh.sdk.spanparams import query_from_params
    from grpcmesh.sdk.spansearch import search_traces
    from grpcmesh.sdk.spanstore import AmbiguousTrace, find_trace, get_trace
    from grpcmesh.sdk.tracing import default_trace_db

    db = args.db or default_trace_db()
    if not Path(db).is_file():
        raise CommandError(
            f"no span store at {db} (start sidecars with --trace-exporter store, "
            "or point --db / GRPCMESH_TRACE_DB at the file)"
        )
    params = {
        "service": args.service,
        "method": args.method,
        "errors": "1" if args.errors else None,
        "min_ms": args.min_ms,
        "max_ms": args.max_ms,
        "since": args.since,
        "until": args.until,
        "request_id": args.request_id,
        "sort": args.sort,
        "limit": args.limit,
    }
    try:
        if args.trace is None:
            query = query_from_params(params, args.attr)
            traces = search_traces(db, query)
            if args.json:
                print(json.dumps([dataclasses.asdict(t) for t in traces], indent=2))
            else:
                print(render_table(traces) if traces else f"no traces in {db} matching the filters")
            return 0
        trace_id = find_trace(db, args.trace)
        if trace_id is None:
            raise CommandError(f"no trace {args.trace!r} in {db} (not a trace id, request id or prefix)")
        print(render_waterfall(get_trace(db, trace_id)))
        return 0
    except ValueError as err:  # a bad filter, named by TraceQuery
        raise CommandError(str(err)) from err
    except AmbiguousTrace as err:
        raise CommandError(str(err)) from err
    except sqlite3.DatabaseError as err:
        raise CommandError(f"cannot read span store {db}: {err}") from err
